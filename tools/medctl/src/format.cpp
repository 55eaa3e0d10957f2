#include "medius/medctl/format.hpp"

#include <algorithm>
#include <array>
#include <set>
#include <sstream>

namespace medius::medctl {

namespace {

std::string orDash(const std::string& value) { return value.empty() ? "-" : value; }

std::set<std::string> distinctAors(const std::vector<medius::v1::Binding>& bindings) {
  std::set<std::string> aors;
  for (const auto& b : bindings) aors.insert(b.aor());
  return aors;
}

std::string totalLine(const std::vector<medius::v1::Binding>& bindings) {
  const auto aors = distinctAors(bindings).size();
  std::ostringstream out;
  out << bindings.size() << (bindings.size() == 1 ? " binding, " : " bindings, ") << aors
      << (aors == 1 ? " AOR" : " AORs") << '\n';
  return out.str();
}

}  // namespace

std::string transportName(medius::v1::Transport transport) {
  switch (transport) {
    case medius::v1::TRANSPORT_UDP: return "udp";
    case medius::v1::TRANSPORT_TCP: return "tcp";
    case medius::v1::TRANSPORT_TLS: return "tls";
    case medius::v1::TRANSPORT_WS: return "ws";
    case medius::v1::TRANSPORT_WSS: return "wss";
    case medius::v1::TRANSPORT_UNSPECIFIED:
    default: return "?";
  }
}

namespace {

// Rows as columns two blanks apart; the last column is not padded (no trailing blanks).
template <std::size_t N>
std::string alignedColumns(const std::vector<std::array<std::string, N>>& rows) {
  std::array<std::size_t, N> width{};
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < N; ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < N; ++i) {
      line += row[i];
      if (i + 1 < N) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + '\n';
  }
  return out;
}

}  // namespace

std::string formatSource(const medius::v1::SocketAddress& address) {
  if (address.host().empty()) return "-";
  std::string host = address.host();
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return host + ":" + std::to_string(address.port()) + "/" + transportName(address.transport());
}

std::string formatBindingsTable(const std::vector<medius::v1::Binding>& bindings) {
  if (bindings.empty()) return "no bindings\n" + totalLine(bindings);
  constexpr std::size_t kColumns = 6;
  using Row = std::array<std::string, kColumns>;
  std::vector<Row> rows;
  rows.push_back({"AOR", "CONTACT", "EXPIRES(s)", "SOURCE", "USER-AGENT", "INSTANCE"});
  for (const auto& b : bindings) {
    rows.push_back({b.aor(), b.contact_uri(), std::to_string(b.expires_in()),
                    formatSource(b.received()), orDash(b.user_agent()), orDash(b.instance_id())});
  }
  return alignedColumns(rows) + totalLine(bindings);
}

nlohmann::json bindingToJson(const medius::v1::Binding& b) {
  nlohmann::json path = nlohmann::json::array();
  for (const auto& p : b.path()) path.push_back(p);
  return nlohmann::json{
      {"aor", b.aor()},
      {"contact", b.contact_uri()},
      {"expires_in", b.expires_in()},
      {"expires_at_ms", b.expires_at_ms()},
      {"q", static_cast<double>(b.q_millis()) / 1000.0},
      {"instance_id", b.instance_id()},
      {"reg_id", b.reg_id()},
      {"path", path},
      {"user_agent", b.user_agent()},
      {"source",
       {{"host", b.received().host()},
        {"port", b.received().port()},
        {"transport", transportName(b.received().transport())}}},
      {"call_id", b.call_id()},
      {"cseq", b.cseq()},
      {"gateway_id", b.gateway_id()},
      {"created_at_ms", b.created_at_ms()},
      {"updated_at_ms", b.updated_at_ms()},
      {"flow", flowToJson(b.flow())},
  };
}

std::string flowStateName(medius::v1::Flow::State state) {
  switch (state) {
    case medius::v1::Flow::STATE_ACTIVE: return "active";
    case medius::v1::Flow::STATE_UNREACHABLE: return "unreachable";
    default: return "unknown";
  }
}

