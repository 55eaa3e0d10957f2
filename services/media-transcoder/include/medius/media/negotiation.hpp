// SDP offer/answer (RFC 3264) across the two legs of a session: which codec and which SRTP
// keys each leg uses, whether a flow is relayed or transcoded, and the formats and a=crypto
// lines each leg is sent. The result is a MediaPlan (media_plan.hpp) for the data plane and
// an sdp::AudioOverride per rendered SDP.
//
// Policy per side (LegPolicy): SRTP off / optional / required, and the codecs the side may
// use in preference order (internal: opus, G722, PCMU, PCMA; a trunk: its list).
//
// Offer from leg X (the first one, or a re-offer), to leg Y:
//   - X's usable codecs: the codecs X offered that X's side allows, in X's order. None:
//     NegotiationError (the gateway answers 488).
//   - X's crypto: the first a=crypto line we can use (RFC 4568 7.1.1: the answerer picks;
//     srtp::answerCryptoOffer()), answered with our key of the last answer when the suite
//     stays.
//     Policy off and RTP/SAVP, or policy required and no usable line: NegotiationError.
//     Policy off with a best-effort RTP/AVP + a=crypto offer: answered plain.
//   - The offer to Y: first the codecs X offered that Y's side allows (so Y can pick one
//     that is relayed without decoding), then Y's other allowed codecs (transcoded), with
//     X's payload type numbers where X had them, static numbers, or free dynamic ones;
//     telephone-event (8000, and 48000 when Opus is offered) when X offered one; CN when X
//     did, or when Y's side takes CN (LegPolicy::comfortNoise), none of the codecs offered to
//     Y is one of X's (so the flows are transcoded whatever Y answers) and one of them is
//     G.711 or G.722 (we generate CN for those: CN/8000, PT 13). SRTP toward Y per Y's policy: off = RTP/AVP, optional = RTP/AVP with a=crypto
//     (best effort), required = RTP/SAVP; our a=crypto lines carry fresh keys
//     (srtp::interopOfferSuites(): AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM,
//     AEAD_AES_256_GCM, AES_CM_128_HMAC_SHA1_32 when available).
//   A re-offer once the session is established offers Y exactly what Y has (codec, events,
//   CN, protocol and our keys: no change of media toward Y); only X's side is
//   re-negotiated (a new codec, or new keys: re-keying, RFC 4568 7.1.4).
// Answer from Y (provisional answers too; the final one replaces them):
//   - Y's codec: the first format of the answer that X offered too (relayed), else the
//     first one we offered (transcoded); in the relayed case every other format of the
//     answer that X offered is relayed as well. Y's keys: the a=crypto line
//     with one of our tags and its suite (srtp::acceptCryptoAnswer()). Required and no
//     such line: NegotiationError.
//   - X's codec: Y's codec when X offered it (relay), else X's first usable codec
//     (transcode). The answer to X: X's codec with X's numbers, X's telephone-event, CN
//     when X offered it and Y does it too or the flows are transcoded (never CN X did not
//     offer); X's protocol; for SRTP, X's chosen tag and suite with our key.
//   - A flow whose source has telephone-event and whose target has none is transcoded even
//     between equal codecs: its events are played as in-band DTMF into the target's audio.
//
// Thread: one Negotiator per session, used under the session's mutex.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "medius/media/codec/codec.hpp"
#include "medius/media/media_plan.hpp"
#include "medius/media/sdp.hpp"
#include "medius/media/srtp/crypto_attribute.hpp"
#include "medius/media/srtp/sdes.hpp"
#include "medius/media/srtp/suite.hpp"

namespace medius::media {

enum class SrtpMode : std::uint8_t { Off, Optional, Required };
std::string_view srtpModeName(SrtpMode mode);

struct LegPolicy {
  SrtpMode srtp = SrtpMode::Off;
  std::vector<codec::CodecId> codecs{codec::CodecId::Pcmu, codec::CodecId::Pcma};
  // The side takes RFC 3389 comfort noise ("CN" in its codec list): it is offered CN/8000
  // even when the offerer did not offer CN, provided the worker transcodes toward it
  // whatever it answers (then it generates CN for it and consumes the CN it sends).
  bool comfortNoise = false;
};

// The defaults of the issue: internal clients SRTP required with Opus, G.722, PCMU, PCMA;
// trunks plain with G.711.
LegPolicy defaultInternalPolicy();
LegPolicy defaultTrunkPolicy();

// An offer or answer the session cannot take: the gateway answers 488 (an offer) or ends
// the call (an answer). what() says why, for a Warning header and the logs.
class NegotiationError : public std::runtime_error {
 public:
  explicit NegotiationError(const std::string& message) : std::runtime_error(message) {}
};

class Negotiator {
 public:
  Negotiator(LegPolicy legA, LegPolicy legB);

  // An offer from leg `from` (0 = A, 1 = B): returns what to render toward the other leg.
  // Throws NegotiationError.
  sdp::AudioOverride offer(int from, const sdp::AudioStream& offer);

