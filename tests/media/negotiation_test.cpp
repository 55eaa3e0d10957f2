// Tests of medius/media/negotiation.hpp: offer/answer across the two legs, SRTP policies,
// relay versus transcode, re-offers and early answers; and the rendering of the result.
#include "medius/media/negotiation.hpp"

#include <gtest/gtest.h>

#include <string>

#include "medius/media/load.hpp"
#include "medius/media/metrics.hpp"
#include "medius/media/session_manager.hpp"

#include <prometheus/registry.h>
#include "medius/media/srtp/crypto_attribute.hpp"

namespace medius::media {
namespace {

using codec::CodecId;

// A client offer like baresip's with mediaenc=srtp-mand and Opus.
const char* kOpusSrtpOffer =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.21\r\ns=-\r\nc=IN IP4 127.0.0.21\r\nt=0 0\r\n"
    "m=audio 40000 RTP/SAVP 96 101\r\n"
    "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    "a=sendrecv\r\n";

const char* kPcmuAnswer =
    "v=0\r\no=pbx 1 1 IN IP4 127.0.0.13\r\ns=-\r\nc=IN IP4 127.0.0.13\r\nt=0 0\r\n"
    "m=audio 50000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

sdp::AudioStream audioOf(const std::string& text) { return sdp::Description::parse(text).audio(); }

std::string sdpWith(const std::string& mline, const std::string& attributes) {
  return "v=0\r\no=x 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\n" + mline +
         "\r\n" + attributes;
}

LegPolicy internal(SrtpMode mode = SrtpMode::Required) {
  auto p = defaultInternalPolicy();
  p.srtp = mode;
  return p;
}

LegPolicy trunk(SrtpMode mode = SrtpMode::Off,
                std::vector<CodecId> codecs = {CodecId::Pcmu, CodecId::Pcma}) {
  return LegPolicy{mode, std::move(codecs)};
}

std::vector<std::string> formatNames(const sdp::AudioOverride& o) {
  std::vector<std::string> out;
  for (const auto& f : o.formats) out.push_back(f.name + "/" + std::to_string(f.clock) + ":" + std::to_string(f.pt));
  return out;
}

TEST(Negotiation, OpusSrtpClientToPcmuTrunkIsTranscodedAndEncryptedInsideOnly) {
  Negotiator n(internal(), trunk());
  auto toB = n.offer(0, audioOf(kOpusSrtpOffer));
  EXPECT_EQ(toB.protocol, "RTP/AVP");
  EXPECT_TRUE(toB.cryptos.empty());
  // Nothing the client offered may go to the trunk: its G.711 list, and DTMF at 8000.
  EXPECT_EQ(formatNames(toB), (std::vector<std::string>{"PCMU/8000:0", "PCMA/8000:8",
                                                        "telephone-event/8000:101"}));
  EXPECT_EQ(toB.ptimeMs, 20u);
  EXPECT_FALSE(n.plan());

  auto toA = n.answer(1, audioOf(kPcmuAnswer), false);
  EXPECT_EQ(toA.protocol, "RTP/SAVP");
  EXPECT_EQ(formatNames(toA), (std::vector<std::string>{"opus/48000:96", "telephone-event/8000:101"}));
  ASSERT_EQ(toA.cryptos.size(), 1u);
  auto ours = srtp::parseCryptoAttribute(toA.cryptos[0]);
  ASSERT_EQ(ours.status, srtp::ParseStatus::Ok) << ours.error;
  EXPECT_EQ(ours.attribute->tag, 1u);
  EXPECT_EQ(ours.attribute->suite, srtp::CryptoSuite::AesCm128HmacSha1_80);

  ASSERT_TRUE(n.plan());
  const MediaPlan& plan = *n.plan();
  EXPECT_TRUE(plan.transcoding());
  // Leg A: SRTP both ways, the client's key inbound and a fresh one of ours outbound.
  ASSERT_TRUE(plan.legs[0].inbound && plan.legs[0].outbound);
  auto theirs = srtp::parseCryptoAttribute(
      "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz");
  EXPECT_EQ(plan.legs[0].inbound->key, theirs.attribute->keys[0].keySalt);
  EXPECT_EQ(plan.legs[0].outbound->key, ours.attribute->keys[0].keySalt);
  EXPECT_FALSE(plan.legs[0].outbound->key == plan.legs[0].inbound->key);
  EXPECT_FALSE(plan.legs[1].inbound);
  EXPECT_FALSE(plan.legs[1].outbound);
  EXPECT_EQ(plan.legs[0].codec, CodecId::Opus);
  EXPECT_EQ(plan.legs[1].codec, CodecId::Pcmu);
  const FlowPlan& aToB = plan.flows[0];
  EXPECT_EQ(aToB.mode, FlowPlan::Mode::Transcode);
  EXPECT_EQ(aToB.transcoder.from, CodecId::Opus);
  EXPECT_EQ(aToB.transcoder.to, CodecId::Pcmu);
  EXPECT_EQ(aToB.sourcePt, 96);
  EXPECT_EQ(aToB.targetPt, 0);
  EXPECT_EQ(aToB.sourceClock, 48000u);
  EXPECT_EQ(aToB.targetClock, 8000u);
  EXPECT_EQ(aToB.sourceEventPt, 101);
  EXPECT_EQ(aToB.targetEventPt, 101);
  const FlowPlan& bToA = plan.flows[1];
  EXPECT_EQ(bToA.transcoder.from, CodecId::Pcmu);
  EXPECT_EQ(bToA.transcoder.to, CodecId::Opus);
  EXPECT_EQ(bToA.transcoder.toParams.ptimeMs, 20);
}

// RFC 3389 CN offered to the called side on its own policy ("CN" in its codec list), not
// only when the caller offered it: the Opus client's audio is transcoded for the trunk
// whatever it answers, so the worker consumes the trunk's CN and generates CN for it.
TEST(Negotiation, CnIsOfferedToACnTrunkWhenTheCallIsTranscodedAnyway) {
  LegPolicy cnTrunk = trunk();
  cnTrunk.comfortNoise = true;
  Negotiator n(internal(), cnTrunk);
  auto toB = n.offer(0, audioOf(kOpusSrtpOffer));
  EXPECT_EQ(formatNames(toB), (std::vector<std::string>{"PCMU/8000:0", "PCMA/8000:8", "telephone-event/8000:101",
                                                        "CN/8000:13"}));
  auto toA = n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/AVP 0 101 13",
                                         "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
                                         "a=rtpmap:13 CN/8000\r\n")),
                      false);
  EXPECT_EQ(formatNames(toA), (std::vector<std::string>{"opus/48000:96", "telephone-event/8000:101"}))
      << "the client did not offer CN: its answer has none";
  const MediaPlan& plan = *n.plan();
  EXPECT_EQ(plan.flows[0].targetCnPt, 13) << "the client's silence becomes CN for the trunk";
  EXPECT_FALSE(plan.flows[0].sourceCnPt);
  EXPECT_EQ(plan.flows[1].sourceCnPt, 13) << "the trunk's CN becomes noise for the client";
  EXPECT_FALSE(plan.flows[1].targetCnPt);
  EXPECT_FALSE(plan.legs[0].cnPt);
  EXPECT_EQ(plan.legs[1].cnPt, 13);

  // Without "CN" in its list the trunk is offered none (the caller did not offer it).
  Negotiator plain(internal(), trunk());
  for (const auto& f : plain.offer(0, audioOf(kOpusSrtpOffer)).formats) EXPECT_NE(f.name, "CN");
}

