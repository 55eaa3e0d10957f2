// Codec table, fmtp parsing, factories, and the G.711 / G.722 codecs (spandsp).
#include "medius/media/codec/codec.hpp"

#include <spandsp.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>
#include <string>

#include "backends.hpp"

namespace medius::media::codec {

namespace {

// RFC 3551 4.5.14: G.711 is sample based, any multiple of the sampling period is valid; we
// accept 10..60 ms (larger packets do not fit common MTU budgets with SRTP at 48 kHz).
constexpr std::array<std::uint16_t, 6> kSamplePtimes{10, 20, 30, 40, 50, 60};
// G.729: 10 ms frames, several per packet (RFC 3551 4.5.6).
constexpr std::array<std::uint16_t, 4> kG729Ptimes{10, 20, 30, 40};
// Opus: 10, 20, 40, 60 ms frames (RFC 6716 section 2.1.4; 2.5/5 ms are not used for VoIP).
constexpr std::array<std::uint16_t, 4> kOpusPtimes{10, 20, 40, 60};

constexpr std::array<CodecInfo, 5> kCodecs{{
    {CodecId::Pcmu, "PCMU", 8000, 8000, 0, 20, kSamplePtimes, 0},
    {CodecId::Pcma, "PCMA", 8000, 8000, 8, 20, kSamplePtimes, 0},
    {CodecId::G722, "G722", 8000, 16000, 9, 20, kSamplePtimes, 0},
    {CodecId::G729, "G729", 8000, 8000, 18, 20, kG729Ptimes, 10},
    {CodecId::Opus, "opus", 48000, 48000, std::nullopt, 20, kOpusPtimes, 10},
}};

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool parseUint(std::string_view s, std::uint32_t& out) noexcept {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && ptr == s.data() + s.size();
}

// RFC 7587 6.1 boolean parameters are "0" or "1"; out is left alone otherwise.
bool parseBool01(std::string_view s, bool& out) noexcept {
  if (s == "0") {
    out = false;
    return true;
  }
  if (s == "1") {
    out = true;
    return true;
  }
  return false;
}

unsigned resolvePtime(CodecId id, std::uint16_t ptimeMs) {
  unsigned ptime = ptimeMs == 0 ? codecInfo(id).defaultPtimeMs : ptimeMs;
  if (!ptimeAllowed(id, ptime)) {
    throw std::invalid_argument("codec " + std::string(codecInfo(id).encodingName) + ": ptime " +
                                std::to_string(ptime) + " ms not supported");
  }
  return ptime;
}

// --- G.711 (ITU-T G.711; spandsp's inline companders, the same tables as g711_encode) ------

class G711Encoder final : public Encoder {
 public:
  G711Encoder(CodecId id, unsigned ptimeMs) : Encoder(id, 8000, ptimeMs) {}
  EncodeResult encode(std::span<const std::int16_t> pcm,
                      std::span<std::uint8_t> out) noexcept override {
    if (pcm.size() != samplesPerPacket()) return {CodecStatus::BadFrameSize, 0};
    if (out.size() < pcm.size()) return {CodecStatus::BufferTooSmall, 0};
    if (id() == CodecId::Pcmu) {
      for (std::size_t i = 0; i < pcm.size(); ++i) out[i] = linear_to_ulaw(pcm[i]);
    } else {
      for (std::size_t i = 0; i < pcm.size(); ++i) out[i] = linear_to_alaw(pcm[i]);
    }
    return {CodecStatus::Ok, pcm.size()};
  }
};

// spandsp's plc_state_t is a plain struct: held by value, no allocation.
class Plc {
 public:
  Plc() { plc_init(&state_); }
  void reset() noexcept { plc_init(&state_); }
  void received(std::span<std::int16_t> pcm) noexcept {
    plc_rx(&state_, pcm.data(), static_cast<int>(pcm.size()));
  }
  void fill(std::span<std::int16_t> pcm) noexcept {
    // spandsp 0.0.6's normalise_history() (first step of plc_fillin) shifts its ring buffer
    // with an overlapping memcpy (undefined behaviour, flagged by ASan). Do that rotation
    // here with std::rotate, leaving buf_ptr at 0 so spandsp's version is a no-op.
    auto* begin = std::begin(state_.history);
    std::rotate(begin, begin + state_.buf_ptr, std::end(state_.history));
    state_.buf_ptr = 0;
    plc_fillin(&state_, pcm.data(), static_cast<int>(pcm.size()));
  }

