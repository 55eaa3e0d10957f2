// ICE-lite on the media worker (relay.hpp, session_manager.cpp): the SDP it advertises, the
// connectivity checks it answers or ignores, and where the media goes after them. Real UDP
// peers on 127.0.0.1 play the ICE agents (checks built with medius/common/stun.hpp), the
// SessionManager is driven directly.
#include <gtest/gtest.h>

#include <prometheus/registry.h>

#include <functional>
#include <string>
#include <thread>

#include "medius/common/stun.hpp"
#include "medius/media/metrics.hpp"
#include "medius/media/sdp.hpp"
#include "medius/media/session_manager.hpp"
#include "test_config.hpp"
#include "udp_peer.hpp"

namespace medius::media {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;
using Peer = test::UdpPeer;

constexpr const char* kClientUfrag = "cli1";
constexpr const char* kClientPwd = "client-password-of-22+chars";

Bytes rtp(std::uint16_t seq, std::uint32_t ssrc = 0x11223344) {
  Bytes b(12 + 160, 0xd5);
  b[0] = 0x80;
  b[1] = 0;
  b[2] = static_cast<std::uint8_t>(seq >> 8);
  b[3] = static_cast<std::uint8_t>(seq);
  for (int i = 0; i < 4; ++i) b[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(ssrc >> (24 - 8 * i));
  return b;
}

// An SDP of a client at 127.0.0.1:port; with ICE credentials and a host candidate when
// `ufrag` is given.
std::string sdpFor(std::uint16_t port, const std::string& ufrag = "", const std::string& pwd = kClientPwd,
                   bool rtcpMux = false) {
  std::string s = "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n";
  s += "m=audio " + std::to_string(port) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
  if (rtcpMux) s += "a=rtcp-mux\r\n";
  if (!ufrag.empty()) {
    s += "a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:" + pwd + "\r\n";
    s += "a=candidate:1 1 UDP 2130706431 127.0.0.1 " + std::to_string(port) + " typ host\r\n";
  }
  s += "a=sendrecv\r\n";
  return s;
}

struct IceLines {
  bool lite = false;
  std::string ufrag;
  std::string pwd;
  std::vector<std::string> candidates;
};

IceLines iceOf(const std::string& sdp) {
  IceLines out;
  std::size_t pos = 0;
  while (pos < sdp.size()) {
    std::size_t end = sdp.find("\r\n", pos);
    std::string line = sdp.substr(pos, end - pos);
    pos = end == std::string::npos ? sdp.size() : end + 2;
    if (line == "a=ice-lite") out.lite = true;
    if (line.starts_with("a=ice-ufrag:")) out.ufrag = line.substr(12);
    if (line.starts_with("a=ice-pwd:")) out.pwd = line.substr(10);
    if (line.starts_with("a=candidate:")) out.candidates.push_back(line.substr(12));
  }
  return out;
}

struct Check {
  std::string username;
  std::string key;
  bool useCandidate = false;
  bool controlled = false;
  bool priority = true;
};

Bytes bindingRequest(const Check& c, const stun::TransactionId& id) {
  stun::Builder b(stun::kBinding, stun::Class::Request, id);
  b.addString(stun::attr::kUsername, c.username);
  if (c.priority) b.addUint32(stun::attr::kPriority, 1853824767);
  if (c.controlled) {
    b.addUint64(stun::attr::kIceControlled, 42);
  } else {
    b.addUint64(stun::attr::kIceControlling, 42);
  }
  if (c.useCandidate) b.addFlag(stun::attr::kUseCandidate);
  b.addMessageIntegrity(c.key);
  b.addFingerprint();
  return std::move(b).finish();
}

class IceTest : public ::testing::Test {
 protected:
  IceTest() : config_(test::sessionTestConfig()), metrics_(registry_), manager_(config_, metrics_) {}

  // Leg A (an ICE client or not) calls leg B (a plain trunk, or internal); returns the
  // offer for B.
  std::string create(const std::string& offer, v1::Side sideB = v1::SIDE_TRUNK) {
    v1::CreateSessionRequest req;
    req.set_session_id("ice");
    req.set_gateway_id("gw1");
    req.set_offer_sdp(offer);
    req.mutable_leg_a()->set_side(v1::SIDE_TRUNK);
    req.mutable_leg_b()->set_side(sideB);
    if (sideB == v1::SIDE_INTERNAL) {
      req.mutable_leg_b()->set_srtp(v1::SRTP_POLICY_OFF);
      req.mutable_leg_b()->add_codecs("PCMU");
    }
    return manager_.create(req).offer_sdp();
  }
  std::string update(v1::LegId from, const std::string& sdp, bool answer, bool provisional = false) {
    v1::UpdateSessionRequest req;
    req.set_session_id("ice");
    req.set_from_leg(from);
    req.set_sdp(sdp);
    req.set_is_answer(answer);
    req.set_provisional(provisional);
    return manager_.update(req).sdp();
  }
  // A sends a check from `from` to the worker's `port`; the answer, if any.
  std::optional<stun::Message> check(const Peer& from, std::uint16_t port, const Check& c, Bytes* raw = nullptr) {
    stun::TransactionId id = stun::randomTransactionId();
    from.sendTo(port, bindingRequest(c, id));
    auto got = from.receive(300ms);
    if (!got) return std::nullopt;
    auto parsed = stun::parse(got->data);
    EXPECT_TRUE(parsed.message) << "answer is no STUN";
    if (!parsed.message) return std::nullopt;
    EXPECT_EQ(parsed.message->transactionId, id);
    EXPECT_TRUE(stun::verifyFingerprint(got->data, *parsed.message));
    if (raw) *raw = got->data;
    lastAnswer_ = got->data;
    return parsed.message;
  }
  double checks(const char* result) {
    return metrics_.iceChecksFamily.Add({{"result", result}}).Value();
  }
  static bool eventually(const std::function<bool()>& condition) {
    for (int i = 0; i < 200 && !condition(); ++i) std::this_thread::sleep_for(10ms);
    return condition();
  }

  MediaConfig config_;
  prometheus::Registry registry_;
  MediaMetrics metrics_;
  SessionManager manager_;
  Bytes lastAnswer_;
};

TEST_F(IceTest, AnIceOfferGetsAnIceLiteAnswerAndItsChecksAreAnswered) {
  Peer sdpAddress, natted, b;  // A's SDP names one port; its NAT sends from another
  std::string offerForB = create(sdpFor(sdpAddress.port(), kClientUfrag));
  // Toward the trunk: no ICE at all (A's lines are dropped, ours are not offered).
  IceLines towardB = iceOf(offerForB);
  EXPECT_FALSE(towardB.lite);
  EXPECT_TRUE(towardB.ufrag.empty());
  EXPECT_TRUE(towardB.candidates.empty());
  std::uint16_t portB = sdp::Description::parse(offerForB).audio().rtpPort;

  std::string answerForA = update(v1::LEG_B, sdpFor(b.port()), true);
  std::uint16_t portA = sdp::Description::parse(answerForA).audio().rtpPort;
  IceLines ice = iceOf(answerForA);
  EXPECT_TRUE(ice.lite);
  EXPECT_GE(ice.ufrag.size(), 4u);
  EXPECT_GE(ice.pwd.size(), 22u);
  ASSERT_EQ(ice.candidates.size(), 2u);  // RTP and RTCP (no rtcp-mux)
  EXPECT_EQ(ice.candidates[0], "1 1 UDP 2130706431 127.0.0.1 " + std::to_string(portA) + " typ host");
  EXPECT_EQ(ice.candidates[1], "1 2 UDP 2130706430 127.0.0.1 " + std::to_string(portA + 1) + " typ host");
  // a=ice-lite is a session-level attribute: before the m= line.
  EXPECT_LT(answerForA.find("a=ice-lite"), answerForA.find("m=audio"));
  EXPECT_GT(answerForA.find("a=ice-ufrag"), answerForA.find("m=audio"));

  Bytes raw;
  auto answer = check(natted, portA, {ice.ufrag + ":" + kClientUfrag, ice.pwd}, &raw);
  ASSERT_TRUE(answer) << "check not answered";
  EXPECT_EQ(answer->cls, stun::Class::SuccessResponse);
  ASSERT_TRUE(answer->xorMappedAddress);
  EXPECT_EQ(answer->xorMappedAddress->ipString(), "127.0.0.1");
  EXPECT_EQ(answer->xorMappedAddress->port, natted.port());
  EXPECT_TRUE(stun::verifyIntegrity(raw, *answer, ice.pwd));
  EXPECT_EQ(checks("ok"), 1);
  // The RTCP component's check, on the +1 port.
  Peer nattedRtcp;
  auto rtcpAnswer = check(nattedRtcp, static_cast<std::uint16_t>(portA + 1), {ice.ufrag + ":" + kClientUfrag, ice.pwd});
  ASSERT_TRUE(rtcpAnswer);
  EXPECT_EQ(rtcpAnswer->xorMappedAddress->port, nattedRtcp.port());

  // The address that passed the check gets the media, not the SDP's; the STUN never
  // reached B.
  b.sendTo(portB, rtp(1));
  auto media = natted.receive();
  ASSERT_TRUE(media) << "media not sent to the checked address";
  EXPECT_EQ(media->data, rtp(1));
  EXPECT_FALSE(sdpAddress.receive(100ms));
  EXPECT_TRUE(b.drain().empty());
  EXPECT_EQ(manager_.stats("ice").leg_a().remote().port(), natted.port());
  // And A's media from there crosses to B.
  natted.sendTo(portA, rtp(7, 0xa1a1a1a1));
  auto atB = b.receive();
  ASSERT_TRUE(atB);
  EXPECT_EQ(atB->data, rtp(7, 0xa1a1a1a1));
}

TEST_F(IceTest, BadIntegrityAndUnknownUsersAreIgnoredAndCounted) {
  Peer a, attacker, b;
  std::string offerForB = create(sdpFor(a.port(), kClientUfrag));
  std::string answerForA = update(v1::LEG_B, sdpFor(b.port()), true);
  std::uint16_t portA = sdp::Description::parse(answerForA).audio().rtpPort;
  std::uint16_t portB = sdp::Description::parse(offerForB).audio().rtpPort;
  IceLines ice = iceOf(answerForA);

  EXPECT_FALSE(check(attacker, portA, {ice.ufrag + ":" + kClientUfrag, "not-the-password-at-all"}));
  EXPECT_EQ(checks("bad_integrity"), 1);
  EXPECT_FALSE(check(attacker, portA, {"someone:" + std::string(kClientUfrag), ice.pwd}));
  EXPECT_FALSE(check(attacker, portA, {ice.ufrag + ":other", ice.pwd}));  // not A's ufrag
  EXPECT_EQ(checks("unknown_user"), 2);
  attacker.sendTo(portA, Bytes{0x00, 0x01, 0x00, 0x00, 0x21, 0x12});  // truncated STUN
  EXPECT_TRUE(eventually([&] { return checks("malformed") == 1; }));
  EXPECT_EQ(checks("ok"), 0);
  // Nothing moved: B's media goes to A's SDP address, nothing of it to the attacker.
  b.sendTo(portB, rtp(1));
  auto got = a.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, rtp(1));
  EXPECT_TRUE(attacker.drain().empty());
  EXPECT_TRUE(b.drain().empty());
  // Authenticated, but without PRIORITY: 400; both sides controlled: 487.
  auto bad = check(attacker, portA, {ice.ufrag + ":" + kClientUfrag, ice.pwd, false, false, false});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->cls, stun::Class::ErrorResponse);
  EXPECT_EQ(bad->errorCode->code, 400);
  auto conflict = check(attacker, portA, {ice.ufrag + ":" + kClientUfrag, ice.pwd, false, true});
  ASSERT_TRUE(conflict);
  EXPECT_EQ(conflict->errorCode->code, 487);
  EXPECT_TRUE(stun::verifyIntegrity(lastAnswer_, *conflict, ice.pwd));
  EXPECT_EQ(checks("role_conflict"), 1);
  EXPECT_EQ(checks("malformed"), 2);
}