TEST(Negotiation, CnIsNotOfferedOnTheCalledSidesBehalfWhenItCouldBeRelayed) {
  // The caller has PCMU: a PCMU answer would be relayed, and CN the caller did not ask for
  // could not cross (we would drop it: silence instead of the called side's noise).
  LegPolicy cnTrunk = trunk();
  cnTrunk.comfortNoise = true;
  Negotiator n(trunk(), cnTrunk);
  const std::string pcmu = sdpWith("m=audio 30000 RTP/AVP 0 8", "a=sendrecv\r\n");
  for (const auto& f : n.offer(0, audioOf(pcmu)).formats) EXPECT_NE(f.name, "CN");
  // Toward Opus only (no codec we generate CN for): none either.
  LegPolicy opusCn{SrtpMode::Off, {CodecId::Opus}};
  opusCn.comfortNoise = true;
  Negotiator m(trunk(), opusCn);
  for (const auto& f : m.offer(0, audioOf(pcmu)).formats) EXPECT_NE(f.name, "CN");
}

TEST(Negotiation, CnTheCallerOfferedIsGeneratedTowardItWhenTranscoded) {
  // The caller offers PCMU with CN; the called side answers Opus without CN: the caller is
  // answered with CN, and its direction from the Opus side generates it.
  Negotiator n(trunk(), internal(SrtpMode::Off));
  auto toB = n.offer(0, audioOf(sdpWith("m=audio 30000 RTP/AVP 0 13", "a=rtpmap:13 CN/8000\r\n")));
  auto toA = n.answer(1, audioOf(sdpWith("m=audio 40000 RTP/AVP 111", "a=rtpmap:111 opus/48000/2\r\n")), false);
  EXPECT_EQ(formatNames(toA), (std::vector<std::string>{"PCMU/8000:0", "CN/8000:13"}));
  const MediaPlan& plan = *n.plan();
  EXPECT_EQ(plan.flows[1].targetCnPt, 13);
  EXPECT_EQ(plan.flows[0].sourceCnPt, 13);
  EXPECT_FALSE(plan.flows[0].targetCnPt) << "no CN toward Opus";
}

// A dual fork from a trunk: the PBX (plain G.711) and alice's devices (SRTP required, Opus
// first) each get an offer for their side, and the answer that wins sets leg B's policy.
const char* kPcmuTrunkOffer =
    "v=0\r\no=gw 1 1 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\n"
    "m=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\na=sendrecv\r\n";

const char* kOpusSrtpAnswer =
    "v=0\r\no=dev 1 1 IN IP4 127.0.0.21\r\ns=-\r\nc=IN IP4 127.0.0.21\r\nt=0 0\r\n"
    "m=audio 40000 RTP/SAVP 111 101\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    "a=sendrecv\r\n";