 private:
  plc_state_t state_{};
};

class G711Decoder final : public Decoder {
 public:
  explicit G711Decoder(CodecId id) : Decoder(id, 8000) {}
  DecodeResult decode(std::span<const std::uint8_t> payload,
                      std::span<std::int16_t> pcm) noexcept override {
    if (payload.empty()) return {CodecStatus::BadPayload, 0};
    if (pcm.size() < payload.size()) return {CodecStatus::BufferTooSmall, 0};
    if (id() == CodecId::Pcmu) {
      for (std::size_t i = 0; i < payload.size(); ++i) pcm[i] = ulaw_to_linear(payload[i]);
    } else {
      for (std::size_t i = 0; i < payload.size(); ++i) pcm[i] = alaw_to_linear(payload[i]);
    }
    plc_.received(pcm.first(payload.size()));
    return {CodecStatus::Ok, payload.size()};
  }
  DecodeResult conceal(std::size_t samples, std::span<std::int16_t> pcm) noexcept override {
    if (samples == 0 || samples > kMaxDecodedSamples) return {CodecStatus::BadFrameSize, 0};
    if (pcm.size() < samples) return {CodecStatus::BufferTooSmall, 0};
    plc_.fill(pcm.first(samples));
    return {CodecStatus::Ok, samples};
  }
  void reset() noexcept override { plc_.reset(); }

 private:
  Plc plc_;
};

// --- G.722 at 64 kbit/s (spandsp g722, 16 kHz PCM; RFC 3551 4.5.2) ---------------------------
//
// Narrowband PCM (G722Params::narrowbandPcm, spandsp's G722_SAMPLE_RATE_8000): 8 kHz PCM
// goes into and comes out of the lower sub-band only, without the QMF filter bank and
// without resampling. The stream on the wire is ordinary G.722 (the upper sub-band carries
// silence); a peer decodes it at 16 kHz as usual. For a PCMU/PCMA/G.729 peer on the other
// leg nothing is lost: its audio has nothing above 4 kHz, and what G.722 carries above
// 4 kHz it could not play.

class G722Encoder final : public Encoder {
 public:
  G722Encoder(unsigned ptimeMs, bool narrowband)
      : Encoder(CodecId::G722, narrowband ? 8000 : 16000, ptimeMs) {
    state_ = g722_encode_init(nullptr, 64000, narrowband ? G722_SAMPLE_RATE_8000 : 0);
    if (state_ == nullptr) throw std::runtime_error("g722_encode_init failed");
  }
  ~G722Encoder() override { g722_encode_free(state_); }
  EncodeResult encode(std::span<const std::int16_t> pcm,
                      std::span<std::uint8_t> out) noexcept override {
    if (pcm.size() != samplesPerPacket()) return {CodecStatus::BadFrameSize, 0};
    // One byte per 125 us of audio: per sample at 8 kHz, per two at 16 kHz.
    if (out.size() < samplesPerPacket() * 8000 / sampleRate()) return {CodecStatus::BufferTooSmall, 0};
    int n = g722_encode(state_, out.data(), pcm.data(), static_cast<int>(pcm.size()));
    return {CodecStatus::Ok, static_cast<std::size_t>(n)};
  }

 private:
  g722_encode_state_t* state_ = nullptr;
};

class G722Decoder final : public Decoder {
 public:
  explicit G722Decoder(bool narrowband)
      : Decoder(CodecId::G722, narrowband ? 8000 : 16000), samplesPerByte_(narrowband ? 1 : 2) {
    state_ = g722_decode_init(nullptr, 64000, narrowband ? G722_SAMPLE_RATE_8000 : 0);
    if (state_ == nullptr) throw std::runtime_error("g722_decode_init failed");
  }
  ~G722Decoder() override { g722_decode_free(state_); }
  DecodeResult decode(std::span<const std::uint8_t> payload,
                      std::span<std::int16_t> pcm) noexcept override {
    if (payload.empty()) return {CodecStatus::BadPayload, 0};
    if (payload.size() * samplesPerByte_ > kMaxDecodedSamples) return {CodecStatus::BadPayload, 0};
    if (pcm.size() < payload.size() * samplesPerByte_) return {CodecStatus::BufferTooSmall, 0};
    int n = g722_decode(state_, pcm.data(), payload.data(), static_cast<int>(payload.size()));
    auto written = static_cast<std::size_t>(std::max(n, 0));
    plc_.received(pcm.first(written));
    return {CodecStatus::Ok, written};
  }
  // spandsp's PLC is tuned for 8 kHz (pitch search 66..200 Hz there); at 16 kHz it searches
  // 133..400 Hz, which still finds a multiple of lower pitches. G.722's own Appendix III/IV
  // PLC is not in spandsp 0.0.6. The ADPCM state is not updated by the fill-in, so the first
  // packet after a loss starts from the pre-loss predictor (as spandsp's own examples do).
  DecodeResult conceal(std::size_t samples, std::span<std::int16_t> pcm) noexcept override {
    if (samples == 0 || samples > kMaxDecodedSamples) return {CodecStatus::BadFrameSize, 0};
    if (pcm.size() < samples) return {CodecStatus::BufferTooSmall, 0};
    plc_.fill(pcm.first(samples));
    return {CodecStatus::Ok, samples};
  }
  void reset() noexcept override {
    // In place (no allocation with a state given), in the same PCM mode.
    g722_decode_init(state_, 64000, samplesPerByte_ == 1 ? G722_SAMPLE_RATE_8000 : 0);
    plc_.reset();
  }

