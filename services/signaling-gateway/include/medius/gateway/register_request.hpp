// The REGISTER adapter: from a parsed Sofia request (sip_t) to medius.v1.RegisterRequest,
// and from a RegisterResponse or a gRPC failure to the SIP reply. Pure functions, no
// sockets, no loop: the unit tests feed them texts parsed with Sofia's own parser.
//
// Thread: any (they only read their arguments).
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <grpcpp/support/status.h>
#include <sofia-sip/sip.h>

#include "medius/v1/registrar.pb.h"

namespace medius::gateway {

// A SIP answer as a value: status, reason phrase and extra headers (name, value) in order.
struct SipReply {
  int status = 500;
  std::string phrase;
  std::vector<std::pair<std::string, std::string>> headers;

  // A reply without extra headers.
  static SipReply of(int status, std::string phrase) {
    return SipReply{status, std::move(phrase), {}};
  }
  // "Name: value\r\n..." for SIPTAG_HEADER_STR; header values with CR/LF are dropped.
  std::string headerText() const;
  // The first header with this name (case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
  std::size_t count(std::string_view name) const;
};

// Where a request came from, as seen by the gateway.
struct RequestSource {
  std::string host;
  std::uint32_t port = 0;
  v1::Transport transport = v1::TRANSPORT_UNSPECIFIED;
};

struct RegisterContext {
  RequestSource source;
  std::string gatewayId;
  // Credentials are taken from the Authorization header whose realm equals this.
  std::string domain;
  // RFC 5626 outbound's Flow-Timer (flows.flow_timer_seconds); 0: outbound is off.
  std::uint32_t flowTimerSeconds = 0;
};

// Whether a Contact points elsewhere than where its REGISTER came from (the client is
// behind a NAT): another host, or over UDP another port.
bool contactBehindNat(const url_t* contact, const RequestSource& source);

// 400 naming the first header Sofia failed to parse (or a duplicated single header);
// nullopt when every header parsed.
std::optional<SipReply> headerErrorReply(const sip_t* sip);

// Validates a REGISTER and converts it; a std::variant holding either the request or
// the 4xx reply to send (RFC 3261 10.3 steps 1-6 for what the gateway can check).
std::variant<v1::RegisterRequest, SipReply> buildRegisterRequest(const sip_t* sip,
                                                                 const RegisterContext& ctx);

// The 200's headers for an RFC 5626 REGISTER whose flow is outbound: Require: outbound and
// Flow-Timer (section 6); nothing otherwise.
void addOutboundHeaders(SipReply& reply, const v1::Flow& flow);

// The reply for a registrar result (200 with the bindings, 401 with the challenges...).
// `now` fills the Date header of the 200.
SipReply registerReply(const v1::RegisterResponse& response, std::time_t now);

// The reply when the Register call failed: 503 with Retry-After.
SipReply registrarFailureReply(const grpc::Status& status, std::int64_t retryAfterSeconds);

// RFC 1123 date for the Date header ("Sat, 13 Nov 2010 23:29:00 GMT").
std::string httpDate(std::time_t t);

// Parameter `name` (case-insensitive) of a Sofia parameter list ("name=value"), with
// quotes and backslash escapes removed; nullopt when absent.
std::optional<std::string> paramValue(const char* const* params, std::string_view name);

}  // namespace medius::gateway
