// The gateway's gRPC clients against the real services in-process: GrpcMediaClient over
// media-transcoder workers (medius_media), GrpcRoutingClient::routeCallAsync over the
// routing service with examples/local/routing.json (medius_routing) and
// GrpcRegistrarClient::lookupAsync over the registrar with a memory store
// (medius_registrar). Every server listens on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include "medius/common/clock.hpp"
#include "medius/common/service.hpp"
#include "medius/gateway/media_client.hpp"
#include "medius/gateway/metrics.hpp"
#include "medius/gateway/registrar_client.hpp"
#include "medius/gateway/routing_client.hpp"
#include "medius/media/grpc_service.hpp"
#include "medius/media/metrics.hpp"
#include "medius/media/session_manager.hpp"
#include "medius/registrar/grpc_service.hpp"
#include "medius/registrar/memory_binding_store.hpp"
#include "medius/registrar/registrar.hpp"
#include "medius/routing/engine.hpp"
#include "medius/routing/service/grpc_service.hpp"
#include "medius/routing/service/live_config.hpp"
#include "medius/routing/service/metrics.hpp"
#include "medius/routing/service/registrar_device_lookup.hpp"
#include "net.hpp"

namespace medius::gateway {
namespace {

using namespace std::chrono_literals;

// Sample count of medius_gateway_grpc_client_seconds{service,method}.
std::uint64_t histogramCount(prometheus::Registry& registry, const std::string& service,
                             const std::string& method) {
  for (const auto& family : registry.Collect()) {
    if (family.name != "medius_gateway_grpc_client_seconds") continue;
    for (const auto& m : family.metric) {
      bool s = false, me = false;
      for (const auto& l : m.label) {
        if (l.name == "service" && l.value == service) s = true;
        if (l.name == "method" && l.value == method) me = true;
      }
      if (s && me) return m.histogram.sample_count;
    }
  }
  return 0;
}

// Value of medius_gateway_grpc_client_errors_total{service,method,code}.
double errorCount(prometheus::Registry& registry, const std::string& service,
                  const std::string& method, const std::string& code) {
  for (const auto& family : registry.Collect()) {
    if (family.name != "medius_gateway_grpc_client_errors_total") continue;
    for (const auto& m : family.metric) {
      int matched = 0;
      for (const auto& l : m.label) {
        if ((l.name == "service" && l.value == service) ||
            (l.name == "method" && l.value == method) || (l.name == "code" && l.value == code)) {
          ++matched;
        }
      }
      if (matched == 3) return m.counter.value;
    }
  }
  return 0;
}

std::string sdpFor(std::uint16_t port) {
  return "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio " +
         std::to_string(port) +
         " RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         "a=sendrecv\r\n";
}

media::MediaConfig workerConfig() {
  media::MediaConfig c;
  // A random window below the ephemeral range (as tests/media does).
  static std::mt19937 rng{std::random_device{}()};
  auto base =
      static_cast<std::uint16_t>(10000 + 100 * std::uniform_int_distribution<int>(0, 98)(rng));
  c.portRange = {base, static_cast<std::uint16_t>(base + 99)};
  c.workers = 1;
  c.mediaTimeoutMs = 60000;
  c.maxSessions = 20;
  return c;
}

// One real media-transcoder worker (wired as services/media-transcoder/src/main.cpp does).
class MediaWorker {
 public:
  explicit MediaWorker(std::uint16_t port = 0, std::string host = "127.0.0.1")
      : host_(std::move(host)),
        config_(workerConfig()),
        metrics_(registry_),
        manager_(config_, metrics_),
        service_(manager_),
        server_(host_ + ":" + std::to_string(port), {&service_}, {"medius.v1.MediaTranscoder"}) {
    service_.setOnDrain([this] { server_.setServing(false); });
  }
  ~MediaWorker() {
    server_.setServing(false);
    service_.stopWatches();
    server_.shutdown(500ms);
    manager_.shutdown();
  }
  std::string address() const { return host_ + ":" + std::to_string(server_.port()); }
  std::uint16_t port() const { return static_cast<std::uint16_t>(server_.port()); }
  media::SessionManager& manager() { return manager_; }

