// The trunk keepalive for real: the gateway library on 127.0.0.1 with a fake routing
// service (the generated medius.v1.Routing service, in-process) listing one trunk at
// 127.0.0.2, where a UDP socket of the test plays the trunk: it answers OPTIONS, goes
// silent, answers again. Short interval (200 ms); nta's own timers are untouched (the
// monitor's round bounds each probe).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include "medius/common/metrics.hpp"
#include "medius/gateway/admin_service.hpp"
#include "medius/gateway/gateway.hpp"
#include "medius/gateway/registrar_client.hpp"
#include "medius/gateway/routing_client.hpp"
#include "medius/gateway/sip_loop.hpp"
#include "medius/gateway/trunk_monitor.hpp"
#include "medius/v1/routing.grpc.pb.h"
#include "net.hpp"

namespace medius::gateway {
namespace {

using namespace std::chrono_literals;

class FakeRouting final : public v1::Routing::Service {
 public:
  explicit FakeRouting(std::uint16_t trunkPort) : trunkPort_(trunkPort) {}
  grpc::Status ListTrunks(grpc::ServerContext*, const v1::ListTrunksRequest*,
                          v1::ListTrunksResponse* response) override {
    auto* t = response->add_trunks();
    t->set_name("t1");
    t->mutable_address()->set_host("127.0.0.2");
    t->mutable_address()->set_port(trunkPort_);
    t->mutable_address()->set_transport(v1::TRANSPORT_UDP);
    t->set_up(true);
    return grpc::Status::OK;
  }
  grpc::Status ReportTrunkHealth(grpc::ServerContext*, const v1::TrunkHealthReport* request,
                                 v1::TrunkHealthAck*) override {
    std::lock_guard lock(mutex_);
    reports_.push_back(*request);
    changed_.notify_all();
    return grpc::Status::OK;
  }
  // Waits for a report saying t1 is `up` (with `code` when non-zero) after report `from`;
  // returns its index or -1.
  int waitFor(bool up, std::uint32_t code, std::size_t from, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    int found = -1;
    changed_.wait_for(lock, limit, [&] {
      for (std::size_t i = from; i < reports_.size(); ++i) {
        for (const auto& e : reports_[i].trunks()) {
          if (e.trunk() == "t1" && e.up() == up && (code == 0 || e.last_code() == code)) {
            found = static_cast<int>(i);
            return true;
          }
        }
      }
      return false;
    });
    return found;
  }
  std::size_t count() {
    std::lock_guard lock(mutex_);
    return reports_.size();
  }
  v1::TrunkHealthReport report(std::size_t i) {
    std::lock_guard lock(mutex_);
    return reports_.at(i);
  }

