// TrunkMonitor: OPTIONS keepalive to every trunk, health reported to routing.
//
// Every interval_ms a round starts:
//   1. a probe still unanswered from the previous round is cancelled and counts as a
//      timeout (so the probe timeout is the interval, never more than one OPTIONS per
//      trunk is outstanding, and nta's 32 s transaction timer never makes probes pile up);
//   2. the trunk list is refreshed with Routing.ListTrunks (name, address, transport, call
//      limit, media policy).
//      When routing fails, the last list is kept; the error is counted and logged once per
//      transition (down / reachable again);
//   3. the current states are reported (ReportTrunkHealth, trunks probed at least once);
//   4. an OPTIONS goes to every trunk (OptionsProber, the Gateway's trunk side).
// Any final response from the trunk is a success (404/405/501 too: the peer is alive); a
// timeout or a transport error (nta's locally made 408/503) is a failure. A trunk goes
// down after failures_to_down consecutive failures and up after successes_to_up
// consecutive successes; a trunk first seen starts in the state routing lists for it.
// Each change is reported to routing at once (one report in flight at a time; every
// report carries all states, so a late report never undoes a newer one).
//
// Thread: construct, use and destroy on the SIP loop (the Post function must run its
// argument there, later). statuses() is safe from any thread (admin ListTrunkStatus).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sofia-sip/su_wait.h>

#include "medius/common/clock.hpp"
#include "medius/gateway/metrics.hpp"
#include "medius/gateway/routing_client.hpp"
#include "medius/gateway/trunk_locator.hpp"
#include "medius/v1/gateway.pb.h"

namespace medius::gateway {

enum class ProbeResult { Ok, Timeout, Error };
std::string_view probeResultLabel(ProbeResult result);

struct KeepaliveSettings {
  std::int64_t intervalMs = 5000;
  std::int64_t failuresToDown = 2;
  std::int64_t successesToUp = 1;
};

// Health of one trunk as the monitor sees it.
struct TrunkHealthState {
  bool up = true;
  bool probed = false;         // at least one result recorded
  std::uint32_t lastCode = 0;  // last final response code, 0 after a timeout/error
  std::int64_t lastChangeMs = 0;
  std::int64_t failures = 0;   // consecutive
  std::int64_t successes = 0;  // consecutive
};

// The state machine: records one probe result; true when `up` changed.
bool recordProbe(TrunkHealthState& state, const KeepaliveSettings& settings, ProbeResult result,
                 std::uint32_t code, std::int64_t nowMs);

// Sends out-of-dialog OPTIONS. Loop thread only.
class OptionsProber {
 public:
  // code: the final status (0 for Timeout/Error).
  using Done = std::function<void(ProbeResult result, std::uint32_t code)>;
  virtual ~OptionsProber() = default;
  // Returns a handle (non-zero), or 0 when nothing could be sent (done is then never
  // called). `done` runs later on the loop, never inside probe(), at most once.
  virtual std::uint64_t probe(const v1::SocketAddress& address, Done done) = 0;
  // Forgets a probe: its done is never called afterwards. Unknown handles are ignored.
  virtual void cancel(std::uint64_t handle) = 0;
};

class TrunkMonitor final : public TrunkLocator {
 public:
  using Post = std::function<bool(std::function<void()>)>;

  // All references must outlive the monitor.
  TrunkMonitor(Post post, RoutingClient& routing, OptionsProber& prober, GatewayMetrics& metrics,
               std::string gatewayId, KeepaliveSettings settings,
               const Clock& clock = SystemClock::instance());
  // Cancels outstanding probes and the timer; late gRPC completions are dropped.
  ~TrunkMonitor() override;
  TrunkMonitor(const TrunkMonitor&) = delete;
  TrunkMonitor& operator=(const TrunkMonitor&) = delete;

  // Starts the rounds on `root` (the first right away, then every interval).
  void start(su_root_t* root);
  // One round (what the timer does); public so tests drive the monitor without a timer.
  void runRound();

  // The monitor's view, sorted by name. Any thread.
  std::vector<v1::TrunkStatus> statuses() const;

  // TrunkLocator (loop thread): the trunk at this source address, from the last list.
  std::string trunkAt(const std::string& host, std::uint32_t port) const override;
  std::uint32_t maxCalls(const std::string& trunk) const override;
  v1::TrunkMedia media(const std::string& trunk) const override;
  bool trusted(const std::string& trunk) const override;
  std::optional<std::string> tlsName(const std::string& trunk) const override;

 private:
  struct Trunk {
    std::string name;
    v1::SocketAddress address;
    std::uint32_t maxCalls = 0;  // routing's max_concurrent_calls (0: no limit)
    v1::TrunkMedia media;        // routing's srtp and codecs of the trunk
    bool trusted = false;        // routing's "trusted" (P-Asserted-Identity toward it)
    std::string tlsName;         // a TLS trunk's pinned certificate name; "" otherwise
    TrunkHealthState health;
    std::uint64_t probe = 0;  // outstanding probe handle, 0 when none
  };

  static void onTimer(su_root_magic_t* magic, su_timer_t* timer, su_timer_arg_t* arg) noexcept;
  void onTrunkList(const grpc::Status& status, const v1::ListTrunksResponse& response);
  void probeAll();
  void onProbeDone(const std::string& name, std::uint64_t handle, ProbeResult result,
                   std::uint32_t code);
  void record(Trunk& trunk, ProbeResult result, std::uint32_t code);
  void sendReport();
  void onReportDone(const grpc::Status& status);
  void publish();

  Post post_;
  RoutingClient& routing_;
  OptionsProber& prober_;
  GatewayMetrics& metrics_;
  std::string gatewayId_;
  KeepaliveSettings settings_;
  const Clock& clock_;
  su_timer_t* timer_ = nullptr;
  std::map<std::string, Trunk, std::less<>> trunks_;
  bool listInFlight_ = false;
  bool routingDown_ = false;
  bool reportInFlight_ = false;
  bool reportAgain_ = false;  // a change happened while a report was in flight
  bool reportFailing_ = false;
  mutable std::mutex statusMutex_;
  std::vector<v1::TrunkStatus> statuses_;  // guarded by statusMutex_
  // Completions hold a weak_ptr: one arriving after the monitor is gone finds it expired
  // (checked and used on the loop thread only).
  std::shared_ptr<TrunkMonitor*> self_;
};

}  // namespace medius::gateway