  // Another offer toward the answering leg, of the same first offer, for a target whose
  // side has another policy (a dual fork's devices next to a PBX trunk, a failover trunk
  // with SRTP): its own codecs, SRTP and keys. `offerId` receives the number its answer
  // quotes (the first offer's is 0). Only while the first offer (not a re-offer) awaits
  // its answer. Throws NegotiationError.
  sdp::AudioOverride alternative(const LegPolicy& policy, std::uint32_t& offerId);

  // The answer of leg `from` to the offer we made it (provisional: early media; the final
  // answer may follow and replace it); `offerId` says which of the first offer's
  // alternatives it answers, and that offer's policy becomes the leg's. Without a pending offer to that leg (the gateway
  // re-sent a new peer of the leg the last SDP it had from us: a blind transfer's target),
  // it answers that SDP, offered on behalf of the other leg as it stands. Returns what to render toward the offering leg and
  // updates plan(). Throws NegotiationError; the previous plan then stays in force.
  sdp::AudioOverride answer(int from, const sdp::AudioStream& answer, bool provisional,
                            std::uint32_t offerId = 0);
  // A new peer of leg `leg` (the target of a blind transfer, replacing the transferor)
  // whose side has `policy`: an offer toward it made on behalf of the other leg as it
  // stands (that leg's codec, events, CN and keys: nothing changes toward it), with the
  // new side's codecs, SRTP and fresh keys, as a first offer to that side would be. Its
  // answer comes through answer(leg, ...) and `policy` becomes the leg's. Only once
  // established, with no offer awaiting its answer other than an earlier retarget's.
  // Throws NegotiationError.
  sdp::AudioOverride retarget(int leg, const LegPolicy& policy);

  // The plan in force (after the first answer). nullopt before.
  const std::optional<MediaPlan>& plan() const { return plan_; }

  // What an offer awaiting its answer already says of the media (for the load estimate
  // before any answer), per leg (0 = A, 1 = B): the codec each leg likely uses (the
  // offerer's first usable one; the first one offered to the answerer, in its offer 0)
  // and whether it has SRTP (the offerer's chosen a=crypto line; a=crypto in offer 0).
  struct Outlook {
    // No codec offered to the answerer is one of the offerer's: transcoded whatever it
    // answers.
    bool transcodeOnly = false;
    std::array<codec::CodecId, 2> codecs{codec::CodecId::Pcmu, codec::CodecId::Pcmu};
    std::array<bool, 2> srtp{false, false};
  };
  // nullopt when no offer awaits its answer.
  std::optional<Outlook> outlook() const;

 private:
  // What one leg uses once negotiated.
  struct LegState {
    bool established = false;
    sdp::Format codec;                       // its codec, with its PT on this leg
    // Further codecs both legs accepted (relayed flows only, RFC 3264 6.1: either side may
    // send any format of the answer), in step with the other leg's `more`.
    std::vector<sdp::Format> more;
    std::optional<codec::CodecId> known;     // when we can decode it
    std::optional<sdp::Format> event;        // telephone-event
    std::optional<sdp::Format> cn;
    std::uint32_t ptimeMs = 0;
    std::uint32_t maxptimeMs = 0;  // a=maxptime: the longest packets it takes (0: any)
    std::string protocol = "RTP/AVP";
    // SRTP: the a=crypto line agreed on, the peer's (its key is the plan's inbound) and
    // ours (outbound), with the same tag and suite.
    std::optional<srtp::SdesChoice> sdes;
  };
  // What we offered the answerer for one policy of its side: formats, protocol, and our
  // a=crypto lines (tag, suite and our key).
  struct Offered {
    LegPolicy policy;
    std::vector<sdp::Format> formats;
    std::string protocol;
    std::vector<srtp::CryptoAttribute> cryptos;
  };
  // An offer we relayed and whose answer is awaited.
  struct Pending {
    int offerer = -1;
    // The offerer's side: usable codecs in its order (with its PTs), its events and CN.
    std::vector<sdp::Format> offererCodecs;
    std::vector<sdp::Format> offererEvents;
    std::optional<sdp::Format> offererCn;
    std::uint32_t offererPtime = 0;
    std::uint32_t offererMaxptime = 0;
    std::string offererProtocol;
    // The offerer's chosen a=crypto line and ours toward it (made with the offer, sent in
    // the answer).
    std::optional<srtp::SdesChoice> offererSdes;
    // Every payload type of the offer (taken when we add codecs or events).
    std::set<unsigned> offererPts;
    // What we offered the answerer: [0] made by offer(), more by alternative().
    std::vector<Offered> offers;
    bool reoffer = false;
    // Made by retarget(): another retarget() may replace it (the transfer target did not
    // answer and the gateway tries again).
    bool retarget = false;
  };

  static Offered makeOffer(const Pending& p, const LegPolicy& answerer);
  // An offer from leg `offerer` as it stands (its codec and the other codecs it relays,
  // events, CN, ptime, protocol and a=crypto), with no offer to the other leg yet.
  Pending standing(int offerer) const;
  static sdp::AudioOverride overrideOf(const Pending& p, const Offered& o);
  sdp::AudioOverride render(const LegState& leg) const;
  MediaPlan buildPlan() const;

  std::array<LegPolicy, 2> policy_;
  std::array<LegState, 2> legs_;
  std::optional<Pending> pending_;
  std::optional<MediaPlan> plan_;
};

}  // namespace medius::media