 private:
  std::string host_;
  media::MediaConfig config_;
  prometheus::Registry registry_;
  media::MediaMetrics metrics_;
  media::SessionManager manager_;
  media::MediaService service_;
  GrpcServer server_;
};

struct Created {
  grpc::Status status;
  v1::CreateSessionResponse response;
  std::string worker;
};

v1::CreateSessionRequest createRequest(const std::string& id, const std::string& offer = {}) {
  v1::CreateSessionRequest r;
  r.set_session_id(id);
  r.set_gateway_id("gw1");
  r.set_offer_sdp(offer.empty() ? sdpFor(40000) : offer);
  // Leg A an internal client (SRTP optional), leg B a trunk (the defaults: plain G.711).
  r.mutable_leg_a()->set_side(v1::SIDE_INTERNAL);
  r.mutable_leg_a()->set_srtp(v1::SRTP_POLICY_OPTIONAL);
  r.mutable_leg_b()->set_side(v1::SIDE_TRUNK);
  return r;
}

Created create(MediaClient& client, const std::string& id, const std::string& offer = {}) {
  std::promise<Created> p;
  client.createAsync(createRequest(id, offer),
                     [&p](const grpc::Status& s, v1::CreateSessionResponse r, std::string w) {
                       p.set_value(Created{s, std::move(r), std::move(w)});
                     });
  return p.get_future().get();
}

grpc::Status remove(MediaClient& client, const std::string& worker, const std::string& id) {
  std::promise<grpc::Status> p;
  v1::DeleteSessionRequest r;
  r.set_session_id(id);
  client.deleteAsync(worker, r, [&p](const grpc::Status& s, v1::SessionStats) { p.set_value(s); });
  return p.get_future().get();
}

// The events handed to watch()'s handler.
class Events {
 public:
  MediaClient::EventHandler handler() {
    return [this](const std::string& worker, const v1::MediaEvent& event) {
      std::lock_guard lock(mutex_);
      events_.emplace_back(worker, event);
      cv_.notify_all();
    };
  }
  // True once an event of `kind` for `sessionId` arrived (from `worker` when not empty).
  bool waitFor(v1::MediaEvent::Kind kind, const std::string& sessionId,
               std::chrono::milliseconds timeout, const std::string& worker = "") {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] {
      for (const auto& [w, e] : events_) {
        if (e.kind() == kind && e.session_id() == sessionId && (worker.empty() || w == worker))
          return true;
      }
      return false;
    });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, v1::MediaEvent>> events_;
};

// Creates and deletes probe sessions on `worker` until the deletion of one arrives
// through the watch stream: then the stream is subscribed. The client creates
// round robin, so a probe that lands on another worker is deleted there.
bool waitSubscribed(MediaClient& client, Events& events, const std::string& worker,
                    std::chrono::milliseconds timeout = 10s) {
  static std::atomic<int> n{0};
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    std::string id = "probe-" + std::to_string(n++);
    Created c = create(client, id);
    if (c.status.ok()) {
      remove(client, c.worker, id);
      if (c.worker == worker &&
          events.waitFor(v1::MediaEvent::KIND_SESSION_DELETED, id, 200ms, worker)) {
        return true;
      }
    } else {
      std::this_thread::sleep_for(50ms);
    }
  }
  return false;
}