nlohmann::json flowToJson(const medius::v1::Flow& f) {
  return nlohmann::json{{"state", flowStateName(f.state())},
                        {"nat", f.nat()},
                        {"outbound", f.outbound()},
                        {"flow_timer_s", f.flow_timer_seconds()},
                        {"last_keepalive_ms", f.last_keepalive_ms()},
                        {"reason", f.reason()},
                        {"state_changed_at_ms", f.state_changed_at_ms()}};
}

std::string formatFlowsTable(const std::vector<medius::v1::Binding>& bindings, std::int64_t nowMs) {
  if (bindings.empty()) return "no flows\n";
  constexpr std::size_t kColumns = 8;
  using Row = std::array<std::string, kColumns>;
  std::vector<Row> rows;
  rows.push_back({"AOR", "FLOW", "GATEWAY", "NAT", "OUTBOUND", "STATE", "KEEPALIVE-AGE(s)",
                  "REASON"});
  std::size_t nat = 0, unreachable = 0;
  for (const auto& b : bindings) {
    const auto& f = b.flow();
    nat += f.nat() ? 1 : 0;
    unreachable += f.state() == medius::v1::Flow::STATE_UNREACHABLE ? 1 : 0;
    std::string age = "-";
    if (f.last_keepalive_ms() > 0) {
      age = std::to_string(std::max<std::int64_t>(0, nowMs - f.last_keepalive_ms()) / 1000);
    }
    std::string flow = formatSource(b.received());
    if (b.path_size() > 0) flow = "path " + b.path(0);
    rows.push_back({b.aor(), flow, orDash(b.gateway_id()), f.nat() ? "yes" : "no",
                    f.outbound() ? "yes" : "no", flowStateName(f.state()), age,
                    orDash(f.reason())});
  }
  return alignedColumns(rows) + std::to_string(bindings.size()) + " flow(s) of binding(s), " + std::to_string(nat) +
         " behind NAT, " + std::to_string(unreachable) + " unreachable\n";
}

std::string formatBindingsJson(const std::vector<medius::v1::Binding>& bindings) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& b : bindings) list.push_back(bindingToJson(b));
  nlohmann::json doc{{"bindings", list},
                     {"total", bindings.size()},
                     {"aors", distinctAors(bindings).size()}};
  return doc.dump(2) + '\n';
}

std::string eventKindName(medius::v1::BindingEvent::Kind kind) {
  switch (kind) {
    case medius::v1::BindingEvent::KIND_ADDED: return "added";
    case medius::v1::BindingEvent::KIND_REFRESHED: return "refreshed";
    case medius::v1::BindingEvent::KIND_REMOVED: return "removed";
    case medius::v1::BindingEvent::KIND_EXPIRED: return "expired";
    case medius::v1::BindingEvent::KIND_SNAPSHOT_END: return "snapshot-end";
    default: return "unknown";
  }
}

std::string formatEventLine(const medius::v1::BindingEvent& event) {
  const std::string kind = eventKindName(event.kind());
  if (event.kind() == medius::v1::BindingEvent::KIND_SNAPSHOT_END || !event.has_binding()) {
    return kind + '\n';
  }
  const auto& b = event.binding();
  std::ostringstream out;
  out << kind << ' ' << b.aor() << ' ' << b.contact_uri() << " expires=" << b.expires_in()
      << "s source=" << formatSource(b.received()) << '\n';
  return out.str();
}

std::string formatEventJson(const medius::v1::BindingEvent& event) {
  nlohmann::json doc{{"event", eventKindName(event.kind())}};
  if (event.kind() != medius::v1::BindingEvent::KIND_SNAPSHOT_END && event.has_binding()) {
    doc["binding"] = bindingToJson(event.binding());
  }
  return doc.dump() + '\n';
}

}  // namespace medius::medctl
