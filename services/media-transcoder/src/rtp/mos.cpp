#include "medius/media/rtp/mos.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace medius::media::rtp {

namespace {

bool equalsIgnoreCase(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

}  // namespace

std::optional<Codec> codecFromName(std::string_view name) noexcept {
  if (equalsIgnoreCase(name, "PCMU")) return Codec::Pcmu;
  if (equalsIgnoreCase(name, "PCMA")) return Codec::Pcma;
  if (equalsIgnoreCase(name, "G722")) return Codec::G722;
  if (equalsIgnoreCase(name, "G729") || equalsIgnoreCase(name, "G729A")) return Codec::G729;
  if (equalsIgnoreCase(name, "opus")) return Codec::Opus;
  return std::nullopt;
}

CodecImpairment codecImpairment(Codec codec) noexcept {
  switch (codec) {
    case Codec::Pcmu:
    case Codec::Pcma:
      // G.113 Appendix I (Bpl table): G.711 with packet loss concealment, random loss.
      return {0.0, 25.1};
    case Codec::G711NoPlc:
      // G.113 Appendix I (Bpl table): G.711 without PLC (loss = silence insertion).
      return {0.0, 4.3};
    case Codec::G729:
      // G.113 Appendix I (Ie and Bpl tables): G.729A + VAD, Ie = 11, Bpl = 19 (the values
      // commonly used for G.729 in general, with or without Annex B VAD).
      return {11.0, 19.0};
    case Codec::G722:
      // G.113 Appendix IV gives G.722 only on the wideband scale of G.107.1 (Ie,wb about
      // 13-14 at 64 kbit/s, depending on the edition). Vendors' planning guides map it
      // back to the narrowband scale with Ie = Ie,wb - 15, i.e. Ie = -1 for G.722/64 (Mitel
      // MX-ONE "Speech compression impairment" table). On the narrowband scale used here we
      // take Ie = 0 (no credit above G.711), and assume its PLC (G.722 Appendix III/IV) as
      // robust as G.711's: Bpl = 25.1. An assumption, not an ITU value.
    case Codec::Opus:
      // No ITU-T value for Opus. Same narrowband-scale treatment as G.722: Ie = 0 and the
      // G.711+PLC robustness (Bpl = 25.1), conservative for Opus's PLC and in-band FEC.
      return {0.0, 25.1};
  }
  return {0.0, 25.1};
}

double delayImpairment(double ta, DelayModel model) noexcept {
  if (!(ta > 0)) return 0.0;  // also NaN
  if (model == DelayModel::ColeRosenbluth) {
    return 0.024 * ta + (ta > 177.3 ? 0.11 * (ta - 177.3) : 0.0);
  }
  // G.107 Idd, with mT = 100 ms and sT = 1 (the defaults):
  //   Idd = 0 for Ta <= 100; else X = log2(Ta / 100) and
  //   Idd = 25 { (1 + X^6)^(1/6) - 3 (1 + (X/3)^6)^(1/6) + 2 }.
  if (ta <= 100.0) return 0.0;
  const double x = std::log2(ta / 100.0);
  return 25.0 * (std::pow(1.0 + std::pow(x, 6.0), 1.0 / 6.0) -
                 3.0 * std::pow(1.0 + std::pow(x / 3.0, 6.0), 1.0 / 6.0) + 2.0);
}

double effectiveEquipmentImpairment(const CodecImpairment& codec, double ppl, double burstR) noexcept {
  // G.107 Ie,eff. Loss outside 0..100 and BurstR < 1 are clamped (garbage in from a
  // peer's report must not produce a MOS outside the scale).
  ppl = std::isnan(ppl) ? 0.0 : std::clamp(ppl, 0.0, 100.0);
  burstR = std::isnan(burstR) ? 1.0 : std::max(burstR, 1.0);
  const double bpl = codec.bpl > 0 ? codec.bpl : 1.0;
  if (ppl == 0.0) return codec.ie;
  return codec.ie + (95.0 - codec.ie) * ppl / (ppl / burstR + bpl);
}

double rFactor(const QualityInput& in) noexcept {
  return 93.2 - delayImpairment(in.oneWayDelayMs, in.delayModel) -
         effectiveEquipmentImpairment(in.codec, in.packetLossPercent, in.burstRatio);
}

double mosFromR(double r) noexcept {
  if (std::isnan(r) || r < 0) return 1.0;
  if (r > 100) return 4.5;
  return std::max(1.0, 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6);
}

double estimateMos(const QualityInput& input) noexcept { return mosFromR(rFactor(input)); }

}  // namespace medius::media::rtp
