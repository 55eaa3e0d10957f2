// Orphaned media sessions: the gateways watching a worker (EventHub), the sessions the
// worker deletes itself when their gateway is gone or their media timeout went unhandled
// (SessionManager::reapOrphans), and the thread that sweeps (OrphanSweeper). Time is a
// ManualClock; the media timeouts themselves fire on the relay workers' real clock.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <optional>
#include <thread>

#include "medius/common/clock.hpp"
#include "medius/common/service.hpp"
#include "medius/media/grpc_service.hpp"
#include "medius/media/orphan_sweeper.hpp"
#include "test_config.hpp"
#include "medius/media/sdp.hpp"
#include "medius/media/session_manager.hpp"
#include "udp_peer.hpp"

namespace medius::media {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kGraceMs = 15000;

std::shared_ptr<EventHub::Queue> watcher(const std::string& gatewayId) {
  auto queue = std::make_shared<EventHub::Queue>();
  queue->gatewayId = gatewayId;
  return queue;
}

TEST(EventHub, AGatewayIsGoneWhenItsLastStreamEndsUntilOneComesBack) {
  ManualClock clock;
  EventHub hub(clock);
  auto first = hub.subscribe(watcher("gw1"));
  auto second = hub.subscribe(watcher("gw1"));  // a reconnect may overlap the old stream
  auto all = hub.subscribe(watcher(""));
  hub.subscribe(watcher("gw2"));
  hub.unsubscribe(first);
  EXPECT_TRUE(hub.goneOwners().empty()) << "gw1 still has a stream";
  clock.advanceMs(10);
  const std::int64_t goneAt = clock.nowMs();
  hub.unsubscribe(second);
  hub.unsubscribe(all);  // a watcher of every gateway is nobody's owner
  EXPECT_EQ(hub.goneOwners(), (std::map<std::string, std::int64_t>{{"gw1", goneAt}}));

  clock.advanceMs(1000);
  auto back = hub.subscribe(watcher("gw1"));
  EXPECT_TRUE(hub.goneOwners().empty()) << "gw1 watches again";
  hub.unsubscribe(back);
  EXPECT_EQ(hub.goneOwners().at("gw1"), clock.nowMs());
  // forget() only drops the record it was told about.
  hub.forget("gw1", goneAt);
  EXPECT_EQ(hub.goneOwners().size(), 1u);
  hub.forget("gw1", clock.nowMs());
  EXPECT_TRUE(hub.goneOwners().empty());
}

MediaConfig orphanConfig() {
  MediaConfig c = test::sessionTestConfig();
  c.orphanGraceMs = static_cast<std::uint32_t>(kGraceMs);
  return c;
}

std::string sdpFor(std::uint16_t port) {
  return "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " +
         std::to_string(port) + " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";
}

std::vector<std::uint8_t> rtp(std::uint16_t seq) {
  std::vector<std::uint8_t> b(12 + 160, 0xd5);
  b[0] = 0x80;
  b[1] = 0;
  b[2] = static_cast<std::uint8_t>(seq >> 8);
  b[3] = static_cast<std::uint8_t>(seq);
  b[8] = 0x11;
  return b;
}

class OrphanTest : public ::testing::Test {
 protected:
  OrphanTest() : config_(orphanConfig()), metrics_(registry_), manager_(config_, metrics_, clock_) {}

  // A session of `gatewayId` offered by `a`; answered by `b` when given (the media
  // timeout runs from then on). Returns the worker's port for leg A.
  std::uint16_t create(const std::string& id, const std::string& gatewayId, const test::UdpPeer& a,
                       const test::UdpPeer* b = nullptr, std::uint32_t timeoutMs = 0) {
    v1::CreateSessionRequest request;
    request.set_session_id(id);
    request.set_gateway_id(gatewayId);
    request.set_offer_sdp(sdpFor(a.port()));
    request.set_media_timeout_ms(timeoutMs);
    manager_.create(request);
    if (b == nullptr) return 0;
    v1::UpdateSessionRequest answer;
    answer.set_session_id(id);
    answer.set_from_leg(v1::LEG_B);
    answer.set_sdp(sdpFor(b->port()));
    answer.set_is_answer(true);
    return sdp::Description::parse(manager_.update(answer).sdp()).audio().rtpPort;
  }

  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    const v1::ListSessionsResponse all = manager_.list();
    for (const auto& s : all.sessions()) out.push_back(s.session_id());
    return out;
  }

