// Flows of registered clients (issue 10, RFC 5626 section 3.2): which source address and
// transport a client registered over, whether it is alive, and when it dies.
//
// A flow is watched when a client REGISTERed straight to this gateway (no Path: behind an
// edge proxy the proxy holds the flow) and either
// - over TCP/TLS: it dies when its connection closes (the gateway polls the connection);
// - over UDP from behind a NAT (a Contact address that is not the source) or with RFC 5626
//   outbound: the gateway pings it (OPTIONS over the flow, which also keeps the NAT's
//   mapping open) when nothing was heard for ping_interval; it dies when nothing (request,
//   answer to a ping) was heard for udp_timeout.
// Clients on the gateway's own network over UDP are not watched.
//
// A flow that dies produces one UNREACHABLE report per AOR it carries (the gateway sends
// them to the registrar: ReportFlow); one heard from again while unreachable produces
// ACTIVE reports. A REGISTER over the flow makes it active again without a report (the
// registrar does that itself). Pure logic on a clock value: no sockets, no loop.
//
// Thread: not thread-safe; the gateway uses it on the SIP loop only.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "medius/v1/registrar.pb.h"

namespace medius::gateway {

struct FlowKey {
  v1::Transport transport = v1::TRANSPORT_UNSPECIFIED;
  std::string host;
  std::uint32_t port = 0;

  auto operator<=>(const FlowKey&) const = default;
  bool reliable() const { return transport != v1::TRANSPORT_UDP; }
  // "udp:203.0.113.7:40112".
  std::string text() const;
};

struct FlowSettings {
  // Flow-Timer in the 200 to an RFC 5626 REGISTER (outbound.flow_timer_seconds); 0 turns
  // outbound off (no Require: outbound, the flow is then treated as a NAT flow).
  std::uint32_t flowTimerSeconds = 120;
  // An OPTIONS ping to a watched UDP flow when nothing was heard for this long.
  std::int64_t pingIntervalMs = 15000;
  // A watched UDP flow is unreachable when nothing was heard for this long.
  std::int64_t udpTimeoutMs = 60000;
  // An unreachable flow is forgotten after this long (its bindings expire anyway).
  std::int64_t forgetAfterMs = 600000;
  // A flow no REGISTER came over for this long is forgotten: its bindings have expired
  // (the registrar's expiry.max_seconds is at most this).
  std::int64_t registrationLifetimeMs = 86400000;
};

struct FlowReport {
  FlowKey key;
  std::string aor;
  v1::Flow::State state = v1::Flow::STATE_UNSPECIFIED;
  std::string reason;
  std::int64_t lastHeardMs = 0;
};

// An OPTIONS ping due: to `contact` (a Contact registered over the flow), sent over `key`.
struct FlowPing {
  FlowKey key;
  std::string contact;
};

struct FlowView {
  FlowKey key;
  std::vector<std::string> aors;
  bool nat = false;
  bool outbound = false;
  std::uint32_t flowTimerSeconds = 0;
  v1::Flow::State state = v1::Flow::STATE_ACTIVE;
  std::string reason;
  std::int64_t lastHeardMs = 0;
  std::int64_t registeredAtMs = 0;
};

class FlowTable {
 public:
  explicit FlowTable(FlowSettings settings) : settings_(settings) {}

  const FlowSettings& settings() const { return settings_; }

  // Whether a REGISTER over `key` with this classification is watched (see above).
  static bool watched(const FlowKey& key, const v1::Flow& flow, bool direct);

  // A REGISTER of `aor` over `key` was accepted. bound: the AOR still has a binding on this
  // flow (false after an un-REGISTER: the AOR leaves the flow; a flow without AORs is
  // forgotten, and forgotten() says so to the caller). Returns true when the flow is new.
  // contact: a Contact URI of the REGISTER (the Request-URI of the flow's pings).
  bool registered(const FlowKey& key, const std::string& aor, const std::string& contact,
                  const v1::Flow& flow, bool bound, std::int64_t nowMs);
  // Something arrived over the flow (a request, an answer to a ping). Unknown keys are
  // ignored. ACTIVE reports when it was unreachable.
  std::vector<FlowReport> heard(const FlowKey& key, std::int64_t nowMs);
  // The flow's connection closed: UNREACHABLE reports (none when already unreachable).
  std::vector<FlowReport> closed(const FlowKey& key, std::int64_t nowMs,
                                 const std::string& reason = "connection closed");
  // Watched UDP flows to ping now (each at most once per ping interval).
  std::vector<FlowPing> duePings(std::int64_t nowMs);
  // UDP flows silent for udp_timeout become unreachable (their reports); flows unreachable
  // for forget_after, or not registered over for registration_lifetime, are dropped
  // (listed by forgotten()).
  std::vector<FlowReport> expire(std::int64_t nowMs);
  // Keys dropped since the last call (the caller releases what it holds for them).
  std::vector<FlowKey> forgotten();

  bool contains(const FlowKey& key) const { return flows_.contains(key); }
  std::vector<FlowView> view() const;
  std::size_t activeCount() const;
  std::size_t unreachableCount() const;
  // Stream flows (the caller polls their connections).
  std::vector<FlowKey> streamKeys() const;

 private:
  struct Entry {
    std::set<std::string> aors;
    std::string contact;
    bool nat = false;
    bool outbound = false;
    std::uint32_t flowTimerSeconds = 0;
    v1::Flow::State state = v1::Flow::STATE_ACTIVE;
    std::string reason;
    std::int64_t lastHeardMs = 0;
    std::int64_t lastPingMs = 0;
    std::int64_t registeredAtMs = 0;
    std::int64_t lastRegisterMs = 0;
    std::int64_t stateChangedMs = 0;
  };
  std::vector<FlowReport> reportsOf(const FlowKey& key, const Entry& e) const;
  std::vector<FlowReport> markUnreachable(const FlowKey& key, Entry& e, std::int64_t nowMs,
                                          const std::string& reason);

  FlowSettings settings_;
  std::map<FlowKey, Entry> flows_;
  std::vector<FlowKey> forgotten_;
};

}  // namespace medius::gateway