 private:
  g722_decode_state_t* state_ = nullptr;
  std::size_t samplesPerByte_;
  Plc plc_;
};

}  // namespace

const CodecInfo& codecInfo(CodecId id) noexcept { return kCodecs[static_cast<std::size_t>(id)]; }

std::optional<CodecId> codecFromName(std::string_view encodingName,
                                     std::uint32_t clockRate) noexcept {
  for (const auto& info : kCodecs) {
    if (iequals(info.encodingName, encodingName) &&
        (clockRate == 0 || clockRate == info.rtpClockRate)) {
      return info.id;
    }
  }
  return std::nullopt;
}

bool ptimeAllowed(CodecId id, unsigned ptimeMs) noexcept {
  const auto& allowed = codecInfo(id).allowedPtimesMs;
  return std::find(allowed.begin(), allowed.end(), ptimeMs) != allowed.end();
}

std::string_view toString(CodecStatus status) noexcept {
  switch (status) {
    case CodecStatus::Ok:
      return "ok";
    case CodecStatus::BadPayload:
      return "bad-payload";
    case CodecStatus::BadFrameSize:
      return "bad-frame-size";
    case CodecStatus::BufferTooSmall:
      return "buffer-too-small";
    case CodecStatus::CodecError:
      return "codec-error";
  }
  return "unknown";
}

std::uint32_t Encoder::timestampIncrement() const noexcept {
  return codecInfo(id_).rtpClockRate / 1000 * ptimeMs_;
}

bool applyFmtp(CodecId id, std::string_view fmtp, CodecParams& params) noexcept {
  bool ok = true;
  while (!fmtp.empty()) {
    auto semi = fmtp.find(';');
    std::string_view item = trim(fmtp.substr(0, semi));
    fmtp = semi == std::string_view::npos ? std::string_view{} : fmtp.substr(semi + 1);
    auto eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = trim(item.substr(0, eq));
    std::string_view value = trim(item.substr(eq + 1));
    std::uint32_t number = 0;
    if (id == CodecId::Opus) {
      // RFC 7587 section 6.1; ranges from RFC 7587 (maxplaybackrate 8000..48000, bitrate
      // 6000..510000).
      if (iequals(key, "maxplaybackrate")) {
        if (parseUint(value, number) && number >= 8000) {
          params.opus.maxPlaybackRate = std::min<std::uint32_t>(number, 48000);
        } else {
          ok = false;
        }
      } else if (iequals(key, "maxaveragebitrate")) {
        if (parseUint(value, number) && number >= 6000) {
          params.opus.maxAverageBitrate = std::min<std::uint32_t>(number, 510000);
        } else {
          ok = false;
        }
      } else if (iequals(key, "useinbandfec")) {
        ok = parseBool01(value, params.opus.useInbandFec) && ok;
      } else if (iequals(key, "usedtx")) {
        ok = parseBool01(value, params.opus.useDtx) && ok;
      } else if (iequals(key, "stereo")) {
        ok = parseBool01(value, params.opus.stereo) && ok;
      }
    } else if (id == CodecId::G729 && iequals(key, "annexb")) {
      // RFC 4856 section 2.1.9: "yes" or "no".
      if (iequals(value, "yes")) {
        params.g729.annexB = true;
      } else if (iequals(value, "no")) {
        params.g729.annexB = false;
      } else {
        ok = false;
      }
    }
  }
  return ok;
}

std::uint32_t opusPcmRate(const OpusParams& params) noexcept {
  if (params.pcmRate != 0) return params.pcmRate;
  for (std::uint32_t rate : {8000u, 12000u, 16000u, 24000u}) {
    if (params.maxPlaybackRate <= rate) return rate;
  }
  return 48000;
}

std::unique_ptr<Encoder> makeEncoder(CodecId id, const CodecParams& params) {
  unsigned ptime = resolvePtime(id, params.ptimeMs);
  switch (id) {
    case CodecId::Pcmu:
    case CodecId::Pcma:
      return std::make_unique<G711Encoder>(id, ptime);
    case CodecId::G722:
      return std::make_unique<G722Encoder>(ptime, params.g722.narrowbandPcm);
    case CodecId::G729:
      return detail::makeG729Encoder(params.g729, ptime);
    case CodecId::Opus:
      return detail::makeOpusEncoder(params.opus, ptime);
  }
  throw std::invalid_argument("unknown codec");
}

std::unique_ptr<Decoder> makeDecoder(CodecId id, const CodecParams& params) {
  switch (id) {
    case CodecId::Pcmu:
    case CodecId::Pcma:
      return std::make_unique<G711Decoder>(id);
    case CodecId::G722:
      return std::make_unique<G722Decoder>(params.g722.narrowbandPcm);
    case CodecId::G729:
      return detail::makeG729Decoder();
    case CodecId::Opus:
      return detail::makeOpusDecoder(params.opus);
  }
  throw std::invalid_argument("unknown codec");
}

}  // namespace medius::media::codec
