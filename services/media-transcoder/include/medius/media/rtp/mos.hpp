// Estimated call quality: the ITU-T G.107 E-model in the simplified form commonly used for
// VoIP monitoring (transmission planning defaults, no echo or quantisation terms):
//
//   R   = 93.2 - Id - Ie,eff                              (G.107: R0 - Is with all default values)
//   Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)  (G.107, effective equipment impairment)
//   MOS = 1 + 0.035 R + R (R - 60)(100 - R) 7e-6          (G.107 Annex B)
//
// Id comes from the mean one-way mouth-to-ear delay Ta (RTT/2 + jitter buffer + codec),
// either with G.107's Idd (the pure-delay term of Id; Idte and Idle taken as 0, i.e. echo
// controlled and the default TELR/WEPL) or
// the common piecewise line of Cole & Rosenbluth (2001): Id = 0.024 Ta + 0.11 (Ta - 177.3)
// H(Ta - 177.3).
//
// Codec impairments (Ie, Bpl) come from ITU-T G.113 Appendix I where it has them. The result
// is on the narrowband scale (R max 93.2, MOS max 4.41) for every codec so that calls compare
// across a trunk and a client leg; wideband codecs are not credited with their extra quality
// (see codecImpairment() for the values and their sources).
//
// Contract: pure, noexcept functions. Thread: no state.
#pragma once

#include <optional>
#include <string_view>

namespace medius::media::rtp {

enum class Codec { Pcmu, Pcma, G711NoPlc, G722, G729, Opus };

// "PCMU", "PCMA", "G722", "G729", "opus" (case-insensitive, the SDP rtpmap encoding names).
std::optional<Codec> codecFromName(std::string_view encodingName) noexcept;

struct CodecImpairment {
  double ie = 0;   // equipment impairment factor
  double bpl = 1;  // packet-loss robustness factor (> 0)
};

CodecImpairment codecImpairment(Codec codec) noexcept;

enum class DelayModel { G107, ColeRosenbluth };

struct QualityInput {
  CodecImpairment codec;
  double packetLossPercent = 0;  // Ppl, 0..100
  double oneWayDelayMs = 0;      // Ta, mean mouth-to-ear
  double burstRatio = 1;         // BurstR (G.107): 1 = random loss, > 1 bursty
  DelayModel delayModel = DelayModel::G107;
};

// Delay impairment Id for a one-way delay in ms.
double delayImpairment(double oneWayDelayMs, DelayModel model) noexcept;
// Effective equipment impairment Ie,eff.
double effectiveEquipmentImpairment(const CodecImpairment& codec, double packetLossPercent,
                                    double burstRatio) noexcept;
// The transmission rating R (not clamped: may be below 0 or above 100 only in theory).
double rFactor(const QualityInput& input) noexcept;
// G.107 Annex B: 1.0 for R < 0, 4.5 for R > 100, the cubic in between (floored at 1.0:
// the cubic dips just below 1 for 0 < R < 6.5).
double mosFromR(double r) noexcept;
// Convenience: mosFromR(rFactor(input)).
double estimateMos(const QualityInput& input) noexcept;

}  // namespace medius::media::rtp
