// The negotiated media of one session: what the relay worker does with every packet.
//
// SDP negotiation (negotiation.hpp) produces a MediaPlan from the offers and answers of the
// two legs; the data plane (MediaPipeline, pipeline.hpp) is built from it off the packet
// path and swapped into the session on its worker. A new plan (re-INVITE, final answer
// after early media, re-keying) builds a new pipeline; what does not change keeps its state
// where the pipeline can carry it over (see MediaPipeline).
//
// Vocabulary: leg 0 is A (the caller's side), leg 1 is B. Flow i carries packets received
// on leg i to the other leg: flows[0] is A->B, flows[1] is B->A. A payload type (PT) is
// always the number used on the leg in question (each leg has its own PT space: leg A may
// call Opus 111 and leg B 96).
//
// Thread: values.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "medius/media/codec/codec.hpp"
#include "medius/media/codec/transcoder.hpp"
#include "medius/media/srtp/keys.hpp"
#include "medius/media/srtp/suite.hpp"

namespace medius::media {

// One SRTP context's parameters: the suite and the master key || salt.
struct SrtpParams {
  srtp::CryptoSuite suite = srtp::CryptoSuite::AesCm128HmacSha1_80;
  srtp::KeyMaterial key;
  // The peer's MKI (inbound only; we never send one).
  std::optional<srtp::Mki> mki;
  // The peer's further master keys, each with its MKI (inbound only): RFC 4568 section 6.1
  // allows several keys in one a=crypto line, and the MKI in each packet says which one
  // protected it (a sender may move to the next key without a re-offer).
  std::vector<srtp::MasterKey> moreKeys;
  bool operator==(const SrtpParams& other) const {
    return suite == other.suite && key == other.key && mki == other.mki && moreKeys == other.moreKeys;
  }
};

// What one leg's peer sends us and receives from us.
struct LegPlan {
  // SRTP with this leg's peer: `inbound` unprotects what it sends (its key, from its
  // a=crypto), `outbound` protects what we send it (our key, in our a=crypto). Both or
  // neither. SRTCP uses the same contexts' keys (RFC 3711 section 3.4).
  std::optional<SrtpParams> inbound;
  std::optional<SrtpParams> outbound;
  // The audio codec of this leg, for statistics, MOS and logs ("PCMU", "opus", "GSM").
  std::string codecName;
  // When the codec is one we can decode (needed only on a transcoded flow).
  std::optional<codec::CodecId> codec;
  std::uint8_t codecPt = 0;
  std::uint32_t codecClock = 8000;
  // Packetization this leg's peer asked for (a=ptime), 0 = the codec's default.
  std::uint16_t ptimeMs = 0;
  // RFC 4733 telephone-event on this leg, and its clock (8000, or 48000 next to Opus).
  std::optional<std::uint8_t> eventPt;
  std::uint32_t eventClock = 8000;
  // RFC 3389 comfort noise on this leg (PT 13 at 8000).
  std::optional<std::uint8_t> cnPt;
  // RFC 5761 rtcp-mux agreed with this leg: RTCP we generate for it goes to its RTP port.
  // (The data plane also learns it from a peer that sends RTCP on the RTP port.)
  bool rtcpMux = false;
  bool operator==(const LegPlan&) const = default;
};

// One direction of the session.
struct FlowPlan {
  enum class Mode : std::uint8_t {
    // Payloads cross unchanged (header PT rewritten through payloadMap; SSRC, sequence
    // numbers and timestamps untouched): the legs share the codec.
    Relay,
    // The audio PT is decoded and re-encoded (codec::Transcoder behind a jitter buffer);
    // telephone-events are mapped (PT and clock); CN is turned into noise or dropped.
    // Packets we generate carry our own SSRC, sequence numbers and timestamps.
    Transcode,
  };
  Mode mode = Mode::Relay;
  // Relay: for each PT received on the `from` leg, the PT to send on the other leg;
  // -1 = drop the packet (a format the other leg did not accept). Transcode: used for
  // nothing (the fields below decide).
  std::array<std::int16_t, 128> payloadMap = [] {
    std::array<std::int16_t, 128> m{};
    m.fill(-1);
    return m;
  }();
  // Transcode: source (the `from` leg) and target (the other leg) audio, the transcoder's
  // codecs and parameters (its `from` codec is the source leg's codec).
  codec::TranscoderConfig transcoder;
  std::uint8_t sourcePt = 0;
  std::uint8_t targetPt = 0;
  std::uint32_t sourceClock = 8000;
  std::uint32_t targetClock = 8000;
  std::uint16_t sourcePtimeMs = 20;  // the jitter buffer's frame (what the source sends)
  // Telephone-events: source PT/clock -> target PT/clock. When the source has them and the
  // target leg has none (targetEventPt unset), the data plane plays each event as in-band
  // DTMF tones in the target's audio; when the source has none and the target has, it
  // detects in-band digits in the source's audio and sends them as events (MediaPipeline).
  std::optional<std::uint8_t> sourceEventPt;
  std::optional<std::uint8_t> targetEventPt;
  std::uint32_t sourceEventClock = 8000;
  std::uint32_t targetEventClock = 8000;
  // CN received on the source leg (RFC 3389): its level becomes comfort noise in the
  // transcoder's input, so a target without CN hears noise instead of silence.
  std::optional<std::uint8_t> sourceCnPt;
  // CN on the target leg, at the target's clock, and a target codec without a silence
  // scheme of its own (G.711, G.722): the silence of the source (detected in the decoded
  // audio, or its CN, DTX and underruns) is sent to the target as CN packets in this PT
  // instead of audio frames (codec::SilenceSuppressor).
  std::optional<std::uint8_t> targetCnPt;
};

struct MediaPlan {
  std::array<LegPlan, 2> legs;
  std::array<FlowPlan, 2> flows;
  bool transcoding() const {
    return flows[0].mode == FlowPlan::Mode::Transcode || flows[1].mode == FlowPlan::Mode::Transcode;
  }
};

}  // namespace medius::media