 private:
  std::uint16_t trunkPort_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<v1::TrunkHealthReport> reports_;
};

// The trunk: answers OPTIONS with `code` (0: silent) from 127.0.0.2.
class FakeTrunk {
 public:
  FakeTrunk() {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    timeval tv{0, 50000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread_ = std::thread([this] { run(); });
  }
  ~FakeTrunk() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  bool bound() const { return bound_; }
  std::uint16_t port() const { return port_; }
  void answerWith(int code) { code_ = code; }
  int received() const { return received_.load(); }
  std::string lastRequest() {
    std::lock_guard lock(mutex_);
    return last_;
  }
  std::uint16_t lastSourcePort() const { return sourcePort_.load(); }

 private:
  static std::string header(const std::string& msg, const std::string& name) {
    auto pos = msg.find("\r\n" + name + ":");
    if (pos == std::string::npos) return "";
    pos += name.size() + 3;
    while (pos < msg.size() && msg[pos] == ' ') ++pos;
    return msg.substr(pos, msg.find("\r\n", pos) - pos);
  }
  void run() {
    char buf[65536];
    while (!stop_) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) continue;
      std::string request(buf, static_cast<std::size_t>(n));
      if (request.rfind("OPTIONS ", 0) != 0) continue;
      ++received_;
      sourcePort_ = ntohs(from.sin_port);
      {
        std::lock_guard lock(mutex_);
        last_ = request;
      }
      int code = code_.load();
      if (code == 0) continue;
      std::string response = "SIP/2.0 " + std::to_string(code) + " Whatever\r\n"
                             "Via: " + header(request, "Via") + "\r\n"
                             "From: " + header(request, "From") + "\r\n"
                             "To: " + header(request, "To") + ";tag=trunk\r\n"
                             "Call-ID: " + header(request, "Call-ID") + "\r\n"
                             "CSeq: " + header(request, "CSeq") + "\r\n"
                             "Content-Length: 0\r\n\r\n";
      sendto(fd_, response.data(), response.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }

  int fd_ = -1;
  bool bound_ = false;
  std::uint16_t port_ = 0;
  std::atomic<int> code_{200};
  std::atomic<int> received_{0};
  std::atomic<std::uint16_t> sourcePort_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::string last_;
  std::thread thread_;
};

double metric(prometheus::Registry& registry, const std::string& series) {
  std::string text = metrics::serialize(registry);
  auto pos = text.find("\n" + series + " ");
  if (pos == std::string::npos) return 0;
  pos += series.size() + 2;
  return std::stod(text.substr(pos, text.find('\n', pos) - pos));
}

// A gateway with its trunk monitor on a SIP loop, probing every 200 ms (down after 2
// failures, up after 1 success), listing trunks from the routing service at `routingPort`.
// The destructor tears it down in the order the loop needs, also when an ASSERT ended the
// test early.
struct KeepaliveStack {
  KeepaliveStack(int routingPort, std::chrono::milliseconds routingTimeout)
      : trunkSidePort(medius::testing::freeLoopbackPort()), metrics(registry) {
    config.domain = "example.com";
    config.gatewayId = "gw-keepalive";
    config.internalListen = {"sip:127.0.0.1:" +
                             std::to_string(medius::testing::freeLoopbackPort())};
    config.trunkListen = {"sip:127.0.0.1:" + std::to_string(trunkSidePort)};
    config.userAgent = "Medius-Test/1";
    loop = std::make_unique<SipLoop>();
    registrar = std::make_unique<GrpcRegistrarClient>("127.0.0.1:1", 100ms, metrics);
    routing = std::make_unique<GrpcRoutingClient>("127.0.0.1:" + std::to_string(routingPort),
                                                  routingTimeout, metrics);
    SipLoop* loopPtr = loop.get();
    loop->invoke([&] {
      gateway = std::make_unique<Gateway>(*loopPtr, config, *registrar, metrics, state);
      monitor = std::make_unique<TrunkMonitor>(
          [loopPtr](std::function<void()> fn) { return loopPtr->post(std::move(fn)); },
          *routing, *gateway, metrics, config.gatewayId, KeepaliveSettings{200, 2, 1});
      monitor->start(loopPtr->root());
    });
  }
  ~KeepaliveStack() {
    loop->invoke([&] {
      monitor.reset();
      gateway.reset();
    });
    routing.reset();
    registrar.reset();
    loop.reset();
  }
  KeepaliveStack(const KeepaliveStack&) = delete;
  KeepaliveStack& operator=(const KeepaliveStack&) = delete;

  std::uint16_t trunkSidePort;
  GatewayConfig config;
  prometheus::Registry registry;
  GatewayMetrics metrics;
  GatewayState state;
  std::unique_ptr<SipLoop> loop;
  std::unique_ptr<GrpcRegistrarClient> registrar;
  std::unique_ptr<GrpcRoutingClient> routing;
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<TrunkMonitor> monitor;
};

TEST(TrunkKeepaliveLoop, TrunkGoesDownWhenSilentAndUpWhenItAnswersAgain) {
  FakeTrunk trunk;
  ASSERT_TRUE(trunk.bound()) << "127.0.0.2 is not usable here";
  FakeRouting fakeRouting(trunk.port());
  int routingPort = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &routingPort);
  builder.RegisterService(&fakeRouting);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server);

  KeepaliveStack stack(routingPort, 1000ms);
  prometheus::Registry& registry = stack.registry;
  SipLoop* loopPtr = stack.loop.get();
  GatewayAdminService admin(stack.config.gatewayId, stack.state);
  admin.setTrunkMonitor(stack.monitor.get());

  // 1. The trunk answers 200: reported up with code 200.
  int upAt = fakeRouting.waitFor(true, 200, 0, 10s);
  ASSERT_GE(upAt, 0) << "no report of t1 up with 200";
  EXPECT_EQ(fakeRouting.report(static_cast<std::size_t>(upAt)).gateway_id(), "gw-keepalive");
  std::string options = trunk.lastRequest();
  EXPECT_EQ(options.rfind("OPTIONS sip:127.0.0.2:" + std::to_string(trunk.port()) +
                              ";transport=udp SIP/2.0\r\n", 0), 0u) << options;
  EXPECT_NE(options.find("\r\nMax-Forwards: 70\r\n"), std::string::npos) << options;
  EXPECT_NE(options.find("\r\nFrom: <sip:medius@example.com>;tag="), std::string::npos) << options;
  EXPECT_NE(options.find("\r\nUser-Agent: Medius-Test/1\r\n"), std::string::npos) << options;
  EXPECT_EQ(trunk.lastSourcePort(), stack.trunkSidePort) << "the OPTIONS did not leave from the trunk side";
  v1::ListTrunkStatusResponse listed;
  ASSERT_TRUE(admin.ListTrunkStatus(nullptr, nullptr, &listed).ok());
  ASSERT_EQ(listed.trunks_size(), 1);
  EXPECT_EQ(listed.trunks(0).name(), "t1");
  EXPECT_TRUE(listed.trunks(0).up());
  EXPECT_EQ(listed.trunks(0).last_options_code(), 200u);
  EXPECT_EQ(listed.trunks(0).address().port(), trunk.port());

