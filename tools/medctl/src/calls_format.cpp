#include "medius/medctl/calls_format.hpp"

#include "medius/medctl/format.hpp"

#include <algorithm>
#include <array>
#include <vector>

namespace medius::medctl {

namespace {

std::string orDash(const std::string& value) { return value.empty() ? "-" : value; }

std::string since(std::int64_t sinceMs, std::int64_t nowMs) {
  if (sinceMs <= 0) return "-";
  return formatDuration(std::max<std::int64_t>(0, nowMs - sinceMs) / 1000);
}

// Column widths over `rows`; cells padded with two spaces, no trailing blanks.
std::vector<std::size_t> widthsOf(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  return widths;
}

std::string line(const std::string& indent, const std::vector<std::string>& row,
                 const std::vector<std::size_t>& widths) {
  std::string out = indent;
  for (std::size_t i = 0; i < row.size(); ++i) {
    out += row[i];
    if (i + 1 < row.size()) out += std::string(widths[i] - row[i].size() + 2, ' ');
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out + '\n';
}

// Terminal-safe: control characters (a hostile From display) become '?'.
std::string printable(std::string value) {
  for (char& c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return value;
}

}  // namespace

std::string sideName(medius::v1::Side side) {
  switch (side) {
    case medius::v1::SIDE_INTERNAL: return "internal";
    case medius::v1::SIDE_TRUNK: return "trunk";
    default: return "-";
  }
}

std::string callState(const medius::v1::CallInfo& call) {
  static constexpr std::array<const char*, 5> kOrder{"routing", "calling", "proceeding",
                                                     "early", "confirmed"};
  if (call.legs_size() == 0) return "-";
  int best = -1;
  std::string unknown;
  for (const auto& leg : call.legs()) {
    if (leg.state() == "terminating") return "terminating";
    bool known = false;
    for (std::size_t i = 0; i < kOrder.size(); ++i) {
      if (leg.state() == kOrder[i]) {
        best = std::max(best, static_cast<int>(i));
        known = true;
      }
    }
    if (!known && unknown.empty()) unknown = leg.state();
  }
  if (best >= 0) return kOrder[static_cast<std::size_t>(best)];
  return unknown.empty() ? "-" : printable(unknown);
}

std::string formatDuration(std::int64_t seconds) {
  if (seconds < 0) seconds = 0;
  const auto two = [](std::int64_t v) { return (v < 10 ? "0" : "") + std::to_string(v); };
  if (seconds < 60) return std::to_string(seconds) + "s";
  if (seconds < 3600) return std::to_string(seconds / 60) + "m" + two(seconds % 60) + "s";
  return std::to_string(seconds / 3600) + "h" + two(seconds / 60 % 60) + "m" +
         two(seconds % 60) + "s";
}

std::string formatCallsTable(const medius::v1::ListCallsResponse& response, std::int64_t nowMs) {
  const auto n = static_cast<std::size_t>(response.calls_size());
  std::size_t answered = 0;
  for (const auto& call : response.calls()) answered += call.answered_at_ms() > 0 ? 1 : 0;
  const std::string total = std::to_string(n) + (n == 1 ? " call, " : " calls, ") +
                            std::to_string(answered) + " answered\n";
  if (n == 0) return "no calls\n" + total;

  std::vector<std::vector<std::string>> calls{
      {"CALL", "CALLER -> CALLEE", "STATE", "AGE", "DURATION", "TRUNK", "MEDIA WORKER"}};
  std::vector<std::vector<std::string>> legs;
  for (const auto& call : response.calls()) {
    calls.push_back({orDash(printable(call.id())),
                     orDash(printable(call.caller())) + " -> " + orDash(printable(call.callee())),
                     callState(call), since(call.started_at_ms(), nowMs),
                     since(call.answered_at_ms(), nowMs), orDash(printable(call.trunk())),
                     orDash(printable(call.media_worker()))});
    for (const auto& leg : call.legs()) {
      legs.push_back({sideName(leg.side()), orDash(printable(leg.call_id())),
                      orDash(printable(leg.target())), orDash(printable(leg.state()))});
    }
  }
  const auto callWidths = widthsOf(calls);
  const auto legWidths = widthsOf(legs);
  std::string out = line("", calls[0], callWidths);
  std::size_t legIndex = 0;
  for (int i = 0; i < response.calls_size(); ++i) {
    out += line("", calls[static_cast<std::size_t>(i) + 1], callWidths);
    for (int j = 0; j < response.calls(i).legs_size(); ++j) {
      out += line("  ", legs[legIndex++], legWidths);
    }
  }
  return out + total;
}

std::string formatGatewayFlowsTable(const medius::v1::ListFlowsResponse& response,
                                    std::int64_t nowMs) {
  if (response.flows_size() == 0) return "no flows\n";
  std::vector<std::vector<std::string>> rows{
      {"FLOW", "AORS", "NAT", "OUTBOUND", "STATE", "KEEPALIVE-AGE(s)", "REASON"}};
  std::size_t unreachable = 0;
  for (const auto& f : response.flows()) {
    unreachable += f.state() == "unreachable" ? 1 : 0;
    std::string aors;
    for (const auto& aor : f.aors()) aors += (aors.empty() ? "" : ",") + printable(aor);
    std::string age = "-";
    if (f.last_keepalive_ms() > 0) {
      age = std::to_string(std::max<std::int64_t>(0, nowMs - f.last_keepalive_ms()) / 1000);
    }
    rows.push_back({formatSource(f.address()), orDash(aors), f.nat() ? "yes" : "no",
                    f.outbound() ? "yes" : "no", orDash(printable(f.state())), age,
                    orDash(printable(f.reason()))});
  }
  const auto widths = widthsOf(rows);
  std::string out;
  for (const auto& row : rows) out += line("", row, widths);
  return out + std::to_string(response.flows_size()) + " flow(s), " + std::to_string(unreachable) +
         " unreachable\n";
}

}  // namespace medius::medctl
