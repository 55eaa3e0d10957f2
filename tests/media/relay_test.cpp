// The media-transcoder in-process: the gRPC service through the generated stub, and two
// real UDP peers on 127.0.0.1 playing leg A and leg B through the relay workers.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "medius/common/service.hpp"
#include "medius/media/grpc_service.hpp"
#include "medius/media/sdp.hpp"
#include "test_config.hpp"
#include "udp_peer.hpp"

namespace medius::media {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<unsigned char>;

using Peer = test::UdpPeer;

Bytes rtp(std::uint16_t seq, std::uint8_t payloadType = 0, std::uint32_t ssrc = 0x11223344,
          std::size_t payload = 160) {
  Bytes b(12 + payload, 0xd5);
  b[0] = 0x80;
  b[1] = payloadType;
  b[2] = static_cast<unsigned char>(seq >> 8);
  b[3] = static_cast<unsigned char>(seq);
  std::uint32_t ts = seq * 160u;
  for (int i = 0; i < 4; ++i) {
    b[static_cast<std::size_t>(4 + i)] = static_cast<unsigned char>(ts >> (24 - 8 * i));
    b[static_cast<std::size_t>(8 + i)] = static_cast<unsigned char>(ssrc >> (24 - 8 * i));
  }
  return b;
}

Bytes rtcpReceiverReport() {
  Bytes b{0x80, 201, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44};
  return b;
}

std::string sdpFor(std::uint16_t port, std::optional<std::uint16_t> rtcpPort = std::nullopt,
                   const char* direction = "sendrecv", const char* address = "127.0.0.1") {
  std::string s = "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 " + std::string(address) +
                  "\r\nt=0 0\r\nm=audio " + std::to_string(port) +
                  " RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
                  "a=fmtp:101 0-16\r\n";
  if (rtcpPort) s += "a=rtcp:" + std::to_string(*rtcpPort) + "\r\n";
  s += "a=" + std::string(direction) + "\r\n";
  return s;
}

std::uint16_t portIn(const std::string& sdp) {
  return sdp::Description::parse(sdp).audio().rtpPort;
}

MediaConfig testConfig() { return test::sessionTestConfig(); }

class RelayTest : public ::testing::Test {
 protected:
  explicit RelayTest(MediaConfig config = testConfig())
      : config_(std::move(config)),
        metrics_(registry_),
        manager_(config_, metrics_),
        service_(manager_),
        server_("127.0.0.1:0", {&service_}, {"medius.v1.MediaTranscoder"}),
        channel_(grpc::CreateChannel("127.0.0.1:" + std::to_string(server_.port()),
                                     grpc::InsecureChannelCredentials())),
        stub_(v1::MediaTranscoder::NewStub(channel_)) {
    service_.setOnDrain([this] { server_.setServing(false); });
  }
  ~RelayTest() override { server_.shutdown(1s); }

