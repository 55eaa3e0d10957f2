#include "medius/medctl/status_format.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "medius/medctl/format.hpp"

namespace medius::medctl {

namespace {

// "12s" since `sinceMs`, "-" when it is unset; a clock behind `sinceMs` reads as 0s.
std::string secondsSince(std::int64_t sinceMs, std::int64_t nowMs) {
  if (sinceMs <= 0) return "-";
  return std::to_string(std::max<std::int64_t>(0, nowMs - sinceMs) / 1000) + "s";
}

std::string plural(std::size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// "2", "2.5", "0.25": shortest of up to 6 significant digits.
std::string number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

// Left-aligned columns separated by two spaces; no trailing blanks.
std::string alignedRows(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + '\n';
  }
  return out;
}

std::string fixed(double value, int decimals) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

// One leg: addresses, codec and SRTP once negotiated, counters, and the quality figures
// and drops when there are any (a plain relay has none).
std::string legLine(const char* name, const medius::v1::LegStats& leg) {
  std::string out = std::string(name) + " " + formatSource(leg.local()) + " -> " +
                    formatSource(leg.remote());
  if (!leg.codec().empty()) out += " " + leg.codec() + (leg.srtp() ? "/SRTP" : "");
  out += " in " + std::to_string(leg.packets_in()) + " out " + std::to_string(leg.packets_out()) +
         " lost " + std::to_string(leg.packets_lost());
  if (leg.loss_percent() > 0) out += " (" + fixed(leg.loss_percent(), 1) + "%)";
  if (leg.jitter_ms() > 0) out += " jitter " + fixed(leg.jitter_ms(), 1) + "ms";
  if (leg.rtt_ms() > 0) out += " rtt " + fixed(leg.rtt_ms(), 0) + "ms";
  if (leg.mos() > 0) out += " MOS " + fixed(leg.mos(), 2);
  std::uint64_t drops = leg.srtp_auth_failures() + leg.srtp_replays() + leg.bad_packets() +
                        leg.payload_drops();
  if (drops > 0) {
    out += " dropped " + std::to_string(drops) + " (srtp " +
           std::to_string(leg.srtp_auth_failures() + leg.srtp_replays()) + ", malformed " +
           std::to_string(leg.bad_packets()) + ", payload " + std::to_string(leg.payload_drops()) +
           ")";
  }
  return out;
}

}  // namespace

std::string formatTrunksTable(const medius::v1::ListTrunkStatusResponse& response,
                              std::int64_t nowMs) {
  std::size_t up = 0;
  for (const auto& trunk : response.trunks()) up += trunk.up() ? 1 : 0;
  const std::string total =
      plural(static_cast<std::size_t>(response.trunks_size()), "trunk") + ", " +
      std::to_string(up) + " up\n";
  if (response.trunks_size() == 0) return "no trunks\n" + total;
  std::vector<std::vector<std::string>> rows{
      {"TRUNK", "ADDRESS", "STATE", "LAST OPTIONS", "SINCE", "ACTIVE CALLS"}};
  for (const auto& trunk : response.trunks()) {
    rows.push_back({trunk.name().empty() ? "-" : trunk.name(), formatSource(trunk.address()),
                    trunk.up() ? "up" : "down",
                    trunk.last_options_code() == 0 ? "timeout"
                                                   : std::to_string(trunk.last_options_code()),
                    secondsSince(trunk.last_change_ms(), nowMs),
                    std::to_string(trunk.active_calls())});
  }
  return alignedRows(rows) + total;
}

std::string formatSessions(const medius::v1::ListSessionsResponse& response,
                           std::int64_t nowMs) {
  std::string out;
  for (const auto& session : response.sessions()) {
    out += "SESSION " + (session.session_id().empty() ? "-" : session.session_id()) + "  AGE " +
           secondsSince(session.created_at_ms(), nowMs) +
           (session.transcoding() ? "  TRANSCODING" : "") + "  " +
           legLine("A", session.leg_a()) + "  " + legLine("B", session.leg_b()) + '\n';
  }
  return out + plural(static_cast<std::size_t>(response.sessions_size()), "session") +
         ", load " + number(response.load()) + " of " + number(response.load_limit()) + '\n';
}

std::string messageToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return "{\"error\": \"cannot print the response as JSON\"}\n";
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

}  // namespace medius::medctl