TEST_F(IceTest, TheNominatedPairTakesTheMediaForGood) {
  Peer a, first, nominated, b;
  std::string offerForB = create(sdpFor(a.port(), kClientUfrag));
  std::string answerForA = update(v1::LEG_B, sdpFor(b.port()), true);
  std::uint16_t portA = sdp::Description::parse(answerForA).audio().rtpPort;
  std::uint16_t portB = sdp::Description::parse(offerForB).audio().rtpPort;
  IceLines ice = iceOf(answerForA);
  std::string user = ice.ufrag + ":" + kClientUfrag;

  ASSERT_TRUE(check(first, portA, {user, ice.pwd}));
  b.sendTo(portB, rtp(1));
  ASSERT_TRUE(first.receive()) << "the first checked address gets media before nomination";
  ASSERT_TRUE(check(nominated, portA, {user, ice.pwd, true}));
  EXPECT_EQ(metrics_.iceNominations.Value(), 1);
  b.sendTo(portB, rtp(2));
  auto got = nominated.receive();
  ASSERT_TRUE(got) << "media does not follow the nomination";
  EXPECT_EQ(got->data, rtp(2));
  EXPECT_TRUE(first.drain().empty());
  // Media from the first (checked) address still crosses but moves nothing; a re-check
  // from it without USE-CANDIDATE neither.
  first.sendTo(portA, rtp(3, 0xa1));
  ASSERT_TRUE(b.receive());
  ASSERT_TRUE(check(first, portA, {user, ice.pwd}));
  // A re-INVITE with the same credentials and another c= port does not move it either.
  update(v1::LEG_A, sdpFor(a.port() == 65535 ? 1000 : static_cast<std::uint16_t>(a.port() + 1), kClientUfrag),
         false);
  update(v1::LEG_B, sdpFor(b.port()), true);
  b.sendTo(portB, rtp(4));
  got = nominated.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, rtp(4));
  EXPECT_EQ(manager_.stats("ice").leg_a().remote().port(), nominated.port());
}

