#include "medius/gateway/trunk_monitor.hpp"

#include <stdexcept>

#include "medius/common/logging.hpp"

namespace medius::gateway {

namespace {

// A TLS trunk's pinned certificate name: routing's tls_name, else its address's host.
std::string pinnedName(const v1::TrunkInfo& info) {
  if (info.address().transport() != v1::TRANSPORT_TLS) return {};
  return info.tls_name().empty() ? info.address().host() : info.tls_name();
}

std::string addressText(const v1::SocketAddress& a) {
  return a.host() + ":" + std::to_string(a.port());
}

bool sameAddress(const v1::SocketAddress& a, const v1::SocketAddress& b) {
  return a.host() == b.host() && a.port() == b.port() && a.transport() == b.transport();
}

}  // namespace

std::string_view probeResultLabel(ProbeResult result) {
  switch (result) {
    case ProbeResult::Ok: return "ok";
    case ProbeResult::Timeout: return "timeout";
    case ProbeResult::Error: return "error";
  }
  return "error";
}

bool recordProbe(TrunkHealthState& state, const KeepaliveSettings& settings, ProbeResult result,
                 std::uint32_t code, std::int64_t nowMs) {
  state.probed = true;
  bool before = state.up;
  if (result == ProbeResult::Ok) {
    state.lastCode = code;
    state.failures = 0;
    ++state.successes;
    if (!state.up && state.successes >= settings.successesToUp) state.up = true;
  } else {
    state.lastCode = 0;
    state.successes = 0;
    ++state.failures;
    if (state.up && state.failures >= settings.failuresToDown) state.up = false;
  }
  if (state.up != before) state.lastChangeMs = nowMs;
  return state.up != before;
}

TrunkMonitor::TrunkMonitor(Post post, RoutingClient& routing, OptionsProber& prober,
                           GatewayMetrics& metrics, std::string gatewayId,
                           KeepaliveSettings settings, const Clock& clock)
    : post_(std::move(post)),
      routing_(routing),
      prober_(prober),
      metrics_(metrics),
      gatewayId_(std::move(gatewayId)),
      settings_(settings),
      clock_(clock),
      self_(std::make_shared<TrunkMonitor*>(this)) {}

TrunkMonitor::~TrunkMonitor() {
  self_.reset();
  if (timer_) su_timer_destroy(timer_);
  for (auto& [name, trunk] : trunks_) {
    if (trunk.probe) prober_.cancel(trunk.probe);
  }
}

void TrunkMonitor::start(su_root_t* root) {
  timer_ = su_timer_create(su_root_task(root), static_cast<su_duration_t>(settings_.intervalMs));
  if (!timer_) throw std::runtime_error("cannot create the trunk keepalive timer");
  if (su_timer_set_for_ever(timer_, &TrunkMonitor::onTimer,
                            reinterpret_cast<su_timer_arg_t*>(this)) < 0) {
    throw std::runtime_error("cannot start the trunk keepalive timer");
  }
  std::weak_ptr<TrunkMonitor*> weak = self_;
  post_([weak] {
    if (auto self = weak.lock()) (*self)->runRound();
  });
}

void TrunkMonitor::onTimer(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) noexcept {
  try {
    reinterpret_cast<TrunkMonitor*>(arg)->runRound();
  } catch (const std::exception& e) {
    log::get("trunks")->error("keepalive round failed: {}", e.what());
  }
}

void TrunkMonitor::runRound() {
  // A probe left from the previous round timed out (the interval is the probe timeout).
  for (auto& [name, trunk] : trunks_) {
    if (!trunk.probe) continue;
    prober_.cancel(trunk.probe);
    trunk.probe = 0;
    record(trunk, ProbeResult::Timeout, 0);
  }
  if (listInFlight_) {
    // The previous ListTrunks is still within its deadline: probe the known list.
    probeAll();
    return;
  }
  listInFlight_ = true;
  std::weak_ptr<TrunkMonitor*> weak = self_;
  Post post = post_;
  routing_.listTrunksAsync([weak, post](const grpc::Status& status, v1::ListTrunksResponse r) {
    post([weak, status, r = std::move(r)] {
      if (auto self = weak.lock()) (*self)->onTrunkList(status, r);
    });
  });
}

void TrunkMonitor::onTrunkList(const grpc::Status& status, const v1::ListTrunksResponse& response) {
  listInFlight_ = false;
  auto logger = log::get("trunks");
  if (!status.ok()) {
    if (!routingDown_) {
      logger->warn("routing ListTrunks failed ({} {}): keeping the last list of {} trunk(s)",
                   grpcCodeName(status.error_code()), status.error_message(), trunks_.size());
      routingDown_ = true;
    }
  } else {
    if (routingDown_) {
      logger->info("routing ListTrunks answers again");
      routingDown_ = false;
    }
    std::map<std::string, const v1::TrunkInfo*, std::less<>> listed;
    for (const auto& info : response.trunks()) {
      if (!info.name().empty() && info.has_address()) listed[info.name()] = &info;
    }
    for (auto it = trunks_.begin(); it != trunks_.end();) {
      if (listed.count(it->first)) {
        ++it;
        continue;
      }
      logger->info("trunk {} left the routing configuration", it->first);
      if (it->second.probe) prober_.cancel(it->second.probe);
      metrics_.removeTrunk(it->first);
      it = trunks_.erase(it);
    }
    for (const auto& [name, info] : listed) {
      auto it = trunks_.find(name);
      if (it != trunks_.end()) {
        it->second.maxCalls = info->max_concurrent_calls();
        it->second.media = info->media();
        it->second.trusted = info->trusted();
        it->second.tlsName = pinnedName(*info);
      }
      if (it == trunks_.end()) {
        Trunk trunk;
        trunk.name = name;
        trunk.maxCalls = info->max_concurrent_calls();
        trunk.media = info->media();
        trunk.trusted = info->trusted();
        trunk.tlsName = pinnedName(*info);
        trunk.address = info->address();
        trunk.health.up = info->up();
        trunk.health.lastChangeMs = clock_.nowMs();
        logger->info("trunk {} at {} ({} in routing): OPTIONS every {} ms", name,
                     addressText(trunk.address), trunk.health.up ? "up" : "down",
                     settings_.intervalMs);
        metrics_.setTrunkUp(name, trunk.health.up);
        trunks_.emplace(name, std::move(trunk));
      } else if (!sameAddress(it->second.address, info->address())) {
        logger->info("trunk {} moved to {}", name, addressText(info->address()));
        if (it->second.probe) prober_.cancel(it->second.probe);
        it->second.probe = 0;
        it->second.address = info->address();
        it->second.health.failures = 0;
        it->second.health.successes = 0;
      }
    }
  }
  publish();
  sendReport();  // the periodic report of every state
  probeAll();
}

void TrunkMonitor::probeAll() {
  std::weak_ptr<TrunkMonitor*> weak = self_;
  for (auto& [name, trunk] : trunks_) {
    if (trunk.probe) continue;  // never more than one outstanding OPTIONS per trunk
    std::string trunkName = name;
    auto handle = std::make_shared<std::uint64_t>(0);
    trunk.probe = prober_.probe(trunk.address,
                                [weak, trunkName, handle](ProbeResult result, std::uint32_t code) {
                                  if (auto self = weak.lock()) {
                                    (*self)->onProbeDone(trunkName, *handle, result, code);
                                  }
                                });
    *handle = trunk.probe;
    if (!trunk.probe) record(trunk, ProbeResult::Error, 0);
  }
}

void TrunkMonitor::onProbeDone(const std::string& name, std::uint64_t handle, ProbeResult result,
                               std::uint32_t code) {
  auto it = trunks_.find(name);
  if (it == trunks_.end() || it->second.probe != handle || handle == 0) return;  // stale
  it->second.probe = 0;
  record(it->second, result, code);
}

void TrunkMonitor::record(Trunk& trunk, ProbeResult result, std::uint32_t code) {
  metrics_.countTrunkOptions(trunk.name, probeResultLabel(result));
  bool changed = recordProbe(trunk.health, settings_, result, code, clock_.nowMs());
  if (result != ProbeResult::Ok) {
    log::get("trunks")->debug("trunk {}: OPTIONS {}", trunk.name, probeResultLabel(result));
  }
  if (!changed) {
    publish();
    return;
  }
  log::get("trunks")->warn("trunk {} at {} is {} (last OPTIONS: {})", trunk.name,
                           addressText(trunk.address), trunk.health.up ? "up" : "down",
                           code ? std::to_string(code) : std::string(probeResultLabel(result)));
  metrics_.setTrunkUp(trunk.name, trunk.health.up);
  publish();
  sendReport();
}

void TrunkMonitor::sendReport() {
  if (reportInFlight_) {
    reportAgain_ = true;
    return;
  }
  v1::TrunkHealthReport report;
  report.set_gateway_id(gatewayId_);
  for (const auto& [name, trunk] : trunks_) {
    if (!trunk.health.probed) continue;  // nothing to tell routing yet
    auto* entry = report.add_trunks();
    entry->set_trunk(name);
    entry->set_up(trunk.health.up);
    entry->set_last_code(trunk.health.lastCode);
  }
  if (report.trunks().empty()) return;
  reportInFlight_ = true;
  reportAgain_ = false;
  std::weak_ptr<TrunkMonitor*> weak = self_;
  Post post = post_;
  routing_.reportTrunkHealthAsync(std::move(report), [weak, post](const grpc::Status& status) {
    post([weak, status] {
      if (auto self = weak.lock()) (*self)->onReportDone(status);
    });
  });
}

void TrunkMonitor::onReportDone(const grpc::Status& status) {
  reportInFlight_ = false;
  if (!status.ok()) {
    if (!reportFailing_) {
      log::get("trunks")->warn("routing ReportTrunkHealth failed ({} {}): retried every round",
                               grpcCodeName(status.error_code()), status.error_message());
      reportFailing_ = true;
    }
    return;  // the next round reports every state again
  }
  if (reportFailing_) {
    log::get("trunks")->info("routing ReportTrunkHealth succeeds again");
    reportFailing_ = false;
  }
  if (reportAgain_) sendReport();
}

void TrunkMonitor::publish() {
  std::vector<v1::TrunkStatus> out;
  out.reserve(trunks_.size());
  for (const auto& [name, trunk] : trunks_) {
    v1::TrunkStatus s;
    s.set_name(name);
    *s.mutable_address() = trunk.address;
    s.set_up(trunk.health.up);
    s.set_last_options_code(trunk.health.lastCode);
    s.set_last_change_ms(trunk.health.lastChangeMs);
    out.push_back(std::move(s));
  }
  std::lock_guard lock(statusMutex_);
  statuses_ = std::move(out);
}

std::vector<v1::TrunkStatus> TrunkMonitor::statuses() const {
  std::lock_guard lock(statusMutex_);
  return statuses_;
}

std::string TrunkMonitor::trunkAt(const std::string& host, std::uint32_t port) const {
  // By host; when several trunks share the host, the port decides.
  const Trunk* byHost = nullptr;
  int sameHost = 0;
  for (const auto& [name, trunk] : trunks_) {
    if (trunk.address.host() != host) continue;
    if (trunk.address.port() == port) return name;
    byHost = &trunk;
    ++sameHost;
  }
  return sameHost == 1 ? byHost->name : std::string();
}

std::uint32_t TrunkMonitor::maxCalls(const std::string& trunk) const {
  auto it = trunks_.find(trunk);
  return it == trunks_.end() ? 0 : it->second.maxCalls;
}

v1::TrunkMedia TrunkMonitor::media(const std::string& trunk) const {
  auto it = trunks_.find(trunk);
  return it == trunks_.end() ? v1::TrunkMedia() : it->second.media;
}

std::optional<std::string> TrunkMonitor::tlsName(const std::string& trunk) const {
  auto it = trunks_.find(trunk);
  if (it == trunks_.end() || it->second.tlsName.empty()) return std::nullopt;
  return it->second.tlsName;
}

bool TrunkMonitor::trusted(const std::string& trunk) const {
  auto it = trunks_.find(trunk);
  return it != trunks_.end() && it->second.trusted;
}

}  // namespace medius::gateway
