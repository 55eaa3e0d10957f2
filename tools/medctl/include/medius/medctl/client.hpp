// The gRPC calls medctl makes: each takes a target "host:port", applies a deadline,
// and turns failures into a CallError with a message fit for stderr.
//
// Thread: each function blocks its caller; no shared state.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "medius/v1/gateway.pb.h"
#include "medius/v1/media.pb.h"
#include "medius/v1/registrar.pb.h"
#include "medius/v1/routing.pb.h"

namespace medius::medctl {

class CallError : public std::runtime_error {
 public:
  // `code`: the gRPC status code when the error is a status, else -1.
  explicit CallError(const std::string& message, int code = -1)
      : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }
  // The service could not be reached or did not answer in time (UNAVAILABLE,
  // DEADLINE_EXCEEDED), or answered UNAVAILABLE itself (its own dependency is down).
  bool unavailable() const { return code_ == 14 || code_ == 4; }

 private:
  int code_;
};

// Registrar.ListBindings for one AOR ("" = all). Throws CallError (e.g. "cannot reach
// the registrar at 127.0.0.1:50051: ...").
std::vector<medius::v1::Binding> listBindings(const std::string& target, const std::string& aor,
                                              std::chrono::milliseconds timeout);

enum class HealthState { Serving, NotServing, Unknown, ServiceUnknown };

// grpc.health.v1.Health/Check of `service` ("" = the server as a whole). Throws CallError
// when the server cannot be reached within `timeout`.
HealthState checkHealth(const std::string& target, const std::string& service,
                        std::chrono::milliseconds timeout);

std::string healthStateName(HealthState state);

// Registrar.Watch: calls `onEvent` for every event until the stream ends or onEvent
// returns false. Waits at most `connectTimeout` for the connection. Throws CallError when
// the stream fails (not when onEvent stops it).
void watchBindings(const std::string& target, const std::string& aor, bool snapshot,
                   std::chrono::milliseconds connectTimeout,
                   const std::function<bool(const medius::v1::BindingEvent&)>& onEvent);

// Routing.ExplainRoute. Throws CallError: "cannot reach the routing service at ..." when
// there is no connection, "routing service at ... is unavailable: ..." when it answered
// UNAVAILABLE (its registrar is down), "... failed: ..." for any other status.
medius::v1::RouteExplanation explainRoute(const std::string& target,
                                          const medius::v1::RouteCallRequest& request,
                                          std::chrono::milliseconds timeout);

// Routing.Reload. Throws CallError; a refused file is FAILED_PRECONDITION (code 9) whose
// message is the config error ("FILE: $.path: problem").
medius::v1::ReloadResponse reloadRouting(const std::string& target,
                                         std::chrono::milliseconds timeout);

// GatewayAdmin.ListTrunkStatus. Throws CallError ("cannot reach the gateway at ...").
medius::v1::ListTrunkStatusResponse listTrunkStatus(const std::string& target,
                                                    std::chrono::milliseconds timeout);

// GatewayAdmin.ListCalls. Throws CallError ("cannot reach the gateway at ...").
medius::v1::ListCallsResponse listCalls(const std::string& target,
                                        std::chrono::milliseconds timeout);

// GatewayAdmin.ListFlows. Throws CallError ("cannot reach the gateway at ...").
medius::v1::ListFlowsResponse listFlows(const std::string& target,
                                        std::chrono::milliseconds timeout);

// MediaTranscoder.ListSessions. Throws CallError ("cannot reach the media worker at ...").
medius::v1::ListSessionsResponse listSessions(const std::string& target,
                                              std::chrono::milliseconds timeout);

// GatewayAdmin.Drain: the gateway stops taking calls and exits when the last one ends or
// `graceSeconds` (0: its drain.timeout_seconds) pass. Returns the calls remaining. Throws
// CallError ("cannot reach the gateway at ...").
std::uint32_t drainGateway(const std::string& target, std::uint32_t graceSeconds,
                           std::chrono::milliseconds timeout);

// MediaTranscoder.Drain: the worker refuses new sessions and exits when the last one is
// deleted or its drain.timeout_seconds pass. Returns the sessions remaining. Throws
// CallError ("cannot reach the media worker at ...").
std::uint32_t drainMedia(const std::string& target, std::chrono::milliseconds timeout);

}  // namespace medius::medctl