TEST(Negotiation, EachPolicyOfTheCalledSideGetsItsOwnOffer) {
  Negotiator n(trunk(), trunk());
  auto toPbx = n.offer(0, audioOf(kPcmuTrunkOffer));
  EXPECT_EQ(toPbx.protocol, "RTP/AVP");
  EXPECT_TRUE(toPbx.cryptos.empty());
  std::uint32_t id = 0;
  auto toDevices = n.alternative(internal(SrtpMode::Required), id);
  EXPECT_EQ(id, 1u);
  EXPECT_EQ(toDevices.protocol, "RTP/SAVP");
  EXPECT_FALSE(toDevices.cryptos.empty());
  // The caller's G.711 first (relayable), then the internal side's wideband codecs.
  EXPECT_EQ(formatNames(toDevices),
            (std::vector<std::string>{"PCMU/8000:0", "PCMA/8000:8", "opus/48000:111",
                                      "G722/8000:9", "telephone-event/8000:101",
                                      "telephone-event/48000:110"}));
  std::uint32_t again = 0;
  auto plainToo = n.alternative(internal(SrtpMode::Optional), again);
  EXPECT_EQ(again, 2u);
  EXPECT_EQ(plainToo.protocol, "RTP/AVP");
  EXPECT_FALSE(plainToo.cryptos.empty());  // best effort

  // A device answers Opus with SRTP (offer 1): transcoded, encrypted toward it.
  auto toCaller = n.answer(1, audioOf(kOpusSrtpAnswer), false, 1);
  EXPECT_EQ(toCaller.protocol, "RTP/AVP");
  EXPECT_EQ(formatNames(toCaller), (std::vector<std::string>{"PCMU/8000:0", "telephone-event/8000:101"}));
  const MediaPlan& plan = *n.plan();
  EXPECT_TRUE(plan.transcoding());
  EXPECT_EQ(plan.legs[1].codec, CodecId::Opus);
  ASSERT_TRUE(plan.legs[1].inbound && plan.legs[1].outbound);
  EXPECT_FALSE(plan.legs[0].inbound);
  // Its key is the one of offer 1's a=crypto:1.
  auto offered = srtp::parseCryptoAttribute(toDevices.cryptos[0]);
  ASSERT_EQ(offered.status, srtp::ParseStatus::Ok);
  EXPECT_EQ(plan.legs[1].outbound->key, offered.attribute->keys[0].keySalt);
  // From now on leg B is judged by the devices' policy: a plain re-offer from it is refused.
  EXPECT_THROW(n.offer(1, audioOf(kPcmuAnswer)), NegotiationError);
  // No alternative once the first offer is answered.
  EXPECT_THROW(n.alternative(trunk(), id), NegotiationError);
}

TEST(Negotiation, TheAnswerIsJudgedByTheOfferItAnswers) {
  Negotiator n(trunk(), trunk());
  n.offer(0, audioOf(kPcmuTrunkOffer));
  std::uint32_t id = 0;
  n.alternative(internal(SrtpMode::Required), id);
  // The PBX's plain answer to offer 1 (SRTP required) is refused; to offer 0 it is fine.
  EXPECT_THROW(n.answer(1, audioOf(kPcmuAnswer), false, 1), NegotiationError);
  EXPECT_THROW(n.answer(1, audioOf(kPcmuAnswer), false, 7), NegotiationError);
  // Early media from the devices (offer 1), then the PBX's final answer (offer 0).
  n.answer(1, audioOf(kOpusSrtpAnswer), true, 1);
  EXPECT_TRUE(n.plan()->legs[1].inbound);
  n.answer(1, audioOf(kPcmuAnswer), false, 0);
  EXPECT_FALSE(n.plan()->transcoding());
  EXPECT_FALSE(n.plan()->legs[1].inbound);
  EXPECT_EQ(n.plan()->legs[1].codec, CodecId::Pcmu);
}

TEST(Negotiation, ASharedCodecIsRelayedWithPayloadTypesMapped) {
  Negotiator n(internal(SrtpMode::Optional), trunk());
  auto offer = sdpWith("m=audio 40000 RTP/AVP 8 0 101", "a=rtpmap:101 telephone-event/8000\r\n");
  auto toB = n.offer(0, audioOf(offer));
  // The client's own order first (relayable), then nothing else: both are in the list.
  EXPECT_EQ(formatNames(toB), (std::vector<std::string>{"PCMA/8000:8", "PCMU/8000:0",
                                                        "telephone-event/8000:101"}));
  auto answer = sdpWith("m=audio 50000 RTP/AVP 0 100", "a=rtpmap:100 telephone-event/8000\r\n");
  auto toA = n.answer(1, audioOf(answer), false);
  EXPECT_EQ(formatNames(toA), (std::vector<std::string>{"PCMU/8000:0", "telephone-event/8000:101"}));
  EXPECT_EQ(toA.protocol, "RTP/AVP");
  const MediaPlan& plan = *n.plan();
  EXPECT_FALSE(plan.transcoding());
  EXPECT_EQ(plan.flows[0].payloadMap[0], 0);
  EXPECT_EQ(plan.flows[0].payloadMap[101], 100);  // the trunk renumbered its events
  EXPECT_EQ(plan.flows[1].payloadMap[100], 101);
  EXPECT_EQ(plan.flows[0].payloadMap[8], -1);     // PCMA was not chosen: dropped
  EXPECT_FALSE(plan.legs[0].inbound);
}

TEST(Negotiation, AStaticPayloadTypeTheOffererRebindsIsNotOfferedTwice) {
  // Found by sdp_fuzz: the caller binds payload type 0 to telephone-event (RFC 3551 allows
  // any rtpmap); PCMU, which we add for the trunk, then needs a dynamic payload type.
  Negotiator n(internal(SrtpMode::Optional), trunk());
  auto offer = sdpWith("m=audio 40000 RTP/AVP 0 8", "a=rtpmap:0 telephone-event/8000\r\n");
  auto toB = n.offer(0, audioOf(offer));
  EXPECT_EQ(formatNames(toB), (std::vector<std::string>{"PCMA/8000:8", "PCMU/8000:96",
                                                        "telephone-event/8000:0"}));
  auto answer = sdpWith("m=audio 50000 RTP/AVP 96 0", "a=rtpmap:96 PCMU/8000\r\n"
                        "a=rtpmap:0 telephone-event/8000\r\n");
  auto toA = n.answer(1, audioOf(answer), false);
  EXPECT_EQ(formatNames(toA), (std::vector<std::string>{"PCMA/8000:8", "telephone-event/8000:0"}));
  const MediaPlan& plan = *n.plan();
  EXPECT_TRUE(plan.transcoding());  // PCMA from the caller, PCMU at 96 toward the trunk
  EXPECT_EQ(plan.flows[0].targetPt, 96);
}