  static bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 5s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (condition()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return condition();
  }

  ManualClock clock_;
  MediaConfig config_;
  prometheus::Registry registry_;
  MediaMetrics metrics_;
  SessionManager manager_;
};

TEST_F(OrphanTest, TheSessionsOfAGoneGatewayAreDeletedAfterTheGrace) {
  const double freePairs = metrics_.portPoolFree.Value();
  auto everyGateway = watcher("");
  manager_.events().subscribe(everyGateway);
  auto gw1 = manager_.events().subscribe(watcher("gw1"));
  manager_.events().subscribe(watcher("gw2"));
  test::UdpPeer a, b;
  create("gw1-ringing", "gw1", a);
  create("gw1-answered", "gw1", a, &b);
  create("gw2-call", "gw2", a, &b);
  create("never-watched", "gw-test", a, &b);  // made without WatchEvents (tests, medctl)
  const double loadOfFour = metrics_.load.Value();
  EXPECT_GT(loadOfFour, 0);
  EXPECT_EQ(metrics_.portPoolFree.Value(), freePairs - 8);

  manager_.events().unsubscribe(gw1);  // gw1 crashed: its stream broke
  EXPECT_EQ(manager_.reapOrphans().ownerGone, 0u);
  clock_.advanceMs(kGraceMs - 1);
  EXPECT_EQ(manager_.reapOrphans().ownerGone, 0u) << "deleted before the grace ran out";
  EXPECT_EQ(manager_.sessionCount(), 4u);
  clock_.advanceMs(1);
  auto reaped = manager_.reapOrphans();
  EXPECT_EQ(reaped.ownerGone, 2u);
  EXPECT_EQ(reaped.timeoutUnhandled, 0u);
  EXPECT_EQ(ids(), (std::vector<std::string>{"gw2-call", "never-watched"}));

  // Deleted as DeleteSession would: ports back, load and gauges down, the event out.
  EXPECT_EQ(metrics_.portPoolFree.Value(), freePairs - 4);
  EXPECT_EQ(metrics_.sessionsActive.Value(), 2);
  EXPECT_LT(metrics_.load.Value(), loadOfFour);
  EXPECT_EQ(metrics_.orphanedOwnerGone.Value(), 2);
  EXPECT_EQ(metrics_.orphanedTimeoutUnhandled.Value(), 0);
  ASSERT_EQ(everyGateway->events.size(), 2u);
  for (const auto& event : everyGateway->events) {
    EXPECT_EQ(event.kind(), v1::MediaEvent::KIND_SESSION_DELETED);
  }
  EXPECT_THROW(manager_.remove("gw1-answered"), MediaError);
  // The gone gateway's record went with its sessions.
  EXPECT_TRUE(manager_.events().goneOwners().empty());

  // A gateway_id that never watched is never taken for gone, however long.
  clock_.advanceMs(100 * kGraceMs);
  EXPECT_EQ(manager_.reapOrphans().ownerGone, 0u);
  manager_.remove("gw2-call");
  manager_.remove("never-watched");
  EXPECT_EQ(metrics_.load.Value(), 0);
  EXPECT_EQ(metrics_.portPoolFree.Value(), freePairs);
  EXPECT_EQ(metrics_.sessionsActive.Value(), 0);
}

TEST_F(OrphanTest, AGatewayWatchingAgainWithinTheGraceKeepsItsSessions) {
  test::UdpPeer a, b;
  auto stream = manager_.events().subscribe(watcher("gw1"));
  create("call", "gw1", a, &b);
  manager_.events().unsubscribe(stream);  // the gateway reconnects (watch backoff)
  clock_.advanceMs(kGraceMs - 1);
  manager_.events().subscribe(watcher("gw1"));
  clock_.advanceMs(10 * kGraceMs);
  auto reaped = manager_.reapOrphans();
  EXPECT_EQ(reaped.ownerGone + reaped.timeoutUnhandled, 0u);
  EXPECT_EQ(manager_.sessionCount(), 1u);
}