// A TCP listener that never accepts nor answers: gRPC calls to it hang until cancelled.
class Blackhole {
 public:
  Blackhole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(testing::freeLoopbackPort());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Blackhole() { ::close(fd_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

class MediaClientTest : public ::testing::Test {
 protected:
  prometheus::Registry registry_;
  GatewayMetrics metrics_{registry_};
};

TEST_F(MediaClientTest, CreateUpdateDeleteAndSessionDeletedEvent) {
  MediaWorker worker;
  Events events;
  GrpcMediaClient client({worker.address()}, 2000ms, metrics_);
  client.watch("gw1", events.handler());
  ASSERT_TRUE(waitSubscribed(client, events, worker.address()));

  Created c = create(client, "call-1");
  ASSERT_TRUE(c.status.ok()) << c.status.error_message();
  EXPECT_EQ(c.worker, worker.address());
  EXPECT_NE(c.response.offer_sdp().find("c=IN IP4 127.0.0.1"), std::string::npos)
      << c.response.offer_sdp();
  EXPECT_EQ(worker.manager().sessionCount(), 1u);

  std::promise<std::pair<grpc::Status, v1::UpdateSessionResponse>> updated;
  v1::UpdateSessionRequest u;
  u.set_session_id("call-1");
  u.set_from_leg(v1::LEG_B);
  u.set_sdp(sdpFor(40010));
  u.set_is_answer(true);
  client.updateAsync(c.worker, u,
                     [&updated](const grpc::Status& s, v1::UpdateSessionResponse r) {
                       updated.set_value({s, std::move(r)});
                     });
  auto [us, ur] = updated.get_future().get();
  ASSERT_TRUE(us.ok()) << us.error_message();
  EXPECT_NE(ur.sdp().find("m=audio"), std::string::npos);

  std::promise<std::pair<grpc::Status, v1::SessionStats>> deleted;
  v1::DeleteSessionRequest d;
  d.set_session_id("call-1");
  client.deleteAsync(c.worker, d, [&deleted](const grpc::Status& s, v1::SessionStats st) {
    deleted.set_value({s, std::move(st)});
  });
  auto [ds, dstats] = deleted.get_future().get();
  ASSERT_TRUE(ds.ok()) << ds.error_message();
  EXPECT_EQ(dstats.session_id(), "call-1");
  EXPECT_EQ(worker.manager().sessionCount(), 0u);
  EXPECT_TRUE(events.waitFor(v1::MediaEvent::KIND_SESSION_DELETED, "call-1", 5s,
                             worker.address()));

  EXPECT_GE(histogramCount(registry_, "media", "CreateSession"), 2u);
  EXPECT_GE(histogramCount(registry_, "media", "UpdateSession"), 1u);
  EXPECT_GE(histogramCount(registry_, "media", "DeleteSession"), 2u);

  // A session unknown to the worker: the worker's error reaches `done`, and is counted.
  EXPECT_EQ(remove(client, c.worker, "call-1").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(errorCount(registry_, "media", "DeleteSession", "NOT_FOUND"), 1);
}

TEST_F(MediaClientTest, ClientCreateSkipsUnreachableWorker) {
  MediaWorker worker;
  std::string dead = "127.0.0.1:" + std::to_string(testing::freeLoopbackPort());
  GrpcMediaClient client({dead, worker.address()}, 2000ms, metrics_);
  for (int i = 0; i < 4; ++i) {
    Created c = create(client, "s" + std::to_string(i));
    ASSERT_TRUE(c.status.ok()) << i << ": " << c.status.error_message();
    EXPECT_EQ(c.worker, worker.address()) << i;
  }
  EXPECT_EQ(worker.manager().sessionCount(), 4u);
  EXPECT_GE(errorCount(registry_, "media", "CreateSession", "UNAVAILABLE"), 1);
}

TEST_F(MediaClientTest, ClientCreateSkipsDrainingWorkerAndRoundRobins) {
  MediaWorker first;
  MediaWorker second;
  GrpcMediaClient client({first.address(), second.address()}, 2000ms, metrics_);
  // Both accept: round robin alternates.
  Created a = create(client, "a");
  Created b = create(client, "b");
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  EXPECT_NE(a.worker, b.worker);

  first.manager().drain();
  for (int i = 0; i < 4; ++i) {
    Created c = create(client, "d" + std::to_string(i));
    ASSERT_TRUE(c.status.ok()) << i << ": " << c.status.error_message();
    EXPECT_EQ(c.worker, second.address()) << i;
  }
  EXPECT_EQ(first.manager().sessionCount(), 1u);
  EXPECT_EQ(second.manager().sessionCount(), 5u);
}

TEST_F(MediaClientTest, ClientCreateSendsNewSessionsToTheLeastLoadedWorker) {
  MediaWorker first;
  MediaWorker second;
  GrpcMediaClient client({first.address(), second.address()}, 2000ms, metrics_);
  // An Opus-only offer toward the G.711 trunk side is transcoded whatever the answer: its
  // worker reports ~0.6 % of a core, against ~0.08 % per relayed session (load.hpp).
  std::string opus =
      "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
      "m=audio 40000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n";
  Created heavy = create(client, "opus", opus);
  ASSERT_TRUE(heavy.status.ok()) << heavy.status.error_message();
  EXPECT_GT(heavy.response.load(), 0.4);
  EXPECT_GT(heavy.response.load_limit(), 0.0);
  std::string other = heavy.worker == first.address() ? second.address() : first.address();
  // Relayed sessions go to the other worker (round robin alone would alternate) as long as
  // it carries less.
  for (int i = 0; i < 6; ++i) {
    Created c = create(client, "relay" + std::to_string(i));
    ASSERT_TRUE(c.status.ok()) << i << ": " << c.status.error_message();
    EXPECT_EQ(c.worker, other) << i;
    EXPECT_LT(c.response.load(), heavy.response.load()) << i;
  }
}

TEST_F(MediaClientTest, ClientCreateFailsWhenEveryWorkerRefuses) {
  MediaWorker only;
  only.manager().drain();
  std::string dead = "127.0.0.1:" + std::to_string(testing::freeLoopbackPort());
  GrpcMediaClient client({only.address(), dead}, 2000ms, metrics_);
  Created c = create(client, "x");
  EXPECT_EQ(c.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(c.worker, "");
}

TEST_F(MediaClientTest, ClientUpdateOrDeleteOnUnknownWorkerFails) {
  MediaWorker worker;
  GrpcMediaClient client({worker.address()}, 1000ms, metrics_);
  // A worker that is not configured (removed by a reload) or none at all: `done` still runs
  // once, with an error, off the caller's stack.
  std::string other = "127.0.0.1:" + std::to_string(testing::freeLoopbackPort());
  EXPECT_FALSE(remove(client, other, "nope").ok());
  EXPECT_FALSE(remove(client, "", "nope").ok());
}

TEST_F(MediaClientTest, ClientWatchReconnectsAfterWorkerRestart) {
  const std::uint16_t port = testing::freeLoopbackPort();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  Events events;
  GrpcMediaClient client({address}, 2000ms, metrics_);
  auto worker = std::make_unique<MediaWorker>(port);
  client.watch("gw1", events.handler());
  ASSERT_TRUE(waitSubscribed(client, events, address));

  worker.reset();  // the stream ends; reconnects fail while the worker is away
  std::this_thread::sleep_for(300ms);
  worker = std::make_unique<MediaWorker>(port);

  // The next event of the restarted worker arrives through the reconnected stream.
  ASSERT_TRUE(waitSubscribed(client, events, address));
  Created c = create(client, "after-restart");
  ASSERT_TRUE(c.status.ok()) << c.status.error_message();
  ASSERT_TRUE(remove(client, c.worker, "after-restart").ok());
  EXPECT_TRUE(events.waitFor(v1::MediaEvent::KIND_SESSION_DELETED, "after-restart", 5s, address));
}

TEST_F(MediaClientTest, ClientDestructorCancelsCallsInFlightAndStreams) {
  Blackhole hole;
  MediaWorker worker;
  std::atomic<int> dones{0};
  std::atomic<int> cancelled{0};
  auto count = [&](const grpc::Status& s) {
    ++dones;
    if (s.error_code() == grpc::StatusCode::CANCELLED) ++cancelled;
  };
  Events events;
  auto start = std::chrono::steady_clock::now();
  {
    GrpcMediaClient client({hole.address(), worker.address()}, 60000ms, metrics_);
    client.watch("gw1", events.handler());
    for (int i = 0; i < 3; ++i) {
      v1::UpdateSessionRequest u;
      u.set_session_id("u" + std::to_string(i));
      client.updateAsync(hole.address(), u,
                         [&](const grpc::Status& s, v1::UpdateSessionResponse) { count(s); });
      v1::DeleteSessionRequest d;
      d.set_session_id("d" + std::to_string(i));
      client.deleteAsync(hole.address(), d,
                         [&](const grpc::Status& s, v1::SessionStats) { count(s); });
    }
    // The first create goes to the black hole (round robin starts at the first worker).
    client.createAsync(createRequest("c0"),
                       [&](const grpc::Status& s, v1::CreateSessionResponse, std::string) {
                         count(s);
                       });
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(dones.load(), 0);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(dones.load(), 7);
  EXPECT_EQ(cancelled.load(), 7);
}

// ---- media workers found by name ("dns:host:port") ----

TEST(MediaWorkerNames, ParseDnsWorker) {
  auto name = parseDnsWorker("dns:media.medius.svc:50053");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->first, "media.medius.svc");
  EXPECT_EQ(name->second, "50053");
  EXPECT_FALSE(parseDnsWorker("127.0.0.1:50053").has_value());
  EXPECT_THROW(parseDnsWorker("dns:"), std::invalid_argument);
  EXPECT_THROW(parseDnsWorker("dns:media"), std::invalid_argument);
  EXPECT_THROW(parseDnsWorker("dns::50053"), std::invalid_argument);
}

TEST(MediaWorkerNames, ResolveHost) {
  auto local = resolveHost("localhost");
  ASSERT_TRUE(local.has_value());
  EXPECT_NE(std::find(local->begin(), local->end(), "127.0.0.1"), local->end());
  EXPECT_EQ(resolveHost("127.0.0.3"), std::vector<std::string>{"127.0.0.3"});
  // A name that does not exist has no addresses (or, without a resolver, no answer).
  auto none = resolveHost("no-such-worker.invalid");
  EXPECT_TRUE(!none.has_value() || none->empty());
}

// A resolver the test steers: the addresses it answers now, or nullopt (failure).
class FakeResolver {
 public:
  void set(std::optional<std::vector<std::string>> answer) {
    std::lock_guard lock(mutex_);
    answer_ = std::move(answer);
  }
  MediaWorkerDiscovery discovery() {
    return MediaWorkerDiscovery{20ms, [this](const std::string& host) {
                                  EXPECT_EQ(host, "media.test");
                                  std::lock_guard lock(mutex_);
                                  return answer_;
                                }};
  }

 private:
  std::mutex mutex_;
  std::optional<std::vector<std::string>> answer_;
};

double gauge(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name == name && !family.metric.empty()) return family.metric[0].gauge.value;
  }
  return -1;
}

bool waitGauge(prometheus::Registry& registry, double value) {
  for (int i = 0; i < 200; ++i) {
    if (gauge(registry, "medius_gateway_media_workers") == value) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST_F(MediaClientTest, WorkersFoundByNameJoinAndLeave) {
  MediaWorker first(0, "127.0.0.1");
  MediaWorker second(first.port(), "127.0.0.2");
  const std::string name = "dns:media.test:" + std::to_string(first.port());
  FakeResolver resolver;
  resolver.set(std::vector<std::string>{"127.0.0.1"});
  Events events;
  GrpcMediaClient client({name}, 2000ms, metrics_, resolver.discovery());
  client.watch("gw1", events.handler());
  EXPECT_EQ(gauge(registry_, "medius_gateway_media_workers"), 1);
  for (int i = 0; i < 2; ++i) {
    Created c = create(client, "one" + std::to_string(i));
    ASSERT_TRUE(c.status.ok()) << c.status.error_message();
    EXPECT_EQ(c.worker, first.address());
  }

  // Scaled out: the second address joins; new sessions go to both.
  resolver.set(std::vector<std::string>{"127.0.0.1", "127.0.0.2"});
  ASSERT_TRUE(waitGauge(registry_, 2));
  std::set<std::string> used;
  for (int i = 0; i < 4; ++i) {
    Created c = create(client, "two" + std::to_string(i));
    ASSERT_TRUE(c.status.ok()) << c.status.error_message();
    used.insert(c.worker);
  }
  EXPECT_EQ(used, (std::set<std::string>{first.address(), second.address()}));
  // Its events stream was opened when it joined.
  ASSERT_TRUE(waitSubscribed(client, events, second.address()));

  // A failed resolution keeps the last addresses.
  resolver.set(std::nullopt);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(gauge(registry_, "medius_gateway_media_workers"), 2);

  // Scaled in: the first leaves. No new sessions on it, but its own are still reachable.
  resolver.set(std::vector<std::string>{"127.0.0.2"});
  ASSERT_TRUE(waitGauge(registry_, 1));
  const auto onFirst = first.manager().sessionCount();
  for (int i = 0; i < 4; ++i) {
    Created c = create(client, "after" + std::to_string(i));
    ASSERT_TRUE(c.status.ok()) << c.status.error_message();
    EXPECT_EQ(c.worker, second.address()) << i;
  }
  EXPECT_EQ(first.manager().sessionCount(), onFirst);
  EXPECT_TRUE(remove(client, first.address(), "one0").ok());
  EXPECT_EQ(first.manager().sessionCount(), onFirst - 1);

  // Every pod gone: no worker, a clear UNAVAILABLE.
  resolver.set(std::vector<std::string>{});
  ASSERT_TRUE(waitGauge(registry_, 0));
  Created none = create(client, "none");
  EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAVAILABLE);

  // Back: the first rejoins with a new events stream.
  resolver.set(std::vector<std::string>{"127.0.0.1"});
  ASSERT_TRUE(waitGauge(registry_, 1));
  ASSERT_TRUE(waitSubscribed(client, events, first.address()));
}

TEST_F(MediaClientTest, NameThatDoesNotResolveYetGivesNoWorkerUntilItDoes) {
  MediaWorker worker;
  FakeResolver resolver;
  resolver.set(std::nullopt);
  GrpcMediaClient client({"dns:media.test:" + std::to_string(worker.port())}, 2000ms, metrics_,
                         resolver.discovery());
  EXPECT_EQ(create(client, "early").status.error_code(), grpc::StatusCode::UNAVAILABLE);
  resolver.set(std::vector<std::string>{"127.0.0.1"});
  ASSERT_TRUE(waitGauge(registry_, 1));
  Created c = create(client, "later");
  ASSERT_TRUE(c.status.ok()) << c.status.error_message();
  EXPECT_EQ(c.worker, worker.address());
}

// ---- routing: RouteCall through the real routing service ----

class RoutingClientTest : public ::testing::Test {
 protected:
  RoutingClientTest()
      : file_(std::string(MEDIUS_SOURCE_DIR) + "/examples/local/routing.json"),
        routingMetrics_(routingRegistry_),
        live_(file_, routing::service::LiveConfig::read(file_), health_, routingMetrics_),
        service_(live_, health_, registrarChannels_, routingMetrics_),
        server_("127.0.0.1:0", {&service_}, {"medius.v1.Routing"}) {}
  ~RoutingClientTest() override { server_.shutdown(500ms); }

  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port()); }

  static std::pair<grpc::Status, v1::RoutePlan> route(RoutingClient& client,
                                                       const std::string& callee) {
    v1::RouteCallRequest r;
    r.set_caller("sip:alice@example.com");
    r.set_callee(callee);
    r.mutable_source()->set_internal_user("sip:alice@example.com");
    r.set_call_id("clients-test-1");
    std::promise<std::pair<grpc::Status, v1::RoutePlan>> p;
    client.routeCallAsync(r, [&p](const grpc::Status& s, v1::RoutePlan plan) {
      p.set_value({s, std::move(plan)});
    });
    return p.get_future().get();
  }

  std::string file_;
  prometheus::Registry routingRegistry_;
  routing::service::RoutingMetrics routingMetrics_;
  routing::TrunkHealth health_;
  routing::service::LiveConfig live_;
  routing::service::RegistrarChannels registrarChannels_;
  routing::service::RoutingService service_;
  GrpcServer server_;
  prometheus::Registry registry_;
  GatewayMetrics metrics_{registry_};
};

TEST_F(RoutingClientTest, RouteCallToPbxExtension) {
  GrpcRoutingClient client(address(), 2000ms, metrics_);
  auto [status, plan] = route(client, "sip:2200@example.com");
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(plan.outcome(), v1::RoutePlan::OUTCOME_ROUTED) << plan.DebugString();
  bool pbx = false;
  for (const auto& group : plan.groups()) {
    for (const auto& target : group.targets()) {
      if (target.has_trunk() && target.trunk().trunk() == "pbx" &&
          target.trunk().request_uri().find("2200@127.0.0.13") != std::string::npos) {
        pbx = true;
      }
    }
  }
  EXPECT_TRUE(pbx) << plan.DebugString();
  EXPECT_EQ(histogramCount(registry_, "routing", "RouteCall"), 1u);
}

TEST_F(RoutingClientTest, RouteCallUnknownNumberIsNotFoundOutcome) {
  GrpcRoutingClient client(address(), 2000ms, metrics_);
  auto [status, plan] = route(client, "sip:nobody-here@example.com");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(plan.outcome(), v1::RoutePlan::OUTCOME_ROUTED) << plan.DebugString();
}

TEST(RoutingClientUnreachable, RouteCallFailsWithUnavailable) {
  prometheus::Registry registry;
  GatewayMetrics metrics(registry);
  GrpcRoutingClient client("127.0.0.1:" + std::to_string(testing::freeLoopbackPort()), 1000ms,
                           metrics);
  v1::RouteCallRequest r;
  r.set_callee("sip:2200@example.com");
  std::promise<grpc::Status> p;
  client.routeCallAsync(r, [&p](const grpc::Status& s, v1::RoutePlan) { p.set_value(s); });
  grpc::Status s = p.get_future().get();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(errorCount(registry, "routing", "RouteCall", "UNAVAILABLE"), 1);
}

// ---- registrar: Lookup through the real registrar service ----

class RegistrarClientTest : public ::testing::Test {
 protected:
  static registrar::RegistrarConfig config() {
    return registrar::parse(R"({
      "service": {"grpc_listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0"},
      "domain": "example.com",
      "store": {"type": "memory"},
      "auth": {"required": false, "realm": "example.com"}
    })", "clients-test-registrar.json");
  }
  RegistrarClientTest()
      : config_(config()),
        registrarMetrics_(registrarRegistry_),
        registrar_(config_, store_, SystemClock::instance(), registrarMetrics_),
        service_(registrar_, store_),
        server_("127.0.0.1:0", {&service_}, {"medius.v1.Registrar"}) {}
  ~RegistrarClientTest() override {
    service_.stopWatches();
    server_.shutdown(500ms);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port()); }

