// What every Medius service has in common: the settings block of its config file,
// the gRPC server (with grpc.health.v1 and reflection), and orderly shutdown on
// SIGTERM/SIGINT (health NOT_SERVING first, in-flight work finishes, bounded).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "medius/common/config.hpp"
#include "medius/common/grpc_tls.hpp"
#include "medius/common/logging.hpp"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace medius {

struct ServiceSettings {
  // gRPC listen address, "host:port". Env MEDIUS_GRPC_LISTEN.
  std::string grpcListen;
  // Prometheus /metrics listen address. Env MEDIUS_METRICS_LISTEN.
  std::string metricsListen;
  // Longest wait for in-flight work at shutdown, milliseconds. Env MEDIUS_SHUTDOWN_TIMEOUT_MS.
  std::int64_t shutdownTimeoutMs = 5000;
  // Logging (level env MEDIUS_LOG_LEVEL, format env MEDIUS_LOG_FORMAT).
  log::Settings log;
  // TLS of its gRPC server and clients (grpc_tls.hpp); nullopt: plaintext, loopback only.
  std::optional<GrpcTls> grpcTls;
};

// Reads the "service" block of a config root:
//   "service": {"grpc_listen": "...", "metrics_listen": "...", "shutdown_timeout_ms": 5000,
//               "log": {"level": "info", "format": "text", "levels": {"sip": "debug"}},
//               "grpc_tls": {"ca": "...", "cert": "...", "key": "..."}}
// Without grpc_tls, a grpc_listen that is not loopback is a config error.
ServiceSettings readServiceSettings(config::Object& root, const std::string& defaultGrpc,
                                    const std::string& defaultMetrics);

class GrpcServer {
 public:
  // Starts serving `services` (not owned; they must outlive the server) on `listen`.
  // `healthNames` are the fully qualified service names reported SERVING.
  // Throws std::runtime_error when the address cannot be bound.
  // `tls`: TLS with client certificates (grpc_tls.hpp); nullopt: plaintext.
  GrpcServer(const std::string& listen, const std::vector<grpc::Service*>& services,
             std::vector<std::string> healthNames, const std::optional<GrpcTls>& tls = std::nullopt);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  int port() const { return port_; }
  // Overall and per-service health.
  void setServing(bool serving);
  // Health NOT_SERVING, stop accepting calls, let in-flight calls finish until `grace`
  // has passed, then cancel the rest. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

 private:
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::string> healthNames_;
  int port_ = 0;
  bool stopped_ = false;
};

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread it starts
// afterwards; create it first thing in main. wait() returns the next of them.
class ShutdownSignals {
 public:
  ShutdownSignals();
  int wait();
  // The next of them within `timeout`; 0 when none came.
  int waitFor(std::chrono::milliseconds timeout);
  // Waits for SIGTERM or SIGINT and returns it. Every SIGHUP before that calls `onHangup`
  // (a reload), or is logged and ignored when it is empty: a SIGHUP (log rotation, a
  // careless `kill -HUP`) never stops a service.
  int waitForShutdown(const std::function<void()>& onHangup = {});
};

// Prints "config error: ..." for a ConfigError (see loadConfigOrReport).
void reportConfigError(const config::ConfigError& error);

// Runs `load` (a config loader); a config::ConfigError is printed as one line
// "config error: FILE: $.path: problem" on stderr and gives std::nullopt: the caller
// exits with status 2 without starting anything.
template <class Load>
auto loadConfigOrReport(Load&& load) -> std::optional<decltype(load())> {
  try {
    return load();
  } catch (const config::ConfigError& e) {
    reportConfigError(e);
    return std::nullopt;
  }
}

}  // namespace medius
