// The trunk keepalive without sockets: the health state machine, and TrunkMonitor driven
// round by round with a fake routing client and a fake prober whose results the test
// injects. Also the gateway.json keys of the keepalive.
#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <prometheus/registry.h>

#include "medius/common/config.hpp"
#include "medius/common/metrics.hpp"
#include "medius/gateway/config.hpp"
#include "medius/gateway/trunk_monitor.hpp"

namespace medius::gateway {
namespace {

TEST(RecordProbe, DownAfterConsecutiveFailuresUpAfterSuccesses) {
  KeepaliveSettings s{1000, 3, 2};
  TrunkHealthState h;
  EXPECT_FALSE(recordProbe(h, s, ProbeResult::Ok, 200, 1));
  EXPECT_TRUE(h.up);
  EXPECT_EQ(h.lastCode, 200u);
  EXPECT_FALSE(recordProbe(h, s, ProbeResult::Timeout, 0, 2));
  EXPECT_FALSE(recordProbe(h, s, ProbeResult::Error, 0, 3));
  EXPECT_TRUE(h.up);
  // A success in between resets the count of failures.
  EXPECT_FALSE(recordProbe(h, s, ProbeResult::Ok, 404, 4));
  EXPECT_EQ(h.lastCode, 404u);
  EXPECT_FALSE(recordProbe(h, s, ProbeResult::Timeout, 0, 5));
  EXPECT_FALSE(recordProbe(h, s, ProbeResult::Timeout, 0, 6));
  EXPECT_TRUE(recordProbe(h, s, ProbeResult::Timeout, 0, 7));
  EXPECT_FALSE(h.up);
  EXPECT_EQ(h.lastCode, 0u);
  EXPECT_EQ(h.lastChangeMs, 7);
  EXPECT_FALSE(recordProbe(h, s, ProbeResult::Timeout, 0, 8));  // stays down, no change
  EXPECT_FALSE(recordProbe(h, s, ProbeResult::Ok, 501, 9));     // 1 of 2 successes
  EXPECT_FALSE(h.up);
  EXPECT_FALSE(recordProbe(h, s, ProbeResult::Error, 0, 10));   // resets the successes
  EXPECT_FALSE(recordProbe(h, s, ProbeResult::Ok, 200, 11));
  EXPECT_TRUE(recordProbe(h, s, ProbeResult::Ok, 200, 12));
  EXPECT_TRUE(h.up);
  EXPECT_EQ(h.lastChangeMs, 12);
}

class FakeRouting final : public RoutingClient {
 public:
  void routeCallAsync(v1::RouteCallRequest, RouteDone done) override {
    done(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "fake"), {});
  }
  void listTrunksAsync(ListTrunksDone done) override { lists.push_back(std::move(done)); }
  void reportTrunkHealthAsync(v1::TrunkHealthReport report, ReportDone done) override {
    reports.push_back(std::move(report));
    reportDones.push_back(std::move(done));
  }
  // Answers the oldest pending ListTrunks.
  void answerList(const std::vector<std::pair<std::string, bool>>& trunks,
                  grpc::Status status = grpc::Status::OK) {
    ASSERT_FALSE(lists.empty());
    v1::ListTrunksResponse r;
    std::uint32_t port = 5060;
    for (const auto& [name, up] : trunks) {
      auto* t = r.add_trunks();
      t->set_name(name);
      t->mutable_address()->set_host("127.0.0.11");
      t->mutable_address()->set_port(port++);
      t->mutable_address()->set_transport(v1::TRANSPORT_UDP);
      t->set_up(up);
      if (auto m = media.find(name); m != media.end()) *t->mutable_media() = m->second;
    }
    auto done = std::move(lists.front());
    lists.pop_front();
    done(status, r);
  }
  void answerReport(grpc::Status status = grpc::Status::OK) {
    ASSERT_FALSE(reportDones.empty());
    auto done = std::move(reportDones.front());
    reportDones.pop_front();
    done(status);
  }
  std::deque<ListTrunksDone> lists;
  std::map<std::string, v1::TrunkMedia> media;  // listed with the trunk of that name
  std::vector<v1::TrunkHealthReport> reports;
  std::deque<ReportDone> reportDones;
};

class FakeProber final : public OptionsProber {
 public:
  std::uint64_t probe(const v1::SocketAddress& address, Done done) override {
    if (failSend) return 0;
    std::uint64_t id = next++;
    outstanding[id] = {address.port(), std::move(done)};
    ++sent;
    return id;
  }
  void cancel(std::uint64_t handle) override {
    if (outstanding.erase(handle)) ++cancelled;
  }
  // Completes the outstanding probe to `port`; false when there is none.
  bool answer(std::uint32_t port, ProbeResult result, std::uint32_t code) {
    for (auto it = outstanding.begin(); it != outstanding.end(); ++it) {
      if (it->second.first == port) {
        auto done = std::move(it->second.second);
        outstanding.erase(it);
        done(result, code);
        return true;
      }
    }
    return false;
  }
  std::uint64_t next = 1;
  int sent = 0;
  int cancelled = 0;
  bool failSend = false;
  std::map<std::uint64_t, std::pair<std::uint32_t, Done>> outstanding;
};

double metric(prometheus::Registry& registry, const std::string& series) {
  std::string text = metrics::serialize(registry);
  auto pos = text.find("\n" + series + " ");
  if (pos == std::string::npos) return -1;
  pos += series.size() + 2;
  return std::stod(text.substr(pos, text.find('\n', pos) - pos));
}

class TrunkMonitorTest : public ::testing::Test {
 protected:
  TrunkMonitorTest()
      : metrics_(registry_),
        monitor_([this](std::function<void()> fn) { return run(std::move(fn)); }, routing_,
                 prober_, metrics_, "gw-test", KeepaliveSettings{200, 2, 1}, clock_) {}