TEST_F(OrphanTest, ASessionWhoseMediaTimeoutNobodyActedOnIsDeletedAfterTheGrace) {
  // gw1 is alive but does not delete them (it lost them, e.g. restarted with the same id).
  manager_.events().subscribe(watcher("gw1"));
  test::UdpPeer a, b, c, d;
  create("silent", "gw1", a, &b, 100);
  std::uint16_t resumedPortA = create("resumed", "gw1", c, &d, 1000);
  create("ringing", "gw1", a);  // not answered: its timeout is not armed
  ASSERT_TRUE(eventually([&] { return metrics_.timeouts.Value() == 2; }))
      << "the media timeouts did not fire";
  const std::int64_t timedOutAt = clock_.nowMs();
  c.sendTo(resumedPortA, rtp(1));  // RTP resumes on "resumed": no longer timed out
  ASSERT_TRUE(eventually([&] {
    const v1::ListSessionsResponse all = manager_.list();
    for (const auto& s : all.sessions()) {
      if (s.session_id() == "resumed") return s.leg_a().packets_in() == 1;
    }
    return false;
  }));
  EXPECT_EQ(manager_.reapOrphans().timeoutUnhandled, 0u);
  clock_.setMs(timedOutAt + kGraceMs - 1);
  EXPECT_EQ(manager_.reapOrphans().timeoutUnhandled, 0u) << "deleted before the grace ran out";
  clock_.setMs(timedOutAt + kGraceMs);
  auto reaped = manager_.reapOrphans();
  EXPECT_EQ(reaped.timeoutUnhandled, 1u);
  EXPECT_EQ(reaped.ownerGone, 0u);
  EXPECT_EQ(metrics_.orphanedTimeoutUnhandled.Value(), 1);
  EXPECT_EQ(ids(), (std::vector<std::string>{"resumed", "ringing"}));
}

TEST_F(OrphanTest, ABrokenWatchStreamMakesItsGatewayGone) {
  MediaService service(manager_);
  GrpcServer server("127.0.0.1:0", {&service}, {"medius.v1.MediaTranscoder"});
  auto stub = v1::MediaTranscoder::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server.port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::WatchEventsRequest request;
  request.set_gateway_id("gw1");
  auto reader = stub->WatchEvents(&context, request);
  reader->WaitForInitialMetadata();
  EXPECT_TRUE(manager_.events().goneOwners().empty());
  test::UdpPeer a;
  create("call", "gw1", a);
  context.TryCancel();  // what the kernel does for a killed gateway: the stream ends
  reader->Finish();
  EXPECT_TRUE(eventually([&] { return manager_.events().goneOwners().contains("gw1"); }));
  clock_.advanceMs(kGraceMs);
  EXPECT_EQ(manager_.reapOrphans().ownerGone, 1u);
  server.shutdown(1s);
}

TEST_F(OrphanTest, TheSweeperDeletesOrphansOnItsOwnAndStopsAtOnce) {
  EXPECT_EQ(OrphanSweeper::intervalFor(15000), 1000ms);
  EXPECT_EQ(OrphanSweeper::intervalFor(1000), 250ms);
  EXPECT_EQ(OrphanSweeper::intervalFor(100), 50ms);
  test::UdpPeer a;
  auto stream = manager_.events().subscribe(watcher("gw1"));
  create("call", "gw1", a);
  manager_.events().unsubscribe(stream);
  clock_.advanceMs(kGraceMs);
  {
    OrphanSweeper sweeper(manager_, 20ms);
    EXPECT_TRUE(eventually([&] { return manager_.sessionCount() == 0; }));
  }
  EXPECT_EQ(metrics_.orphanedOwnerGone.Value(), 1);
  // Between rounds it sleeps; stop() wakes it at once.
  OrphanSweeper idle(manager_, 1h);
  auto started = std::chrono::steady_clock::now();
  idle.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
}

}  // namespace
}  // namespace medius::media