TEST_F(IceTest, CredentialsStayFromEarlyMediaToTheFinalAnswerAndChangeOnRestart) {
  Peer a, b;
  create(sdpFor(a.port(), kClientUfrag));
  IceLines early = iceOf(update(v1::LEG_B, sdpFor(b.port()), true, true));
  IceLines final = iceOf(update(v1::LEG_B, sdpFor(b.port()), true));
  EXPECT_FALSE(early.ufrag.empty());
  EXPECT_EQ(early.ufrag, final.ufrag);
  EXPECT_EQ(early.pwd, final.pwd);
  // A re-offer with the same ufrag: the same credentials.
  update(v1::LEG_A, sdpFor(a.port(), kClientUfrag), false);
  IceLines same = iceOf(update(v1::LEG_B, sdpFor(b.port()), true));
  EXPECT_EQ(same.ufrag, final.ufrag);
  EXPECT_EQ(same.pwd, final.pwd);
  // ICE restart: a new ufrag from A, new credentials of ours; the old ones stop working.
  update(v1::LEG_A, sdpFor(a.port(), "cli2", "another-password-of-22-chars"), false);
  std::string answer = update(v1::LEG_B, sdpFor(b.port()), true);
  IceLines restarted = iceOf(answer);
  EXPECT_NE(restarted.ufrag, final.ufrag);
  EXPECT_NE(restarted.pwd, final.pwd);
  std::uint16_t portA = sdp::Description::parse(answer).audio().rtpPort;
  Peer client;
  EXPECT_FALSE(check(client, portA, {final.ufrag + ":" + kClientUfrag, final.pwd}));
  EXPECT_TRUE(check(client, portA, {restarted.ufrag + ":cli2", restarted.pwd}));
}