  bool run(std::function<void()> fn) {
    fn();  // the fakes complete on the test's stack, as if already posted to the loop
    return true;
  }
  const v1::TrunkStatus* status(const std::string& name) {
    statuses_ = monitor_.statuses();
    for (const auto& s : statuses_) {
      if (s.name() == name) return &s;
    }
    return nullptr;
  }

  ManualClock clock_;
  prometheus::Registry registry_;
  GatewayMetrics metrics_;
  FakeRouting routing_;
  FakeProber prober_;
  TrunkMonitor monitor_;
  std::vector<v1::TrunkStatus> statuses_;
};

TEST_F(TrunkMonitorTest, ProbesEveryTrunkAndReportsChanges) {
  monitor_.runRound();
  ASSERT_EQ(routing_.lists.size(), 1u);
  routing_.answerList({{"a", true}, {"b", true}});
  EXPECT_EQ(prober_.sent, 2);
  EXPECT_TRUE(routing_.reports.empty());  // nothing probed yet: nothing to report
  ASSERT_NE(status("a"), nullptr);
  EXPECT_TRUE(status("a")->up());
  EXPECT_EQ(status("a")->address().host(), "127.0.0.11");
  EXPECT_EQ(metric(registry_, "medius_gateway_trunk_up{trunk=\"a\"}"), 1);

  // a answers 405 (alive), b answers nothing.
  EXPECT_TRUE(prober_.answer(5060, ProbeResult::Ok, 405));
  EXPECT_EQ(status("a")->last_options_code(), 405u);

  clock_.advanceMs(200);
  monitor_.runRound();  // b's probe timed out: failure 1 of 2
  EXPECT_EQ(prober_.cancelled, 1);
  EXPECT_EQ(metric(registry_, "medius_gateway_trunk_options_total{result=\"timeout\",trunk=\"b\"}"), 1);
  EXPECT_TRUE(status("b")->up());
  routing_.answerList({{"a", true}, {"b", true}});
  ASSERT_EQ(routing_.reports.size(), 1u);  // the periodic report: a and b probed once
  EXPECT_EQ(routing_.reports[0].gateway_id(), "gw-test");
  EXPECT_EQ(routing_.reports[0].trunks_size(), 2);
  routing_.answerReport();
  EXPECT_EQ(prober_.sent, 4);
  EXPECT_TRUE(prober_.answer(5060, ProbeResult::Ok, 200));
  EXPECT_TRUE(prober_.answer(5061, ProbeResult::Error, 0));  // failure 2: down, reported at once
  EXPECT_FALSE(status("b")->up());
  EXPECT_EQ(status("b")->last_change_ms(), clock_.nowMs());
  EXPECT_EQ(metric(registry_, "medius_gateway_trunk_up{trunk=\"b\"}"), 0);
  ASSERT_EQ(routing_.reports.size(), 2u);
  const auto& down = routing_.reports[1];
  ASSERT_EQ(down.trunks_size(), 2);
  EXPECT_EQ(down.trunks(1).trunk(), "b");
  EXPECT_FALSE(down.trunks(1).up());
  EXPECT_EQ(down.trunks(1).last_code(), 0u);
  EXPECT_TRUE(down.trunks(0).up());
  EXPECT_EQ(down.trunks(0).last_code(), 200u);
  routing_.answerReport();

  // b answers again: up after one success.
  monitor_.runRound();
  routing_.answerList({{"a", true}, {"b", true}});
  routing_.answerReport();
  EXPECT_TRUE(prober_.answer(5061, ProbeResult::Ok, 501));
  EXPECT_TRUE(status("b")->up());
  ASSERT_EQ(routing_.reports.size(), 4u);
  EXPECT_TRUE(routing_.reports.back().trunks(1).up());
  EXPECT_EQ(routing_.reports.back().trunks(1).last_code(), 501u);
  EXPECT_EQ(metric(registry_, "medius_gateway_trunk_options_total{result=\"ok\",trunk=\"b\"}"), 1);
  EXPECT_EQ(metric(registry_, "medius_gateway_trunk_options_total{result=\"error\",trunk=\"b\"}"), 1);
}

TEST_F(TrunkMonitorTest, NeverMoreThanOneProbePerTrunk) {
  monitor_.runRound();
  routing_.answerList({{"a", true}});
  EXPECT_EQ(prober_.outstanding.size(), 1u);
  monitor_.runRound();  // the unanswered probe is cancelled (a timeout) before anything else
  EXPECT_EQ(prober_.cancelled, 1);
  EXPECT_EQ(prober_.outstanding.size(), 0u);
  EXPECT_EQ(routing_.lists.size(), 1u);
  // ListTrunks stays unanswered through the next round: no second ListTrunks, the known
  // list is probed.
  monitor_.runRound();
  EXPECT_EQ(routing_.lists.size(), 1u);
  EXPECT_EQ(prober_.outstanding.size(), 1u);
  EXPECT_EQ(prober_.sent, 2);
  routing_.answerList({{"a", true}});  // probes again: a already has its probe
  EXPECT_EQ(prober_.outstanding.size(), 1u);
  EXPECT_EQ(prober_.sent, 2);
}

TEST_F(TrunkMonitorTest, ReportsAreSerializedAndCarryTheLatestStates) {
  monitor_.runRound();
  routing_.answerList({{"a", true}, {"b", true}});
  prober_.answer(5060, ProbeResult::Ok, 200);
  prober_.answer(5061, ProbeResult::Ok, 200);
  monitor_.runRound();
  routing_.answerList({{"a", true}, {"b", true}});  // periodic report, left in flight
  ASSERT_EQ(routing_.reports.size(), 1u);
  for (int i = 0; i < 2; ++i) {
    prober_.answer(5060, ProbeResult::Timeout, 0);
    prober_.answer(5061, ProbeResult::Timeout, 0);
    if (i == 0) {
      monitor_.runRound();
      routing_.answerList({{"a", true}, {"b", true}});
    }
  }
  // Both went down while the first report was in flight: nothing sent meanwhile...
  EXPECT_EQ(routing_.reports.size(), 1u);
  routing_.answerReport();
  // ... then one report with both states.
  ASSERT_EQ(routing_.reports.size(), 2u);
  EXPECT_FALSE(routing_.reports[1].trunks(0).up());
  EXPECT_FALSE(routing_.reports[1].trunks(1).up());
}

TEST_F(TrunkMonitorTest, RoutingDownKeepsTheLastListAndANewTrunkStartsAsRoutingSays) {
  monitor_.runRound();
  routing_.answerList({{"a", true}, {"b", false}});
  EXPECT_FALSE(status("b")->up());  // as listed by routing, until probes say otherwise
  prober_.answer(5060, ProbeResult::Ok, 200);
  prober_.answer(5061, ProbeResult::Ok, 200);  // one success: up
  EXPECT_TRUE(status("b")->up());
  monitor_.runRound();
  routing_.answerList({}, grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  EXPECT_EQ(monitor_.statuses().size(), 2u);  // kept
  EXPECT_EQ(prober_.outstanding.size(), 2u);  // and still probed
  // A trunk that leaves the configuration leaves the monitor and its metric series.
  monitor_.runRound();
  routing_.answerList({{"a", true}});
  EXPECT_EQ(monitor_.statuses().size(), 1u);
  EXPECT_EQ(metric(registry_, "medius_gateway_trunk_up{trunk=\"b\"}"), -1);
  EXPECT_EQ(metric(registry_, "medius_gateway_trunk_up{trunk=\"a\"}"), 1);
}

TEST_F(TrunkMonitorTest, KnowsEachTrunksMediaPolicyFromTheLatestList) {
  v1::TrunkMedia& a = routing_.media["a"];
  a.set_srtp(v1::SRTP_POLICY_OPTIONAL);
  a.add_codecs("G729");
  a.add_codecs("PCMU");
  monitor_.runRound();
  routing_.answerList({{"a", true}, {"b", true}});
  const TrunkLocator& locator = monitor_;
  v1::TrunkMedia listed = locator.media("a");
  EXPECT_EQ(listed.srtp(), v1::SRTP_POLICY_OPTIONAL);
  EXPECT_EQ(std::vector<std::string>(listed.codecs().begin(), listed.codecs().end()),
            (std::vector<std::string>{"G729", "PCMU"}));
  // Listed without media (an older routing), or unknown: empty, the worker's defaults.
  EXPECT_EQ(locator.media("b").srtp(), v1::SRTP_POLICY_UNSPECIFIED);
  EXPECT_EQ(locator.media("b").codecs_size(), 0);
  EXPECT_EQ(locator.media("c").srtp(), v1::SRTP_POLICY_UNSPECIFIED);
  // A reload in routing changes it with the next list.
  a.set_srtp(v1::SRTP_POLICY_REQUIRED);
  monitor_.runRound();
  routing_.answerList({{"a", true}, {"b", true}});
  EXPECT_EQ(locator.media("a").srtp(), v1::SRTP_POLICY_REQUIRED);
}

TEST_F(TrunkMonitorTest, AProbeThatCannotBeSentIsAnError) {
  prober_.failSend = true;
  monitor_.runRound();
  routing_.answerList({{"a", true}});
  EXPECT_EQ(metric(registry_, "medius_gateway_trunk_options_total{result=\"error\",trunk=\"a\"}"), 1);
  monitor_.runRound();
  routing_.answerList({{"a", true}});
  EXPECT_FALSE(status("a")->up());
}

TEST(GatewayConfigKeepalive, KeysAndDefaults) {
  auto doc = config::Document::parse(
      R"({"domain": "example.com", "routing": {"address": "127.0.0.1:6000", "timeout_ms": 300},
          "trunk_keepalive": {"interval_ms": 250, "failures_to_down": 3, "successes_to_up": 2}})",
      "gw.json");
  GatewayConfig c = loadConfig(doc);
  EXPECT_EQ(c.routingAddress, "127.0.0.1:6000");
  EXPECT_EQ(c.routingTimeoutMs, 300);
  EXPECT_EQ(c.keepaliveIntervalMs, 250);
  EXPECT_EQ(c.keepaliveFailuresToDown, 3);
  EXPECT_EQ(c.keepaliveSuccessesToUp, 2);
  GatewayConfig d = loadConfig(config::Document::parse(R"({"domain": "example.com"})", "gw.json"));
  EXPECT_EQ(d.routingTimeoutMs, 1000);
  EXPECT_EQ(d.keepaliveIntervalMs, 5000);
  EXPECT_EQ(d.keepaliveFailuresToDown, 2);
  EXPECT_EQ(d.keepaliveSuccessesToUp, 1);
  try {
    loadConfig(config::Document::parse(
        R"({"domain": "example.com", "trunk_keepalive": {"interval_ms": 5000, "probe": 1}})",
        "gw.json"));
    FAIL() << "unknown key accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("trunk_keepalive"), std::string::npos) << e.what();
  }
  EXPECT_THROW(loadConfig(config::Document::parse(
                   R"({"domain": "example.com", "trunk_keepalive": {"failures_to_down": 0}})",
                   "gw.json")),
               config::ConfigError);
}

}  // namespace
}  // namespace medius::gateway