  registrar::RegistrarConfig config_;
  registrar::MemoryBindingStore store_;
  prometheus::Registry registrarRegistry_;
  registrar::RegistrarMetrics registrarMetrics_;
  registrar::Registrar registrar_;
  registrar::RegistrarService service_;
  GrpcServer server_;
  prometheus::Registry registry_;
  GatewayMetrics metrics_{registry_};
};

TEST_F(RegistrarClientTest, LookupReturnsRegisteredContacts) {
  GrpcRegistrarClient client(address(), 2000ms, metrics_);
  v1::RegisterRequest reg;
  reg.set_aor("sip:alice@example.com");
  reg.add_contacts()->set_uri("sip:alice@127.0.0.1:5070");
  reg.set_expires(3600);
  reg.set_call_id("reg-1");
  reg.set_cseq(1);
  std::promise<grpc::Status> registered;
  client.registerAsync(reg, [&registered](const grpc::Status& s, v1::RegisterResponse r) {
    EXPECT_EQ(r.result(), v1::RegisterResponse::RESULT_OK);
    registered.set_value(s);
  });
  ASSERT_TRUE(registered.get_future().get().ok());

  auto lookup = [&](const std::string& aor) {
    v1::LookupRequest l;
    l.set_aor(aor);
    std::promise<std::pair<grpc::Status, v1::LookupResponse>> p;
    client.lookupAsync(l, [&p](const grpc::Status& s, v1::LookupResponse r) {
      p.set_value({s, std::move(r)});
    });
    return p.get_future().get();
  };
  auto [status, response] = lookup("sip:alice@example.com");
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.bindings_size(), 1);
  EXPECT_EQ(response.bindings(0).contact_uri(), "sip:alice@127.0.0.1:5070");

  auto [status2, empty] = lookup("sip:bob@example.com");
  ASSERT_TRUE(status2.ok());
  EXPECT_EQ(empty.bindings_size(), 0);
  EXPECT_EQ(histogramCount(registry_, "registrar", "Lookup"), 2u);
}

TEST(RegistrarClientUnreachable, LookupFailsWithUnavailable) {
  prometheus::Registry registry;
  GatewayMetrics metrics(registry);
  GrpcRegistrarClient client("127.0.0.1:" + std::to_string(testing::freeLoopbackPort()), 1000ms,
                             metrics);
  std::promise<grpc::Status> p;
  client.lookupAsync(v1::LookupRequest{},
                     [&p](const grpc::Status& s, v1::LookupResponse) { p.set_value(s); });
  EXPECT_EQ(p.get_future().get().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(errorCount(registry, "registrar", "Lookup", "UNAVAILABLE"), 1);
}

}  // namespace
}  // namespace medius::gateway
