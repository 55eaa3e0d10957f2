#include <algorithm>
#include <cctype>

#include "medius/gateway/register_request.hpp"

namespace medius::gateway {

namespace {

bool oneLine(const std::string& s) { return s.find_first_of("\r\n") == std::string::npos; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// A registrar-supplied reason as a reason phrase: printable, one line, bounded.
std::string phraseOr(const std::string& reason, const char* fallback) {
  if (reason.empty() || reason.size() > 120) return fallback;
  for (char ch : reason) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) return fallback;
  }
  return reason;
}

// "0.5"-style q from millis (RFC 3261 qvalue, at most three decimals).
std::string qValue(std::uint32_t millis) {
  if (millis >= 1000) return "1";
  std::string frac = std::to_string(1000 + millis).substr(1);  // three digits
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  return frac.empty() ? "0" : "0." + frac;
}

}  // namespace

std::string SipReply::headerText() const {
  std::string out;
  for (const auto& [name, value] : headers) {
    if (!oneLine(name) || !oneLine(value) || name.empty()) continue;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  return out;
}

std::optional<std::string> SipReply::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return std::nullopt;
}

std::size_t SipReply::count(std::string_view name) const {
  return static_cast<std::size_t>(std::count_if(
      headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); }));
}

std::string httpDate(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

SipReply registerReply(const v1::RegisterResponse& response, std::time_t now) {
  using R = v1::RegisterResponse;
  switch (response.result()) {
    case R::RESULT_OK: {
      // RFC 3261 10.3 step 8: every current binding, each with its own expires.
      SipReply r = SipReply::of(200, "OK");
      for (const auto& b : response.bindings()) {
        std::string value = "<" + b.contact_uri() + ">;expires=" + std::to_string(b.expires_in());
        if (b.q_millis() != 0 && b.q_millis() != 1000) value += ";q=" + qValue(b.q_millis());
        if (!b.instance_id().empty()) value += ";+sip.instance=\"<" + b.instance_id() + ">\"";
        if (b.reg_id() != 0) value += ";reg-id=" + std::to_string(b.reg_id());
        r.headers.emplace_back("Contact", value);
      }
      r.headers.emplace_back("Date", httpDate(now));
      return r;
    }
    case R::RESULT_UNAUTHORIZED: {
      SipReply r = SipReply::of(401, "Unauthorized");
      for (const auto& c : response.challenges()) {
        if (!c.header_value().empty()) r.headers.emplace_back("WWW-Authenticate", c.header_value());
      }
      return r;
    }
    case R::RESULT_FORBIDDEN:
      return SipReply::of(403, phraseOr(response.reason(), "Forbidden"));
    case R::RESULT_INTERVAL_TOO_BRIEF: {
      SipReply r = SipReply::of(423, "Interval Too Brief");
      r.headers.emplace_back("Min-Expires", std::to_string(response.min_expires()));
      return r;
    }
    case R::RESULT_OUT_OF_ORDER:
      return SipReply::of(500, phraseOr(response.reason(), "Out of Order Request"));
    case R::RESULT_NOT_FOUND:
      return SipReply::of(404, phraseOr(response.reason(), "Not Found"));
    case R::RESULT_BAD_REQUEST:
      return SipReply::of(400, phraseOr(response.reason(), "Bad Request"));
    case R::RESULT_TOO_MANY_CONTACTS:
      return SipReply::of(403, phraseOr(response.reason(), "Too Many Contacts"));
    case R::RESULT_UNSPECIFIED:
    case v1::RegisterResponse_Result_RegisterResponse_Result_INT_MIN_SENTINEL_DO_NOT_USE_:
    case v1::RegisterResponse_Result_RegisterResponse_Result_INT_MAX_SENTINEL_DO_NOT_USE_:
      break;
  }
  return SipReply::of(500, "Unexpected Registrar Result");
}

SipReply registrarFailureReply(const grpc::Status& status, std::int64_t retryAfterSeconds) {
  // UNAVAILABLE / DEADLINE_EXCEEDED and every other failure: the dependency is not
  // usable right now; the client should retry later (DESIGN.md: 503 with Retry-After).
  SipReply r = SipReply::of(503, status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                             ? "Registrar Timeout"
                             : "Registrar Unavailable");
  r.headers.emplace_back("Retry-After", std::to_string(retryAfterSeconds));
  return r;
}

}  // namespace medius::gateway