TEST_F(IceTest, AnotherForksFinalAnswerStartsTheChecksOver) {
  // Trunk -> internal: fork 1 sends early media with ICE and nominates; fork 2 answers for
  // good with another ufrag: its first check takes the media, fork 1's nomination is gone.
  Peer trunk, fork1, fork2, fork2Sdp;  // fork 2's SDP names another port than it checks from
  std::string offerForB = create(sdpFor(trunk.port()), v1::SIDE_INTERNAL);
  IceLines ice = iceOf(offerForB);
  std::uint16_t portB = sdp::Description::parse(offerForB).audio().rtpPort;
  std::string answerForA = update(v1::LEG_B, sdpFor(fork1.port(), "frk1"), true, true);
  std::uint16_t portA = sdp::Description::parse(answerForA).audio().rtpPort;
  ASSERT_TRUE(check(fork1, portB, {ice.ufrag + ":frk1", ice.pwd, true}));
  update(v1::LEG_B, sdpFor(fork2Sdp.port(), "frk2"), true);
  EXPECT_FALSE(check(fork1, portB, {ice.ufrag + ":frk1", ice.pwd, true}));  // not its ufrag any more
  ASSERT_TRUE(check(fork2, portB, {ice.ufrag + ":frk2", ice.pwd}));
  trunk.sendTo(portA, rtp(1));
  auto got = fork2.receive();
  ASSERT_TRUE(got) << "media still goes to the first fork";
  EXPECT_EQ(got->data, rtp(1));
  EXPECT_TRUE(fork1.drain().empty());
  EXPECT_TRUE(fork2Sdp.drain().empty());
}