TEST(Negotiation, EveryCodecBothSidesAcceptedIsRelayed) {
  // RFC 3264 6.1: either side may send any format of the answer.
  Negotiator n(internal(SrtpMode::Optional), trunk());
  n.offer(0, audioOf(sdpWith("m=audio 40000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000\r\n")));
  auto toA = n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/AVP 0 8 101",
                                         "a=rtpmap:101 telephone-event/8000\r\n")), false);
  EXPECT_EQ(formatNames(toA), (std::vector<std::string>{"PCMU/8000:0", "PCMA/8000:8",
                                                        "telephone-event/8000:101"}));
  const MediaPlan& plan = *n.plan();
  EXPECT_FALSE(plan.transcoding());
  EXPECT_EQ(plan.flows[0].payloadMap[8], 8);
  EXPECT_EQ(plan.flows[1].payloadMap[8], 8);
  EXPECT_EQ(plan.flows[1].payloadMap[0], 0);
}

TEST(Negotiation, ARelayableCodecOfTheAnswerIsPreferredToTranscoding) {
  Negotiator n(internal(SrtpMode::Optional), trunk());
  auto toB = n.offer(0, audioOf(sdpWith("m=audio 40000 RTP/AVP 8", "")));
  EXPECT_EQ(formatNames(toB), (std::vector<std::string>{"PCMA/8000:8", "PCMU/8000:0"}));
  // The trunk prefers PCMU but accepts PCMA too: PCMA is relayed, nothing is transcoded.
  n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/AVP 0 8", "")), false);
  EXPECT_FALSE(n.plan()->transcoding());
  EXPECT_EQ(n.plan()->legs[1].codecName, "PCMA");
}

TEST(Negotiation, EventsTowardALegWithoutTelephoneEventAreRenderedInBand) {
  Negotiator n(internal(SrtpMode::Optional), trunk());
  n.offer(0, audioOf(sdpWith("m=audio 40000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000\r\n")));
  // The PBX takes PCMU but has no telephone-event.
  auto toA = n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/AVP 0", "")), false);
  // The client keeps sending events (we accept them) ...
  EXPECT_EQ(formatNames(toA), (std::vector<std::string>{"PCMU/8000:0", "telephone-event/8000:101"}));
  const MediaPlan& plan = *n.plan();
  // ... and A->B is decoded and re-encoded PCMU to PCMU, with tones mixed in.
  EXPECT_EQ(plan.flows[0].mode, FlowPlan::Mode::Transcode);
  EXPECT_EQ(plan.flows[0].transcoder.from, CodecId::Pcmu);
  EXPECT_EQ(plan.flows[0].transcoder.to, CodecId::Pcmu);
  EXPECT_EQ(plan.flows[0].sourceEventPt, 101);
  EXPECT_FALSE(plan.flows[0].targetEventPt);
  // B->A has nothing to render: relayed untouched.
  EXPECT_EQ(plan.flows[1].mode, FlowPlan::Mode::Relay);
  EXPECT_EQ(plan.flows[1].payloadMap[0], 0);
}

TEST(Negotiation, OpusBothSidesWithEventsAt8000IsRelayedWithItsEvents) {
  // SRTP<->SRTP, Opus both sides, both with telephone-event/8000 (as baresip does): the
  // offer carries events at 8000 (and 48000), the answer's 8000 ones are mapped, nothing is
  // transcoded.
  LegPolicy opusTrunk{SrtpMode::Required, {CodecId::Opus}};
  Negotiator n(internal(), opusTrunk);
  auto toB = n.offer(0, audioOf(kOpusSrtpOffer));
  EXPECT_EQ(formatNames(toB), (std::vector<std::string>{"opus/48000:96", "telephone-event/8000:101",
                                                        "telephone-event/48000:110"}));
  auto theirKey = srtp::makeLocalCryptoAttribute(1, srtp::CryptoSuite::AesCm128HmacSha1_80);
  n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/SAVP 96 101",
                              "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n"
                              "a=crypto:" + srtp::formatCryptoAttribute(theirKey) + "\r\n")),
           false);
  const MediaPlan& plan = *n.plan();
  EXPECT_FALSE(plan.transcoding());
  EXPECT_EQ(plan.flows[0].payloadMap[96], 96);
  EXPECT_EQ(plan.flows[0].payloadMap[101], 101);
  EXPECT_EQ(plan.flows[1].payloadMap[101], 101);
}

TEST(Negotiation, TranscodedPacketsRespectPtimeAndMaxptime) {
  auto flowPtime = [](const std::string& answerAttributes) {
    Negotiator n(internal(), trunk());
    n.offer(0, audioOf(kOpusSrtpOffer));
    n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/AVP 0", answerAttributes)), false);
    return n.plan()->flows[0].transcoder.toParams.ptimeMs;  // A (Opus) -> B (PCMU)
  };
  EXPECT_EQ(flowPtime(""), 20);                              // PCMU's default
  EXPECT_EQ(flowPtime("a=ptime:30\r\n"), 30);                // what B asks for
  EXPECT_EQ(flowPtime("a=maxptime:10\r\n"), 10);             // the default would be too long
  EXPECT_EQ(flowPtime("a=ptime:40\r\na=maxptime:30\r\n"), 30);  // never above maxptime
  EXPECT_EQ(flowPtime("a=ptime:25\r\n"), 20);                // not a PCMU packetization
  // Toward the client: its a=ptime:20, and Opus allows 20.
  Negotiator n(internal(), trunk());
  n.offer(0, audioOf(kOpusSrtpOffer));
  n.answer(1, audioOf(kPcmuAnswer), false);
  EXPECT_EQ(n.plan()->flows[1].transcoder.toParams.ptimeMs, 20);
}

