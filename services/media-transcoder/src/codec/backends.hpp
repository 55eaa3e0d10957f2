// Internal: constructors of the codec implementations behind makeEncoder/makeDecoder.
#pragma once

#include <memory>

#include "medius/media/codec/codec.hpp"

namespace medius::media::codec::detail {

std::unique_ptr<Encoder> makeOpusEncoder(const OpusParams& params, unsigned ptimeMs);
std::unique_ptr<Decoder> makeOpusDecoder(const OpusParams& params);
std::unique_ptr<Encoder> makeG729Encoder(const G729Params& params, unsigned ptimeMs);
std::unique_ptr<Decoder> makeG729Decoder();

}  // namespace medius::media::codec::detail