TEST_F(IceTest, RtcpMuxAdvertisesOneComponent) {
  Peer a, b;
  create(sdpFor(a.port(), kClientUfrag, kClientPwd, true));
  IceLines ice = iceOf(update(v1::LEG_B, sdpFor(b.port(), "", kClientPwd, true), true));
  EXPECT_EQ(ice.candidates.size(), 1u);
}

TEST_F(IceTest, ClientsWithoutIceKeepSymmetricLatchingAndGetNoIceLines) {
  Peer a, natted, b;
  std::string offerForB = create(sdpFor(a.port()));
  std::string answerForA = update(v1::LEG_B, sdpFor(b.port()), true);
  EXPECT_EQ(iceOf(answerForA).ufrag, "");
  EXPECT_FALSE(iceOf(answerForA).lite);
  std::uint16_t portA = sdp::Description::parse(answerForA).audio().rtpPort;
  std::uint16_t portB = sdp::Description::parse(offerForB).audio().rtpPort;
  // A STUN check to a leg without ICE: not answered, not counted.
  EXPECT_FALSE(check(natted, portA, {"x:y", "whatever-password-22-chars"}));
  EXPECT_EQ(checks("unknown_user") + checks("bad_integrity") + checks("ok"), 0);
  // The first RTP source latches, as ever.
  natted.sendTo(portA, rtp(1));
  ASSERT_TRUE(b.receive());
  b.sendTo(portB, rtp(2));
  auto got = natted.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, rtp(2));
}

TEST_F(IceTest, OffersTowardTheInternalSideCarryIceLiteAndTheAnswerersChecksWork) {
  // A trunk calls an internal client: our offer carries ICE-lite; the client answers with
  // ICE and checks with our credentials.
  Peer trunk, client, b;
  std::string offerForB = create(sdpFor(trunk.port()), v1::SIDE_INTERNAL);
  IceLines ice = iceOf(offerForB);
  EXPECT_TRUE(ice.lite);
  ASSERT_FALSE(ice.ufrag.empty());
  std::uint16_t portB = sdp::Description::parse(offerForB).audio().rtpPort;
  // Its checks may overtake its answer: answered already (any ufrag of its own).
  auto early = check(client, portB, {ice.ufrag + ":early", ice.pwd});
  ASSERT_TRUE(early);
  EXPECT_EQ(early->cls, stun::Class::SuccessResponse);
  update(v1::LEG_B, sdpFor(b.port(), "clb1"), true);
  EXPECT_TRUE(check(client, portB, {ice.ufrag + ":clb1", ice.pwd, true}));
  EXPECT_FALSE(check(client, portB, {ice.ufrag + ":early", ice.pwd}));  // now the ufrag is known
  EXPECT_EQ(manager_.stats("ice").leg_b().remote().port(), client.port());
}

TEST_F(IceTest, AnInternalAlternativeOfferCarriesIceLiteAndATrunkOneDoesNot) {
  // A dual fork: the PBX trunk (leg_b) and alice's devices on the internal side.
  Peer a;
  v1::CreateSessionRequest req;
  req.set_session_id("ice");
  req.set_gateway_id("gw1");
  req.set_offer_sdp(sdpFor(a.port()));
  req.mutable_leg_a()->set_side(v1::SIDE_TRUNK);
  req.mutable_leg_b()->set_side(v1::SIDE_TRUNK);
  auto* device = req.add_leg_b_alternatives();
  device->set_side(v1::SIDE_INTERNAL);
  device->set_srtp(v1::SRTP_POLICY_OFF);
  auto response = manager_.create(req);
  EXPECT_TRUE(iceOf(response.offer_sdp()).ufrag.empty());
  ASSERT_EQ(response.alternative_offer_sdp_size(), 1);
  IceLines ice = iceOf(response.alternative_offer_sdp(0));
  EXPECT_TRUE(ice.lite);
  ASSERT_FALSE(ice.ufrag.empty());
  std::uint16_t portB = sdp::Description::parse(response.alternative_offer_sdp(0)).audio().rtpPort;
  Peer device1;
  EXPECT_TRUE(check(device1, portB, {ice.ufrag + ":dev1", ice.pwd}));
}

}  // namespace
}  // namespace medius::media