  // 2. Silent: down after two unanswered probes, never more than one outstanding.
  trunk.answerWith(0);
  std::size_t before = fakeRouting.count();
  int receivedBefore = trunk.received();
  std::atomic<bool> watching{true};
  std::atomic<std::size_t> maxOutstanding{0};
  std::thread watcher([&] {
    while (watching) {
      loopPtr->invoke([&] {
        std::size_t n = stack.gateway->outstandingProbes();
        if (n > maxOutstanding) maxOutstanding = n;
      });
      std::this_thread::sleep_for(20ms);
    }
  });
  int downAt = fakeRouting.waitFor(false, 0, before, 10s);
  watching = false;
  watcher.join();
  ASSERT_GE(downAt, 0) << "no report of t1 down";
  EXPECT_GE(trunk.received() - receivedBefore, 2);
  EXPECT_LE(maxOutstanding.load(), 1u);
  loopPtr->invoke([] {});
  EXPECT_GE(metric(registry, "medius_gateway_trunk_options_total{result=\"timeout\",trunk=\"t1\"}"), 2);
  EXPECT_EQ(metric(registry, "medius_gateway_trunk_up{trunk=\"t1\"}"), 0);
  listed.Clear();
  ASSERT_TRUE(admin.ListTrunkStatus(nullptr, nullptr, &listed).ok());
  EXPECT_FALSE(listed.trunks(0).up());
  EXPECT_EQ(listed.trunks(0).last_options_code(), 0u);
  EXPECT_GT(listed.trunks(0).last_change_ms(), 0);

  // 3. Answers again, with 405: the peer is alive, up again.
  trunk.answerWith(405);
  before = fakeRouting.count();
  ASSERT_GE(fakeRouting.waitFor(true, 405, before, 10s), 0) << "no report of t1 up again";
  loopPtr->invoke([] {});
  EXPECT_EQ(metric(registry, "medius_gateway_trunk_up{trunk=\"t1\"}"), 1);
  EXPECT_GE(metric(registry, "medius_gateway_trunk_options_total{result=\"ok\",trunk=\"t1\"}"), 2);
  EXPECT_GE(metric(registry, "medius_gateway_grpc_client_seconds_count{method=\"ListTrunks\",service=\"routing\"}"), 3);

  admin.setTrunkMonitor(nullptr);
}

TEST(TrunkKeepaliveLoop, ClosedPortIsATransportErrorAndRoutingDownKeepsProbing) {
  // Nothing listens on the trunk's port: the ICMP error makes nta answer 503 itself,
  // which is an "error", not a live peer.
  std::uint16_t closedPort = 0;
  {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    closedPort = ntohs(a.sin_port);
    close(fd);
  }
  FakeRouting fakeRouting(closedPort);
  int routingPort = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &routingPort);
  builder.RegisterService(&fakeRouting);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server);

  KeepaliveStack stack(routingPort, 500ms);
  prometheus::Registry& registry = stack.registry;
  SipLoop* loopPtr = stack.loop.get();
  ASSERT_GE(fakeRouting.waitFor(false, 0, 0, 10s), 0) << "no report of t1 down";
  loopPtr->invoke([] {});
  EXPECT_GE(metric(registry, "medius_gateway_trunk_options_total{result=\"error\",trunk=\"t1\"}"), 2);

  // Routing goes away: the last list is kept and still probed; errors are counted.
  server->Shutdown();
  server.reset();
  double errorsBefore =
      metric(registry, "medius_gateway_trunk_options_total{result=\"error\",trunk=\"t1\"}");
  std::this_thread::sleep_for(1500ms);
  loopPtr->invoke([] {});
  EXPECT_GT(metric(registry, "medius_gateway_trunk_options_total{result=\"error\",trunk=\"t1\"}"),
            errorsBefore);
  std::string text = metrics::serialize(registry);
  EXPECT_NE(text.find("medius_gateway_grpc_client_errors_total{code=\""), std::string::npos);
  EXPECT_NE(text.find("method=\"ListTrunks\",service=\"routing\"}"), std::string::npos);
  std::vector<v1::TrunkStatus> statuses;
  loopPtr->invoke([&] { statuses = stack.monitor->statuses(); });
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_FALSE(statuses[0].up());
}

}  // namespace
}  // namespace medius::gateway