TEST(Negotiation, SrtpRequiredWithoutCryptoIsRefused) {
  Negotiator n(internal(SrtpMode::Required), trunk());
  auto offer = sdpWith("m=audio 40000 RTP/AVP 0", "");
  try {
    n.offer(0, audioOf(offer));
    FAIL() << "accepted";
  } catch (const NegotiationError& e) {
    EXPECT_NE(std::string(e.what()).find("no a=crypto"), std::string::npos) << e.what();
  }
}

TEST(Negotiation, SavpWhereSrtpIsOffIsRefused) {
  Negotiator n(trunk(SrtpMode::Off), internal());
  auto offer = sdpWith("m=audio 40000 RTP/SAVP 0",
                       "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n");
  EXPECT_THROW(n.offer(0, audioOf(offer)), NegotiationError);
}

TEST(Negotiation, BestEffortCryptoWhereSrtpIsOffIsAnsweredPlain) {
  Negotiator n(trunk(SrtpMode::Off), trunk(SrtpMode::Off));
  auto offer = sdpWith("m=audio 40000 RTP/AVP 0",
                       "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n");
  n.offer(0, audioOf(offer));
  auto toA = n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/AVP 0", "")), false);
  EXPECT_TRUE(toA.cryptos.empty());
  EXPECT_FALSE(n.plan()->legs[0].inbound);
}

TEST(Negotiation, NoCommonCodecNamesWhatWasOffered) {
  Negotiator n(trunk(), internal());
  try {
    n.offer(0, audioOf(sdpWith("m=audio 40000 RTP/AVP 3", "")));
    FAIL() << "accepted";
  } catch (const NegotiationError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("GSM/8000"), std::string::npos) << what;
    EXPECT_NE(what.find("PCMU, PCMA"), std::string::npos) << what;
  }
}

TEST(Negotiation, UnknownAndBrokenCryptoLinesAreSkipped) {
  Negotiator n(internal(), trunk());
  auto offer = sdpWith("m=audio 40000 RTP/SAVP 0",
                       "a=crypto:1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
                       "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=\r\n"
                       "a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n");
  n.offer(0, audioOf(offer));
  auto toA = n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/AVP 0", "")), false);
  ASSERT_EQ(toA.cryptos.size(), 1u);
  auto line = srtp::parseCryptoAttribute(toA.cryptos[0]);
  EXPECT_EQ(line.attribute->tag, 3u);
  EXPECT_EQ(line.attribute->suite, srtp::CryptoSuite::AesCm128HmacSha1_32);
  EXPECT_EQ(n.plan()->legs[0].inbound->suite, srtp::CryptoSuite::AesCm128HmacSha1_32);
}

TEST(Negotiation, OnlyUnusableCryptoLinesAreRefusedWithTheReasons) {
  Negotiator n(internal(), trunk());
  auto offer = sdpWith("m=audio 40000 RTP/SAVP 0",
                       "a=crypto:1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n");
  try {
    n.offer(0, audioOf(offer));
    FAIL() << "accepted";
  } catch (const NegotiationError& e) {
    EXPECT_NE(std::string(e.what()).find("F8_128_HMAC_SHA1_80"), std::string::npos) << e.what();
  }
}