  static std::unique_ptr<grpc::ClientContext> context() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + 5s);
    return c;
  }

  grpc::Status create(const std::string& id, const std::string& offer, std::string* offerForB,
                      bool strictA = false, std::uint32_t timeoutMs = 0) {
    v1::CreateSessionRequest req;
    req.set_session_id(id);
    req.set_gateway_id("gw1");
    req.set_offer_sdp(offer);
    req.mutable_leg_a()->set_strict_source(strictA);
    req.set_media_timeout_ms(timeoutMs);
    v1::CreateSessionResponse resp;
    auto st = stub_->CreateSession(context().get(), req, &resp);
    if (offerForB) *offerForB = resp.offer_sdp();
    return st;
  }

  std::string update(const std::string& id, v1::LegId from, const std::string& sdp, bool answer) {
    v1::UpdateSessionRequest req;
    req.set_session_id(id);
    req.set_from_leg(from);
    req.set_sdp(sdp);
    req.set_is_answer(answer);
    v1::UpdateSessionResponse resp;
    auto st = stub_->UpdateSession(context().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.sdp();
  }

  v1::SessionStats stats(const std::string& id) {
    v1::GetSessionStatsRequest req;
    req.set_session_id(id);
    v1::SessionStats resp;
    auto st = stub_->GetSessionStats(context().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  grpc::Status remove(const std::string& id, v1::SessionStats* out = nullptr) {
    v1::DeleteSessionRequest req;
    req.set_session_id(id);
    v1::SessionStats resp;
    auto st = stub_->DeleteSession(context().get(), req, &resp);
    if (out) *out = resp;
    return st;
  }

  // A call set up between peer A and peer B: ports of the worker for each leg.
  struct Call {
    std::uint16_t portA = 0;  // where A sends
    std::uint16_t portB = 0;  // where B sends
  };
  Call setUp(const std::string& id, const Peer& a, const Peer& b, bool strictA = false,
             std::optional<std::uint16_t> rtcpA = std::nullopt,
             std::optional<std::uint16_t> rtcpB = std::nullopt) {
    std::string offerForB;
    auto st = create(id, sdpFor(a.port(), rtcpA), &offerForB, strictA);
    EXPECT_TRUE(st.ok()) << st.error_message();
    Call call;
    call.portB = portIn(offerForB);
    call.portA = portIn(update(id, v1::LEG_B, sdpFor(b.port(), rtcpB), true));
    return call;
  }

  // Waits until the workers' batched totals reach `value` (they flush every 50 ms).
  static bool eventually(const std::function<bool()>& condition) {
    for (int i = 0; i < 200; ++i) {
      if (condition()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return condition();
  }

  MediaConfig config_;
  prometheus::Registry registry_;
  MediaMetrics metrics_;
  SessionManager manager_;
  MediaService service_;
  GrpcServer server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::MediaTranscoder::Stub> stub_;
};

TEST_F(RelayTest, NothingCrossesBeforeTheFirstAnswer) {
  // B knows its port from our offer and may send before it answers (early RTP without
  // SDP): nothing is agreed yet, so nothing may reach A (which could be an SRTP client).
  Peer a, b;
  std::string offerForB;
  ASSERT_TRUE(create("hold", sdpFor(a.port()), &offerForB).ok());
  std::uint16_t portB = portIn(offerForB);
  b.sendTo(portB, rtp(1));
  EXPECT_FALSE(a.receive(300ms)) << "relayed before any answer";
  EXPECT_TRUE(eventually([&] { return stats("hold").leg_b().packets_in() == 1; }));
  // The answer sets the plan: B's next packet crosses.
  std::uint16_t portA = portIn(update("hold", v1::LEG_B, sdpFor(b.port()), true));
  b.sendTo(portB, rtp(2));
  auto got = a.receive();
  ASSERT_TRUE(got) << "not relayed after the answer";
  EXPECT_EQ(got->data, rtp(2));
  EXPECT_NE(portA, 0);
}

TEST_F(RelayTest, PacketsCrossBothWaysUnchangedAndCountersMove) {
  Peer a, b, aRtcp, bRtcp;
  Call call = setUp("call-1", a, b, false, aRtcp.port(), bRtcp.port());
  EXPECT_NE(call.portA, call.portB);
  EXPECT_EQ(call.portA % 2, 0);
  EXPECT_EQ(call.portB % 2, 0);

  // A -> B: seq 1, 2, 5 (3 and 4 lost), then 4 late (out of order), then a DTMF event.
  Bytes dtmf = rtp(6, 101, 0x11223344, 4);
  dtmf[12] = 5;  // event "5"
  std::vector<Bytes> sent{rtp(1), rtp(2), rtp(5), rtp(4), dtmf};
  for (const auto& packet : sent) a.sendTo(call.portA, packet);
  for (const auto& packet : sent) {
    auto got = b.receive();
    ASSERT_TRUE(got) << "leg B received nothing";
    EXPECT_EQ(got->data, packet);
    EXPECT_EQ(got->fromPort, call.portB);  // symmetric: sent from B's own port
  }
  // B -> A, to the address A gave in its SDP (A's socket has not latched anything yet).
  Bytes back = rtp(100, 0, 0x55667788);
  b.sendTo(call.portB, back);
  auto got = a.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, back);
  EXPECT_EQ(got->fromPort, call.portA);

  // RTCP on the +1 ports, to the a=rtcp ports of the SDPs.
  aRtcp.sendTo(call.portA + 1, rtcpReceiverReport());
  auto rtcp = bRtcp.receive();
  ASSERT_TRUE(rtcp);
  EXPECT_EQ(rtcp->data, rtcpReceiverReport());
  EXPECT_EQ(rtcp->fromPort, call.portB + 1);

  auto s = stats("call-1");
  EXPECT_EQ(s.leg_a().packets_in(), 6u);   // 5 RTP + 1 RTCP
  EXPECT_EQ(s.leg_b().packets_out(), 6u);
  EXPECT_EQ(s.leg_b().packets_in(), 1u);
  EXPECT_EQ(s.leg_a().packets_out(), 1u);
  EXPECT_EQ(s.leg_a().packets_lost(), 1u);  // 3 (4 came late)
  EXPECT_EQ(s.leg_a().packets_out_of_order(), 1u);
  EXPECT_EQ(s.leg_a().local().port(), call.portA);
  EXPECT_EQ(s.leg_a().remote().port(), a.port());
  EXPECT_EQ(s.leg_b().remote().port(), b.port());
  EXPECT_EQ(s.leg_a().codec(), "PCMU");
  EXPECT_FALSE(s.leg_a().srtp());
  // Quality: A's stream lost one packet in five, B's none; the call is as good as its
  // worse direction.
  EXPECT_GT(s.leg_a().loss_percent(), 10.0);
  EXPECT_DOUBLE_EQ(s.leg_b().loss_percent(), 0.0);
  EXPECT_GT(s.leg_a().mos(), 1.0);
  EXPECT_LT(s.leg_a().mos(), s.leg_b().mos());
  EXPECT_GT(s.leg_b().mos(), 4.3);
  EXPECT_DOUBLE_EQ(s.mos(), s.leg_a().mos());
  EXPECT_TRUE(eventually([&] { return metrics_.traffic.packetsAtoB.Value() == 6; }));
  EXPECT_TRUE(eventually([&] { return metrics_.traffic.packetsBtoA.Value() == 1; }));
  EXPECT_EQ(metrics_.traffic.bytesBtoA.Value(), static_cast<double>(back.size()));

  v1::ListSessionsResponse list;
  ASSERT_TRUE(stub_->ListSessions(context().get(), {}, &list).ok());
  ASSERT_EQ(list.sessions_size(), 1);
  EXPECT_EQ(list.sessions(0).session_id(), "call-1");
}

TEST_F(RelayTest, ABurstCrossesInOrderThroughTheBatchedReads) {
  Peer a, b;
  Call call = setUp("burst", a, b);
  constexpr std::uint16_t kPackets = 100;  // several recvmmsg batches
  for (std::uint16_t seq = 1; seq <= kPackets; ++seq) a.sendTo(call.portA, rtp(seq));
  for (std::uint16_t seq = 1; seq <= kPackets; ++seq) {
    auto got = b.receive();
    ASSERT_TRUE(got) << "packet " << seq << " missing";
    ASSERT_EQ(got->data, rtp(seq));
  }
  auto s = stats("burst");
  EXPECT_EQ(s.leg_a().packets_in(), kPackets);
  EXPECT_EQ(s.leg_a().packets_lost(), 0u);
  EXPECT_EQ(s.leg_a().packets_out_of_order(), 0u);
  EXPECT_EQ(s.leg_b().bytes_out(), kPackets * rtp(1).size());
}

TEST_F(RelayTest, ADatagramLargerThanTheBufferIsDroppedNotTruncated) {
  Peer a, b;
  Call call = setUp("jumbo", a, b);
  a.sendTo(call.portA, rtp(1, 0, 0x11223344, 6000));
  a.sendTo(call.portA, rtp(2));
  auto got = b.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, rtp(2));
}

TEST_F(RelayTest, LatchesToTheFirstSourceInsteadOfTheSdpAddress) {
  Peer a, aBehindNat, b;
  Call call = setUp("nat", a, b);
  aBehindNat.sendTo(call.portA, rtp(1));  // A's real source differs from its SDP
  ASSERT_TRUE(b.receive());
  b.sendTo(call.portB, rtp(50));
  auto got = aBehindNat.receive();
  ASSERT_TRUE(got) << "not latched to the source of A's first packet";
  EXPECT_EQ(got->fromPort, call.portA);
  EXPECT_FALSE(a.receive(200ms)) << "still sent to the SDP address";
  EXPECT_EQ(stats("nat").leg_a().remote().port(), aBehindNat.port());

  // Not strict: a stranger's packet is relayed, but does not move the latch.
  Peer stranger;
  stranger.sendTo(call.portA, rtp(2));
  ASSERT_TRUE(b.receive());
  b.sendTo(call.portB, rtp(51));
  EXPECT_TRUE(aBehindNat.receive());
  EXPECT_FALSE(stranger.receive(200ms));
}

TEST_F(RelayTest, StrictSourceDropsAStrangerAfterLatching) {
  Peer a, b, stranger;
  Call call = setUp("strict", a, b, true);
  a.sendTo(call.portA, rtp(1));
  ASSERT_TRUE(b.receive());
  stranger.sendTo(call.portA, rtp(99, 0, 0xdeadbeef));
  a.sendTo(call.portA, rtp(2));
  auto got = b.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, rtp(2)) << "the stranger's packet went through";
  EXPECT_FALSE(b.receive(200ms));
  EXPECT_EQ(stats("strict").leg_a().packets_in(), 2u);
}

TEST_F(RelayTest, ReOfferKeepsPortsAndMovesTheRemote) {
  Peer a, b, b2;
  Call call = setUp("reinvite", a, b);
  // B re-INVITEs with a new address (e.g. after a transfer): A is offered the same port.
  std::string toA = update("reinvite", v1::LEG_B, sdpFor(b2.port(), std::nullopt, "sendonly"), false);
  EXPECT_EQ(portIn(toA), call.portA);
  EXPECT_NE(toA.find("a=sendonly"), std::string::npos);
  std::string toB = update("reinvite", v1::LEG_A, sdpFor(a.port(), std::nullopt, "recvonly"), true);
  EXPECT_EQ(portIn(toB), call.portB);
  a.sendTo(call.portA, rtp(7));
  auto got = b2.receive();
  ASSERT_TRUE(got) << "not sent to the re-offered address";
  EXPECT_EQ(got->data, rtp(7));  // SSRC, sequence number and timestamp untouched
  EXPECT_FALSE(b.receive(200ms));
}

TEST_F(RelayTest, EarlyMediaThenTheFinalAnswerFromAnotherEndpoint) {
  Peer a, early, final;
  std::string offerForB;
  ASSERT_TRUE(create("early", sdpFor(a.port()), &offerForB).ok());
  std::uint16_t portB = portIn(offerForB);
  v1::UpdateSessionRequest req;
  req.set_session_id("early");
  req.set_from_leg(v1::LEG_B);
  req.set_sdp(sdpFor(early.port()));
  req.set_is_answer(true);
  req.set_provisional(true);  // 183 Session Progress
  v1::UpdateSessionResponse resp;
  ASSERT_TRUE(stub_->UpdateSession(context().get(), req, &resp).ok());
  std::uint16_t portA = portIn(resp.sdp());
  early.sendTo(portB, rtp(1, 0, 0xaaaa0001));  // ringback toward A
  auto got = a.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, rtp(1, 0, 0xaaaa0001));

  // The 200 OK comes from another device (a fork): same ports toward A, new remote for B.
  EXPECT_EQ(portIn(update("early", v1::LEG_B, sdpFor(final.port()), true)), portA);
  a.sendTo(portA, rtp(10));
  got = final.receive();
  ASSERT_TRUE(got) << "still relaying to the early-media endpoint";
  EXPECT_EQ(got->data, rtp(10));
  EXPECT_FALSE(early.receive(200ms));
  final.sendTo(portB, rtp(2, 0, 0xbbbb0002));  // a new SSRC reaches A unchanged
  got = a.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, rtp(2, 0, 0xbbbb0002));
}

