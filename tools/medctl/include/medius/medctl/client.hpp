// The gRPC calls medctl makes: each takes a target "host:port", applies a deadline,
// and turns failures into a CallError with a message fit for stderr.
//
// Thread: each function blocks its caller; no shared state.
#pragma once

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "medius/v1/registrar.pb.h"

namespace medius::medctl {

class CallError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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

}  // namespace medius::medctl