TEST(Negotiation, RequiredSrtpTowardTheAnswererNeedsItsKey) {
  Negotiator n(trunk(), internal(SrtpMode::Required));
  auto toB = n.offer(0, audioOf(sdpWith("m=audio 40000 RTP/AVP 0 8", "")));
  EXPECT_EQ(toB.protocol, "RTP/SAVP");
  ASSERT_GE(toB.cryptos.size(), 2u);
  auto first = srtp::parseCryptoAttribute(toB.cryptos[0]);
  EXPECT_EQ(first.attribute->suite, srtp::CryptoSuite::AesCm128HmacSha1_80);
  // Each line has its own fresh key.
  auto second = srtp::parseCryptoAttribute(toB.cryptos[1]);
  EXPECT_FALSE(first.attribute->keys[0].keySalt == second.attribute->keys[0].keySalt);
  // Offered to the client: the trunk's codecs first (relayable), then the client's others.
  EXPECT_EQ(formatNames(toB)[0], "PCMU/8000:0");
  EXPECT_EQ(formatNames(toB)[1], "PCMA/8000:8");
  EXPECT_EQ(formatNames(toB)[2], "opus/48000:111");
  EXPECT_EQ(formatNames(toB)[3], "G722/8000:9");

  EXPECT_THROW(n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/SAVP 0", "")), false), NegotiationError);
  EXPECT_FALSE(n.plan());
  // The client takes our second line (whatever suite this libsrtp2 put there) with its own
  // key: leg B's keys are its key inbound and our second key outbound.
  auto theirKey = srtp::makeLocalCryptoAttribute(second.attribute->tag, second.attribute->suite);
  std::string answer = sdpWith("m=audio 50000 RTP/SAVP 111",
                               "a=rtpmap:111 opus/48000/2\r\na=crypto:" +
                                   srtp::formatCryptoAttribute(theirKey) + "\r\n");
  auto toA = n.answer(1, audioOf(answer), false);
  EXPECT_EQ(toA.protocol, "RTP/AVP");
  EXPECT_TRUE(toA.cryptos.empty());
  const MediaPlan& plan = *n.plan();
  ASSERT_TRUE(plan.legs[1].inbound && plan.legs[1].outbound);
  EXPECT_EQ(plan.legs[1].inbound->suite, second.attribute->suite);
  EXPECT_TRUE(plan.legs[1].inbound->key == theirKey.keys[0].keySalt);
  EXPECT_TRUE(plan.legs[1].outbound->key == second.attribute->keys[0].keySalt);
  EXPECT_EQ(plan.legs[1].codec, CodecId::Opus);
  EXPECT_EQ(plan.flows[0].transcoder.to, CodecId::Opus);
}

TEST(Negotiation, ReofferFromTheTrunkKeepsTheClientsMediaAndKeys) {
  Negotiator n(internal(), trunk());
  n.offer(0, audioOf(kOpusSrtpOffer));
  auto firstAnswer = n.answer(1, audioOf(kPcmuAnswer), false);
  MediaPlan before = *n.plan();
  // Hold from the trunk: a re-offer with a=sendonly.
  auto hold = sdpWith("m=audio 50000 RTP/AVP 0 101",
                      "a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n");
  auto toA = n.offer(1, audioOf(hold));
  EXPECT_EQ(toA.protocol, "RTP/SAVP");
  EXPECT_EQ(formatNames(toA), (std::vector<std::string>{"opus/48000:96", "telephone-event/8000:101"}));
  ASSERT_EQ(toA.cryptos.size(), 1u);
  EXPECT_EQ(toA.cryptos[0], firstAnswer.cryptos[0]);  // same tag, suite and key
  auto toB = n.answer(0, audioOf(kOpusSrtpOffer), false);
  EXPECT_EQ(formatNames(toB), (std::vector<std::string>{"PCMU/8000:0", "telephone-event/8000:101"}));
  const MediaPlan& after = *n.plan();
  EXPECT_TRUE(after.transcoding());
  EXPECT_TRUE(after.legs[0].outbound->key == before.legs[0].outbound->key);
  EXPECT_TRUE(after.legs[0].inbound->key == before.legs[0].inbound->key);
}

TEST(Negotiation, RekeyingReofferFromTheClientChangesOnlyItsInboundKey) {
  Negotiator n(internal(), trunk());
  n.offer(0, audioOf(kOpusSrtpOffer));
  n.answer(1, audioOf(kPcmuAnswer), false);
  MediaPlan before = *n.plan();
  std::string rekeyed = kOpusSrtpOffer;
  rekeyed.replace(rekeyed.find("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"), 40,
                  "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk");
  auto toB = n.offer(0, audioOf(rekeyed));
  EXPECT_EQ(formatNames(toB), (std::vector<std::string>{"PCMU/8000:0", "telephone-event/8000:101"}));
  n.answer(1, audioOf(kPcmuAnswer), false);
  const MediaPlan& after = *n.plan();
  EXPECT_FALSE(after.legs[0].inbound->key == before.legs[0].inbound->key);
  EXPECT_TRUE(after.legs[0].outbound->key == before.legs[0].outbound->key);
}

TEST(Negotiation, EveryKeyOfAMultiKeyCryptoLineReachesThePlan) {
  // RFC 4568 section 6.1: two keys, each with a 1-octet MKI (as Lync/Skype for Business
  // write "|2^31|1:1").
  std::string offer = kOpusSrtpOffer;
  offer.replace(offer.find("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"), 40,
                "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31|1:1;"
                "inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk|2^31|2:1");
  Negotiator n(internal(), trunk());
  n.offer(0, audioOf(offer));
  n.answer(1, audioOf(kPcmuAnswer), false);
  const auto& inbound = n.plan()->legs[0].inbound;
  ASSERT_TRUE(inbound);
  ASSERT_TRUE(inbound->mki);
  EXPECT_EQ(inbound->mki->value, 1u);
  ASSERT_EQ(inbound->moreKeys.size(), 1u);
  ASSERT_TRUE(inbound->moreKeys[0].mki);
  EXPECT_EQ(inbound->moreKeys[0].mki->value, 2u);
  EXPECT_EQ(inbound->moreKeys[0].mki->length, 1u);
  EXPECT_FALSE(inbound->moreKeys[0].keySalt == inbound->key);
}

TEST(Negotiation, AFinalAnswerReplacesTheEarlyOne) {
  Negotiator n(trunk(), trunk(SrtpMode::Off, {CodecId::Pcmu, CodecId::Pcma, CodecId::G729}));
  n.offer(0, audioOf(sdpWith("m=audio 40000 RTP/AVP 0 8", "")));
  n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/AVP 0", "")), true);
  EXPECT_FALSE(n.plan()->transcoding());
  EXPECT_EQ(n.plan()->legs[1].codecName, "PCMU");
  auto toA = n.answer(1, audioOf(sdpWith("m=audio 50002 RTP/AVP 18", "a=rtpmap:18 G729/8000\r\n")), false);
  EXPECT_TRUE(n.plan()->transcoding());
  EXPECT_EQ(n.plan()->legs[1].codec, CodecId::G729);
  EXPECT_EQ(formatNames(toA), (std::vector<std::string>{"PCMU/8000:0"}));
  // Another answer without a new offer answers the SDP B last had from us (a transfer
  // target's answer): that SDP offered G.729 only, so PCMU is refused and G.729 taken.
  EXPECT_THROW(n.answer(1, audioOf(sdpWith("m=audio 50004 RTP/AVP 0", "")), false), NegotiationError);
  n.answer(1, audioOf(sdpWith("m=audio 50004 RTP/AVP 18", "a=rtpmap:18 G729/8000\r\n")), false);
  EXPECT_EQ(n.plan()->legs[1].codec, CodecId::G729);
  // Before any offer and answer there is nothing to answer.
  Negotiator fresh(trunk(), trunk());
  EXPECT_THROW(fresh.answer(1, audioOf(sdpWith("m=audio 50002 RTP/AVP 0", "")), false), NegotiationError);
}

TEST(Negotiation, ATransferTargetsAnswerToTheTransferorsLastSdpIsApplied) {
  // A (SRTP, Opus) calls B (PCMU); B transfers: the gateway sends the target the SDP B last
  // had from us, and the target's answer comes from leg B without a new offer.
  Negotiator n(internal(), trunk(SrtpMode::Off, {CodecId::Pcmu, CodecId::Pcma}));
  n.offer(0, audioOf(kOpusSrtpOffer));
  auto toAFirst = n.answer(1, audioOf(kPcmuAnswer), false);
  auto toA = n.answer(1, audioOf(sdpWith("m=audio 51000 RTP/AVP 0 101",
                                         "a=rtpmap:101 telephone-event/8000\r\n")), false);
  EXPECT_EQ(toA.cryptos, toAFirst.cryptos);  // A keeps its keys
  EXPECT_EQ(formatNames(toA), formatNames(toAFirst));
  EXPECT_TRUE(n.plan()->transcoding());
  EXPECT_EQ(n.plan()->legs[1].codec, CodecId::Pcmu);
}

TEST(Negotiation, ATransferTargetOnAnotherSideGetsAnOfferOfItsOwnPolicy) {
  // A trunk caller (PCMU) reached alice (SRTP, Opus); alice transfers the caller to a PBX
  // phone behind a plain G.711 trunk. The target must get a plain offer of the trunk's
  // codecs, not alice's SRTP one, and the caller's media must not change.
  Negotiator n(trunk(), internal());
  n.offer(0, audioOf(kPcmuTrunkOffer));
  auto toCaller = n.answer(1, audioOf(kOpusSrtpAnswer), false);
  ASSERT_TRUE(n.plan()->legs[1].inbound);
  Negotiator old = n;

  auto toTarget = n.retarget(1, trunk(SrtpMode::Off, {CodecId::Pcma, CodecId::Pcmu}));
  EXPECT_EQ(toTarget.protocol, "RTP/AVP");
  EXPECT_TRUE(toTarget.cryptos.empty());
  // The caller's codec first (relayed without decoding if the target takes it), then the
  // trunk's other codecs, the caller's telephone-event.
  EXPECT_EQ(formatNames(toTarget),
            (std::vector<std::string>{"PCMU/8000:0", "PCMA/8000:8", "telephone-event/8000:101"}));
  auto toCallerAfter = n.answer(1, audioOf(kPcmuAnswer), false);
  EXPECT_EQ(formatNames(toCallerAfter), formatNames(toCaller));
  EXPECT_EQ(toCallerAfter.protocol, toCaller.protocol);
  const MediaPlan& plan = *n.plan();
  EXPECT_FALSE(plan.legs[1].inbound) << "the PBX leg is plain RTP now";
  EXPECT_EQ(plan.legs[1].codec, CodecId::Pcmu);
  EXPECT_FALSE(plan.transcoding()) << "PCMU both ways: relayed";

  // Re-offers from the new peer are judged by its side's policy: plain RTP is fine.
  EXPECT_NO_THROW(n.offer(1, audioOf(kPcmuAnswer)));

  // What the transfer did before retarget(): the target answered alice's last SDP (SRTP
  // required), which a plain PBX cannot.
  EXPECT_THROW(old.answer(1, audioOf(kPcmuAnswer), false), NegotiationError);
}

TEST(Negotiation, ATransferTargetOfTheSameSideGetsFreshKeysAndTheOtherLegKeepsItsOwn) {
  Negotiator n(trunk(), internal());
  n.offer(0, audioOf(kPcmuTrunkOffer));
  n.answer(1, audioOf(kOpusSrtpAnswer), false);
  const srtp::KeyMaterial aliceKey = n.plan()->legs[1].outbound->key;
  auto toTarget = n.retarget(1, internal());
  EXPECT_EQ(toTarget.protocol, "RTP/SAVP");
  ASSERT_FALSE(toTarget.cryptos.empty());
  auto parsed = srtp::parseCryptoAttribute(toTarget.cryptos.front());
  ASSERT_EQ(parsed.status, srtp::ParseStatus::Ok);
  EXPECT_FALSE(parsed.attribute->keys.front().keySalt == aliceKey) << "a new peer gets a new key";
  // A second retarget (the first target did not answer) replaces the first; a re-offer
  // from the caller would too. An ordinary offer awaiting its answer blocks it.
  EXPECT_NO_THROW(n.retarget(1, trunk()));
  n.answer(1, audioOf(kPcmuAnswer), false);
  n.offer(0, audioOf(kPcmuTrunkOffer));
  EXPECT_THROW(n.retarget(1, trunk()), NegotiationError);
}

TEST(Negotiation, NoNewPeerBeforeTheSessionIsEstablished) {
  Negotiator n(trunk(), internal());
  EXPECT_THROW(n.retarget(1, trunk()), NegotiationError);
  n.offer(0, audioOf(kPcmuTrunkOffer));
  EXPECT_THROW(n.retarget(1, trunk()), NegotiationError);
}

TEST(Negotiation, AnAnswerWithNoneOfTheOfferedCodecsIsRefused) {
  Negotiator n(trunk(), trunk());
  n.offer(0, audioOf(sdpWith("m=audio 40000 RTP/AVP 0", "")));
  EXPECT_THROW(n.answer(1, audioOf(sdpWith("m=audio 50000 RTP/AVP 18", "")), false), NegotiationError);
  EXPECT_FALSE(n.plan());
}

TEST(Negotiation, RenderingTheOverrideRewritesFormatsAndKeepsTheRest) {
  auto description = sdp::Description::parse(std::string(kOpusSrtpOffer));
  Negotiator n(internal(), trunk());
  auto toB = n.offer(0, description.audio());
  sdp::OriginState origin;
  origin.sessionId = 7;
  std::string text = description.render({"127.0.0.1", 20000, &toB}, origin);
  EXPECT_NE(text.find("m=audio 20000 RTP/AVP 0 8 101\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("a=rtpmap:0 PCMU/8000\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("a=ptime:20\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("a=sendrecv\r\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("opus"), std::string::npos) << text;
  EXPECT_EQ(text.find("a=crypto"), std::string::npos) << text;
  // It parses back to the same formats.
  auto back = sdp::Description::parse(text).audio();
  ASSERT_EQ(back.formatInfo.size(), 3u);
  EXPECT_EQ(back.formatInfo[2].name, "telephone-event");
  EXPECT_EQ(back.ptimeMs, 20u);
}

TEST(SessionLoad, TranscodingOutweighsRelayingAsTheBenchmarksSay) {
  Negotiator relayed(internal(SrtpMode::Optional), trunk());
  relayed.offer(0, audioOf(sdpWith("m=audio 40000 RTP/AVP 0", "")));
  relayed.answer(1, audioOf(sdpWith("m=audio 50000 RTP/AVP 0", "")), false);
  double relay = sessionLoad(*relayed.plan());
  // 100 packets/s at ~8 us each.
  EXPECT_NEAR(relay, 0.08, 1e-9);

  Negotiator opus(internal(), trunk());
  opus.offer(0, audioOf(kOpusSrtpOffer));
  opus.answer(1, audioOf(kPcmuAnswer), false);
  double transcoded = sessionLoad(*opus.plan());
  // SRTP on leg A (one unprotect or protect per packet) plus Opus at 8 kHz and PCMU, and
  // 10 us per transcoded frame each way:
  // (100 x (8 + 3) + 50 x (85 + 0.4 + 20)) us per second = 0.637 % of a core.
  EXPECT_NEAR(transcoded, 0.637, 1e-9);
  EXPECT_GT(transcoded / relay, 7.5);  // about eight relayed calls
  EXPECT_NEAR(estimatedLoad(true, CodecId::Opus, CodecId::Pcmu, true, false), transcoded, 1e-9);
  EXPECT_NEAR(estimatedLoad(false, CodecId::Pcmu, CodecId::Pcmu, false, false), relay, 1e-9);
  // G.722 next to Opus runs Opus at 16 kHz.
  EXPECT_NEAR(estimatedLoad(true, CodecId::Opus, CodecId::G722, false, false),
              (100 * 8 + 50 * (162 + 22 + 20)) / 10000.0, 1e-9);
  // G.722 next to PCMU codes its lower sub-band at 8 kHz: 8.5 us per frame, not 22.
  EXPECT_NEAR(estimatedLoad(true, CodecId::G722, CodecId::Pcmu, false, false),
              (100 * 8 + 50 * (8.5 + 0.4 + 20)) / 10000.0, 1e-9);
}

TEST(SessionLoad, TheOfferSaysWhatTheSessionWillLikelyCost) {
  // Opus with SRTP toward a G.711 trunk: no codec in common, transcoded whatever the answer.
  Negotiator opus(internal(), trunk());
  EXPECT_FALSE(opus.outlook());
  opus.offer(0, audioOf(kOpusSrtpOffer));
  auto outlook = opus.outlook();
  ASSERT_TRUE(outlook);
  EXPECT_TRUE(outlook->transcodeOnly);
  EXPECT_EQ(outlook->codecs, (std::array<CodecId, 2>{CodecId::Opus, CodecId::Pcmu}));
  EXPECT_EQ(outlook->srtp, (std::array<bool, 2>{true, false}));
  opus.answer(1, audioOf(kPcmuAnswer), false);
  EXPECT_FALSE(opus.outlook());

  // PCMU from the trunk toward an SRTP client: relayable, SRTP on B only.
  Negotiator pcmu(trunk(), internal());
  pcmu.offer(0, audioOf(sdpWith("m=audio 40000 RTP/AVP 0", "")));
  outlook = pcmu.outlook();
  ASSERT_TRUE(outlook);
  EXPECT_FALSE(outlook->transcodeOnly);
  EXPECT_EQ(outlook->codecs, (std::array<CodecId, 2>{CodecId::Pcmu, CodecId::Pcmu}));
  EXPECT_EQ(outlook->srtp, (std::array<bool, 2>{false, true}));
}

TEST(SessionLoad, AWorkerRefusesSessionsAboveItsLoadLimit) {
  MediaConfig config;
  config.portRange = {31400, 31499};
  config.workers = 1;
  config.loadLimit = 1.5;  // percent of one core: two transcoded calls, not three
  prometheus::Registry registry;
  MediaMetrics metrics(registry);
  SessionManager manager(config, metrics);
  auto request = [](const std::string& id) {
    medius::v1::CreateSessionRequest r;
    r.set_session_id(id);
    r.mutable_leg_a()->set_side(medius::v1::SIDE_INTERNAL);
    r.mutable_leg_b()->set_side(medius::v1::SIDE_TRUNK);
    r.set_offer_sdp(kOpusSrtpOffer);
    return r;
  };
  auto first = manager.create(request("t1"));
  EXPECT_NEAR(first.load(), 0.637, 1e-9);
  EXPECT_DOUBLE_EQ(first.load_limit(), 1.5);
  EXPECT_NEAR(manager.create(request("t2")).load(), 1.274, 1e-9);
  try {
    manager.create(request("t3"));
    FAIL() << "a third transcoded session was accepted";
  } catch (const MediaError& e) {
    EXPECT_EQ(e.code(), MediaError::Code::ResourceExhausted);
    EXPECT_NE(std::string(e.what()).find("load limit"), std::string::npos) << e.what();
  }
  // Deleting frees the load.
  manager.remove("t1");
  EXPECT_NEAR(manager.list().load(), 0.637, 1e-9);
  manager.remove("t2");
  EXPECT_DOUBLE_EQ(manager.list().load(), 0.0);
}

}  // namespace
}  // namespace medius::media
