// The contract between the routing core (configuration model and decisions, no I/O) and
// the routing service shell (gRPC, reload, metrics). Issue 4.
//
// Thread: a Config is immutable once loaded and may be read by any number of threads;
// TrunkHealth is thread-safe; route() only reads its arguments (DeviceLookup may block on
// I/O in production: the service calls route() on gRPC threads, never on an event loop).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "medius/common/config.hpp"
#include "medius/common/service.hpp"
#include "medius/v1/routing.pb.h"

namespace medius::routing {

// The whole validated model of one routing.json (defined in config.hpp by the core).
struct Config;

// Reads and validates a routing configuration. Throws config::ConfigError naming the
// file, the JSON path and the problem (bad regex, unknown trunk, duplicate line number,
// unknown key...). Never returns a partially valid Config.
std::shared_ptr<const Config> loadConfig(const config::Document& doc);

// Version of a Config: the first 12 hex digits of SHA-256 over the file's text.
const std::string& configHash(const Config& config);
// The "service" block (gRPC/metrics listen addresses, log) of the file.
const ServiceSettings& serviceSettings(const Config& config);

struct RegistrarSettings {
  std::string address = "127.0.0.1:50051";  // env MEDIUS_REGISTRAR_ADDRESS
  std::int64_t timeoutMs = 500;
};
const RegistrarSettings& registrarSettings(const Config& config);

// Names of every trunk of a Config, in file order (health gauges, ListTrunks).
std::vector<std::string> trunkNames(const Config& config);
// The trunk's address as configured ("127.0.0.11:5060") and transport ("udp"/"tcp"/"tls"),
// max_concurrent_calls and media policy (srtp, codecs); `up` is left false (the caller
// fills it from TrunkHealth).
// Throws std::out_of_range for a name that is not a trunk of `config`.
v1::TrunkInfo trunkInfo(const Config& config, const std::string& trunk);

// Trunk health as reported by gateways (OPTIONS keepalives). Independent of the Config, so
// it survives reloads. Unknown trunks are up. Thread-safe.
class TrunkHealth {
 public:
  void report(const std::string& trunk, bool up);
  bool isUp(const std::string& trunk) const;
  std::vector<std::pair<std::string, bool>> snapshot() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_ = makeImpl();
  static std::shared_ptr<Impl> makeImpl();
};

// Thrown by a DeviceLookup that cannot answer (registrar down or past its deadline).
class DeviceLookupUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Whether an internal user has registered devices right now (the registrar in
// production; a fake in tests).
class DeviceLookup {
 public:
  virtual ~DeviceLookup() = default;
  virtual bool hasDevices(const std::string& aor) = 0;
};

// Computes the route plan of a call: a pure function of its arguments. When `steps` is
// not null, appends the explanation (normalization rule, policy, usage, route, trunk,
// user, forwarding: each considered item, taken or skipped, and why). The plan's
// config_hash is set. Throws DeviceLookupUnavailable only from the lookup.
v1::RoutePlan route(const Config& config, const TrunkHealth& health, DeviceLookup& devices,
                    const v1::RouteCallRequest& request, std::vector<v1::ExplainStep>* steps);

// Remote call control (ControlLine): may request.user_aor() control request.device()? The
// device (a tel:/sip: URI, a number or an AOR) must be a line of that very user, with a
// PBX phone (co-existence) whose trunk is up; then pbx_phone is that phone as a trunk
// target, as RouteCall rings it. A pure function of its arguments.
v1::ControlLineResponse controlLine(const Config& config, const TrunkHealth& health,
                                    const v1::ControlLineRequest& request);

}  // namespace medius::routing
