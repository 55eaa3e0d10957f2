#include "medius/gateway/flow_table.hpp"

#include <utility>

namespace medius::gateway {

std::string FlowKey::text() const {
  const char* name = transport == v1::TRANSPORT_TCP   ? "tcp"
                     : transport == v1::TRANSPORT_TLS ? "tls"
                     : transport == v1::TRANSPORT_WS  ? "ws"
                     : transport == v1::TRANSPORT_WSS ? "wss"
                                                      : "udp";
  bool ipv6 = host.find(':') != std::string::npos;
  return std::string(name) + ":" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool FlowTable::watched(const FlowKey& key, const v1::Flow& flow, bool direct) {
  if (!direct || key.host.empty() || key.port == 0) return false;
  if (key.reliable()) return true;
  return flow.nat() || flow.outbound();
}

bool FlowTable::registered(const FlowKey& key, const std::string& aor,
                           const std::string& contact, const v1::Flow& flow, bool bound,
                           std::int64_t nowMs) {
  auto it = flows_.find(key);
  if (!bound) {
    if (it == flows_.end()) return false;
    it->second.aors.erase(aor);
    if (it->second.aors.empty()) {
      flows_.erase(it);
      forgotten_.push_back(key);
    }
    return false;
  }
  bool fresh = it == flows_.end();
  Entry& e = flows_[key];
  if (fresh) e.registeredAtMs = nowMs;
  e.lastRegisterMs = nowMs;
  e.aors.insert(aor);
  if (!contact.empty()) e.contact = contact;
  e.nat = flow.nat();
  e.outbound = flow.outbound();
  e.flowTimerSeconds = flow.flow_timer_seconds();
  if (e.state != v1::Flow::STATE_ACTIVE) e.stateChangedMs = nowMs;
  e.state = v1::Flow::STATE_ACTIVE;
  e.reason.clear();
  e.lastHeardMs = nowMs;
  return fresh;
}

std::vector<FlowReport> FlowTable::reportsOf(const FlowKey& key, const Entry& e) const {
  std::vector<FlowReport> out;
  for (const auto& aor : e.aors) out.push_back(FlowReport{key, aor, e.state, e.reason, e.lastHeardMs});
  return out;
}

std::vector<FlowReport> FlowTable::heard(const FlowKey& key, std::int64_t nowMs) {
  auto it = flows_.find(key);
  if (it == flows_.end()) return {};
  Entry& e = it->second;
  if (nowMs > e.lastHeardMs) e.lastHeardMs = nowMs;
  // A closed connection never comes back: a new one is a new flow.
  if (e.state == v1::Flow::STATE_UNREACHABLE && !key.reliable()) {
    e.state = v1::Flow::STATE_ACTIVE;
    e.reason.clear();
    e.stateChangedMs = nowMs;
    return reportsOf(key, e);
  }
  return {};
}

std::vector<FlowReport> FlowTable::markUnreachable(const FlowKey& key, Entry& e,
                                                   std::int64_t nowMs, const std::string& reason) {
  if (e.state == v1::Flow::STATE_UNREACHABLE) return {};
  e.state = v1::Flow::STATE_UNREACHABLE;
  e.reason = reason;
  e.stateChangedMs = nowMs;
  return reportsOf(key, e);
}

std::vector<FlowReport> FlowTable::closed(const FlowKey& key, std::int64_t nowMs,
                                          const std::string& reason) {
  auto it = flows_.find(key);
  if (it == flows_.end()) return {};
  return markUnreachable(key, it->second, nowMs, reason);
}

std::vector<FlowPing> FlowTable::duePings(std::int64_t nowMs) {
  std::vector<FlowPing> out;
  for (auto& [key, e] : flows_) {
    if (key.reliable() || e.state != v1::Flow::STATE_ACTIVE) continue;
    if (nowMs - e.lastHeardMs < settings_.pingIntervalMs) continue;
    if (nowMs - e.lastPingMs < settings_.pingIntervalMs) continue;
    e.lastPingMs = nowMs;
    out.push_back(FlowPing{key, e.contact});
  }
  return out;
}

std::vector<FlowReport> FlowTable::expire(std::int64_t nowMs) {
  std::vector<FlowReport> out;
  for (auto it = flows_.begin(); it != flows_.end();) {
    Entry& e = it->second;
    bool stale = nowMs - e.lastRegisterMs >= settings_.registrationLifetimeMs;
    if (stale || e.state == v1::Flow::STATE_UNREACHABLE) {
      if (stale || nowMs - e.stateChangedMs >= settings_.forgetAfterMs) {
        forgotten_.push_back(it->first);
        it = flows_.erase(it);
        continue;
      }
    } else if (!it->first.reliable() && nowMs - e.lastHeardMs >= settings_.udpTimeoutMs) {
      auto reports = markUnreachable(it->first, e, nowMs, "keepalive timeout");
      out.insert(out.end(), reports.begin(), reports.end());
    }
    ++it;
  }
  return out;
}

std::vector<FlowKey> FlowTable::forgotten() { return std::exchange(forgotten_, {}); }

std::vector<FlowView> FlowTable::view() const {
  std::vector<FlowView> out;
  for (const auto& [key, e] : flows_) {
    out.push_back(FlowView{key, std::vector<std::string>(e.aors.begin(), e.aors.end()), e.nat,
                           e.outbound, e.flowTimerSeconds, e.state, e.reason, e.lastHeardMs,
                           e.registeredAtMs});
  }
  return out;
}

std::size_t FlowTable::activeCount() const {
  std::size_t n = 0;
  for (const auto& [key, e] : flows_) n += e.state == v1::Flow::STATE_ACTIVE ? 1 : 0;
  return n;
}

std::size_t FlowTable::unreachableCount() const { return flows_.size() - activeCount(); }

std::vector<FlowKey> FlowTable::streamKeys() const {
  std::vector<FlowKey> out;
  for (const auto& [key, e] : flows_) {
    if (key.reliable() && e.state == v1::Flow::STATE_ACTIVE) out.push_back(key);
  }
  return out;
}

}  // namespace medius::gateway