TEST_F(RelayTest, EveryTargetPolicyGetsItsOfferAndTheAnswerQuotesIt) {
  // A dual fork: leg_b the PBX (plain), an alternative for the devices (SRTP required).
  Peer a, pbx;
  v1::CreateSessionRequest req;
  req.set_session_id("forks");
  req.set_gateway_id("gw1");
  req.set_offer_sdp(sdpFor(a.port()));
  req.mutable_leg_a()->set_side(v1::SIDE_TRUNK);
  req.mutable_leg_b()->set_side(v1::SIDE_TRUNK);
  auto* devices = req.add_leg_b_alternatives();
  devices->set_side(v1::SIDE_INTERNAL);
  devices->set_srtp(v1::SRTP_POLICY_REQUIRED);
  v1::CreateSessionResponse resp;
  ASSERT_TRUE(stub_->CreateSession(context().get(), req, &resp).ok());
  ASSERT_EQ(resp.alternative_offer_sdp_size(), 1);
  auto toPbx = sdp::Description::parse(resp.offer_sdp());
  auto toDevices = sdp::Description::parse(resp.alternative_offer_sdp(0));
  EXPECT_EQ(toPbx.audio().protocol, "RTP/AVP");
  EXPECT_TRUE(toPbx.audio().cryptos.empty());
  EXPECT_EQ(toDevices.audio().protocol, "RTP/SAVP");
  EXPECT_FALSE(toDevices.audio().cryptos.empty());
  // One leg B port for all of them; the same o= line (only the dialog that answers goes on).
  EXPECT_EQ(toPbx.audio().rtpPort, toDevices.audio().rtpPort);
  auto origin = [](const std::string& text) { return text.substr(text.find("o="), text.find("\r\ns=") - text.find("o=")); };
  EXPECT_EQ(origin(resp.offer_sdp()), origin(resp.alternative_offer_sdp(0)));

  v1::UpdateSessionRequest answer;
  answer.set_session_id("forks");
  answer.set_from_leg(v1::LEG_B);
  answer.set_sdp(sdpFor(pbx.port()));
  answer.set_is_answer(true);
  v1::UpdateSessionResponse out;
  // The PBX's plain answer quoted as an answer to the devices' offer: refused.
  answer.set_offer_id(1);
  EXPECT_EQ(stub_->UpdateSession(context().get(), answer, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  answer.set_offer_id(2);
  auto unknown = stub_->UpdateSession(context().get(), answer, &out);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(unknown.error_message().find("offer_id 2"), std::string::npos) << unknown.error_message();
  // Quoting its own offer (0): accepted, and audio crosses.
  answer.set_offer_id(0);
  ASSERT_TRUE(stub_->UpdateSession(context().get(), answer, &out).ok());
  std::uint16_t portA = portIn(out.sdp());
  a.sendTo(portA, rtp(1));
  auto got = pbx.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, rtp(1));
}

TEST_F(RelayTest, ANewPeerOfALegGetsAnOfferOfItsSideAndMediaFollowsIt) {
  // B transfers A (blind): the gateway asks for an offer to the transfer target on leg B.
  Peer a, b, target;
  auto offerFor = [&](const std::string& id, v1::Side side, v1::SrtpPolicy srtp, const std::string& sdp,
                      v1::UpdateSessionResponse& out) {
    v1::UpdateSessionRequest req;
    req.set_session_id(id);
    req.set_from_leg(v1::LEG_B);
    req.set_sdp(sdp);
    req.mutable_new_peer()->set_side(side);
    req.mutable_new_peer()->set_srtp(srtp);
    return stub_->UpdateSession(context().get(), req, &out);
  };
  v1::UpdateSessionResponse out;
  std::string offerForB;
  ASSERT_TRUE(create("xfer", sdpFor(a.port()), &offerForB).ok());
  EXPECT_EQ(offerFor("xfer", v1::SIDE_TRUNK, v1::SRTP_POLICY_OFF, "", out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION)
      << "no new peer before the first answer";
  Call call;
  call.portB = portIn(offerForB);
  call.portA = portIn(update("xfer", v1::LEG_B, sdpFor(b.port()), true));
  EXPECT_EQ(offerFor("xfer", v1::SIDE_TRUNK, v1::SRTP_POLICY_OFF, sdpFor(target.port()), out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT)
      << "new_peer asks for an offer: no SDP comes with it";

  // A target on the internal side: SRTP required, its own keys, the same leg B port, a new o=.
  ASSERT_TRUE(offerFor("xfer", v1::SIDE_INTERNAL, v1::SRTP_POLICY_REQUIRED, "", out).ok());
  auto toInternal = sdp::Description::parse(out.sdp());
  EXPECT_EQ(toInternal.audio().protocol, "RTP/SAVP");
  EXPECT_FALSE(toInternal.audio().cryptos.empty());
  EXPECT_EQ(toInternal.audio().rtpPort, call.portB);
  auto origin = [](const std::string& text) { return text.substr(text.find("o="), text.find("\r\ns=") - text.find("o=")); };
  EXPECT_NE(origin(out.sdp()), origin(offerForB));
  // A plain answer cannot answer that offer.
  v1::UpdateSessionRequest plain;
  plain.set_session_id("xfer");
  plain.set_from_leg(v1::LEG_B);
  plain.set_sdp(sdpFor(target.port()));
  plain.set_is_answer(true);
  v1::UpdateSessionResponse ignored;
  EXPECT_EQ(stub_->UpdateSession(context().get(), plain, &ignored).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // The target is a PBX phone behind a plain trunk after all: a plain offer, answered, and
  // A's audio reaches the target, the target's reaches A.
  ASSERT_TRUE(offerFor("xfer", v1::SIDE_TRUNK, v1::SRTP_POLICY_OFF, "", out).ok());
  auto toTrunk = sdp::Description::parse(out.sdp());
  EXPECT_EQ(toTrunk.audio().protocol, "RTP/AVP");
  EXPECT_TRUE(toTrunk.audio().cryptos.empty());
  std::string toA = update("xfer", v1::LEG_B, sdpFor(target.port()), true);
  EXPECT_EQ(portIn(toA), call.portA) << "A's port never changes";
  a.sendTo(call.portA, rtp(7));
  auto got = target.receive();
  ASSERT_TRUE(got) << "A's audio does not reach the transfer target";
  EXPECT_EQ(got->data, rtp(7));
  target.sendTo(call.portB, rtp(8));
  auto back = a.receive();
  ASSERT_TRUE(back) << "the target's audio does not reach A";
  EXPECT_EQ(back->data, rtp(8));
}

TEST_F(RelayTest, MultiplexedRtcpFollowsTheRtpPath) {
  Peer a, b;
  std::string muxed = sdpFor(a.port());
  muxed += "a=rtcp-mux\r\n";
  std::string offerForB;
  ASSERT_TRUE(create("mux", muxed, &offerForB).ok());
  EXPECT_NE(offerForB.find("a=rtcp-mux"), std::string::npos);
  std::uint16_t portB = portIn(offerForB);
  std::string answer = sdpFor(b.port()) + "a=rtcp-mux\r\n";
  std::uint16_t portA = portIn(update("mux", v1::LEG_B, answer, true));
  a.sendTo(portA, rtcpReceiverReport());
  auto got = b.receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, rtcpReceiverReport());
  EXPECT_EQ(got->fromPort, portB);
  a.sendTo(portA, rtp(1));
  EXPECT_TRUE(b.receive());
  // RTCP is not RTP: no sequence number was read from it.
  EXPECT_EQ(stats("mux").leg_a().packets_lost(), 0u);
}

TEST_F(RelayTest, MediaTimeoutIsReportedOnWatchEvents) {
  grpc::ClientContext watchContext;
  v1::WatchEventsRequest watch;
  watch.set_gateway_id("gw1");
  auto reader = stub_->WatchEvents(&watchContext, watch);
  reader->WaitForInitialMetadata();

  Peer a, b;
  std::string offerForB;
  ASSERT_TRUE(create("quiet", sdpFor(a.port()), &offerForB, false, 300).ok());
  // Ringing (even with a provisional answer) never times out.
  v1::UpdateSessionRequest early;
  early.set_session_id("quiet");
  early.set_from_leg(v1::LEG_B);
  early.set_sdp(sdpFor(b.port()));
  early.set_is_answer(true);
  early.set_provisional(true);
  v1::UpdateSessionResponse ignored;
  ASSERT_TRUE(stub_->UpdateSession(context().get(), early, &ignored).ok());
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(metrics_.timeouts.Value(), 0) << "timed out before the answer";
  auto answeredAt = std::chrono::steady_clock::now();
  update("quiet", v1::LEG_B, sdpFor(b.port()), true);
  v1::MediaEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.kind(), v1::MediaEvent::KIND_MEDIA_TIMEOUT);
  EXPECT_EQ(event.session_id(), "quiet");
  EXPECT_GE(std::chrono::steady_clock::now() - answeredAt, 300ms);
  EXPECT_EQ(metrics_.timeouts.Value(), 1);
  // The session stays until the gateway deletes it.
  EXPECT_EQ(stats("quiet").session_id(), "quiet");
  ASSERT_TRUE(remove("quiet").ok());
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.kind(), v1::MediaEvent::KIND_SESSION_DELETED);
  watchContext.TryCancel();
  reader->Finish();
}

TEST_F(RelayTest, DeleteFreesThePortsAndReturnsFinalStats) {
  double freeBefore = metrics_.portPoolFree.Value();
  EXPECT_EQ(freeBefore, 50);  // 100 ports = 50 pairs
  Peer a, b;
  Call call = setUp("bye", a, b);
  EXPECT_EQ(metrics_.portPoolFree.Value(), freeBefore - 2);
  EXPECT_EQ(metrics_.sessionsActive.Value(), 1);
  a.sendTo(call.portA, rtp(1));
  ASSERT_TRUE(b.receive());
  v1::SessionStats last;
  ASSERT_TRUE(remove("bye", &last).ok());
  EXPECT_EQ(last.leg_a().packets_in(), 1u);
  EXPECT_EQ(metrics_.portPoolFree.Value(), freeBefore);
  EXPECT_EQ(metrics_.sessionsActive.Value(), 0);
  // The call's quality went into the histograms across calls: one MOS, one leg with audio.
  EXPECT_GT(last.mos(), 4.0);
  EXPECT_EQ(metrics_.sessionMos.Collect().histogram.sample_count, 1u);
  EXPECT_EQ(metrics_.legLossRatio.Collect().histogram.sample_count, 1u);
  EXPECT_EQ(remove("bye").error_code(), grpc::StatusCode::NOT_FOUND);
  a.sendTo(call.portA, rtp(2));
  EXPECT_FALSE(b.receive(200ms));
  EXPECT_EQ(metrics_.sessions.ok.Value(), 1);
}

TEST_F(RelayTest, DropsReachTheCountersWhileTheCallLasts) {
  // medius_media_dropped_packets_total moves as packets are dropped (an attack or a key
  // mix-up shows while the calls last), and deleting the session adds nothing twice.
  Peer a, b;
  Call call = setUp("drops", a, b);
  a.sendTo(call.portA, {0x00, 0x01, 0x02});  // not RTP: version 0, truncated
  a.sendTo(call.portA, {0x80});
  EXPECT_TRUE(eventually([&] { return metrics_.droppedMalformed.Value() == 2; }))
      << metrics_.droppedMalformed.Value();
  EXPECT_EQ(stats("drops").leg_a().bad_packets(), 2u);  // the session is still there
  a.sendTo(call.portA, {0x00});
  EXPECT_TRUE(eventually([&] { return metrics_.droppedMalformed.Value() == 3; }));
  v1::SessionStats last;
  ASSERT_TRUE(remove("drops", &last).ok());
  EXPECT_EQ(last.leg_a().bad_packets(), 3u);
  EXPECT_EQ(metrics_.droppedMalformed.Value(), 3);
  EXPECT_EQ(metrics_.droppedSrtpAuth.Value(), 0);
}

TEST_F(RelayTest, RefusalsCarryTheirCodes) {
  Peer a;
  std::string out;
  auto st = create("bad", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n", &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("line 4"), std::string::npos) << st.error_message();
  ASSERT_TRUE(create("dup", sdpFor(a.port()), &out).ok());
  EXPECT_EQ(create("dup", sdpFor(a.port()), &out).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  v1::UpdateSessionRequest req;
  req.set_session_id("nope");
  req.set_from_leg(v1::LEG_B);
  req.set_sdp(sdpFor(a.port()));
  v1::UpdateSessionResponse resp;
  EXPECT_EQ(stub_->UpdateSession(context().get(), req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(metrics_.sessions.invalidArgument.Value(), 1);
  EXPECT_EQ(metrics_.sessions.alreadyExists.Value(), 1);
}

TEST_F(RelayTest, DrainRefusesNewSessionsAndKeepsTheOldOnes) {
  Peer a, b;
  Call call = setUp("old", a, b);
  v1::DrainResponse drained;
  ASSERT_TRUE(stub_->Drain(context().get(), {}, &drained).ok());
  EXPECT_EQ(drained.sessions_remaining(), 1u);
  std::string out;
  EXPECT_EQ(create("new", sdpFor(a.port()), &out).error_code(), grpc::StatusCode::UNAVAILABLE);
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest hreq;
  grpc::health::v1::HealthCheckResponse hresp;
  ASSERT_TRUE(health->Check(context().get(), hreq, &hresp).ok());
  EXPECT_EQ(hresp.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  a.sendTo(call.portA, rtp(1));
  EXPECT_TRUE(b.receive());
}

MediaConfig tinyConfig() {
  MediaConfig c = testConfig();
  c.portRange.max = static_cast<std::uint16_t>(c.portRange.min + 5);  // 3 pairs (min is even)
  c.maxSessions = 5;
  return c;
}

class TinyPoolTest : public RelayTest {
 protected:
  TinyPoolTest() : RelayTest(tinyConfig()) {}
};

TEST_F(TinyPoolTest, OutOfPortsIsResourceExhausted) {
  Peer a;
  std::string out;
  ASSERT_TRUE(create("one", sdpFor(a.port()), &out).ok());
  auto st = create("two", sdpFor(a.port()), &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_EQ(metrics_.sessions.resourceExhausted.Value(), 1);
  // The pair booked for the failed session's leg A went back.
  EXPECT_EQ(metrics_.portPoolFree.Value(), 1);
  ASSERT_TRUE(remove("one").ok());
  EXPECT_TRUE(create("three", sdpFor(a.port()), &out).ok());
}

MediaConfig oneSessionConfig() {
  MediaConfig c = testConfig();
  c.maxSessions = 1;
  return c;
}

class OneSessionTest : public RelayTest {
 protected:
  OneSessionTest() : RelayTest(oneSessionConfig()) {}
};

TEST_F(OneSessionTest, AboveMaxSessionsIsResourceExhausted) {
  Peer a;
  std::string out;
  ASSERT_TRUE(create("one", sdpFor(a.port()), &out).ok());
  auto st = create("two", sdpFor(a.port()), &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("max_sessions"), std::string::npos);
}

}  // namespace
}  // namespace medius::media
