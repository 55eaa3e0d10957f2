#include "medius/common/service.hpp"

#include <algorithm>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <cstdio>
#include <stdexcept>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

namespace medius {

ServiceSettings readServiceSettings(config::Object& root, const std::string& defaultGrpc,
                                    const std::string& defaultMetrics) {
  ServiceSettings s;
  s.grpcListen = defaultGrpc;
  s.metricsListen = defaultMetrics;
  std::optional<config::Object> svc = root.optionalObject("service");
  config::Document empty = config::Document::parse("{}", "(defaults)");
  config::Object fallback = empty.root();
  config::Object& o = svc ? *svc : fallback;
  s.grpcListen = o.string("grpc_listen", defaultGrpc, "MEDIUS_GRPC_LISTEN");
  s.metricsListen = o.string("metrics_listen", defaultMetrics, "MEDIUS_METRICS_LISTEN");
  for (const auto* key : {"grpc_listen", "metrics_listen"}) {
    try {
      config::parseHostPort(key == std::string("grpc_listen") ? s.grpcListen : s.metricsListen);
    } catch (const std::invalid_argument& e) {
      o.fail(key, e.what());
    }
  }
  s.shutdownTimeoutMs =
      o.integer("shutdown_timeout_ms", 5000, 0, 3'600'000, "MEDIUS_SHUTDOWN_TIMEOUT_MS");
  const std::filesystem::path file(o.file());
  s.grpcTls = readGrpcTls(o, file.has_parent_path() ? file.parent_path().string() : std::string());
  if (!s.grpcTls && !isLoopbackTarget(s.grpcListen)) {
    o.fail("grpc_listen", s.grpcListen +
                              " is not a loopback address: plaintext gRPC only on loopback, "
                              "configure service.grpc_tls (CA, certificate, key) to listen there");
  }
  if (auto logObj = o.optionalObject("log")) {
    const std::vector<std::string> levels{"trace", "debug", "info", "warn", "error", "critical",
                                          "off"};
    s.log.level = logObj->choice("level", "info", levels, "MEDIUS_LOG_LEVEL");
    s.log.format = logObj->choice("format", "text", {"text", "json"}, "MEDIUS_LOG_FORMAT");
    if (logObj->has("levels")) {
      auto lv = logObj->requireObject("levels");
      for (const auto& name : logObj->keysOf("levels")) {
        s.log.levels[name] = lv.choice(name, "info", levels);
      }
      lv.finish();
    }
    logObj->finish();
  } else {
    if (const char* e = std::getenv("MEDIUS_LOG_LEVEL"); e && *e) s.log.level = e;
    if (const char* e = std::getenv("MEDIUS_LOG_FORMAT"); e && *e) s.log.format = e;
    try {
      log::parseLevel(s.log.level);
    } catch (const std::invalid_argument& e) {
      throw config::ConfigError("environment variable MEDIUS_LOG_LEVEL", "", e.what());
    }
  }
  o.finish();
  return s;
}

GrpcServer::GrpcServer(const std::string& listen, const std::vector<grpc::Service*>& services,
                       std::vector<std::string> healthNames, const std::optional<GrpcTls>& tls)
    : healthNames_(std::move(healthNames)) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, serverCredentials(tls), &port_);
  for (auto* s : services) builder.RegisterService(s);
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    throw std::runtime_error("cannot listen for gRPC on " + listen);
  }
  setServing(true);
}

GrpcServer::~GrpcServer() { shutdown(std::chrono::milliseconds(0)); }

void GrpcServer::setServing(bool serving) {
  if (!server_) return;
  auto* health = server_->GetHealthCheckService();
  if (!health) return;
  health->SetServingStatus(serving);
  for (const auto& name : healthNames_) health->SetServingStatus(name, serving);
}

void GrpcServer::shutdown(std::chrono::milliseconds grace) {
  if (stopped_ || !server_) return;
  stopped_ = true;
  setServing(false);
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
}

ShutdownSignals::ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int ShutdownSignals::waitForShutdown(const std::function<void()>& onHangup) {
  while (true) {
    int sig = wait();
    if (sig != SIGHUP) {
      log::get("main")->info("signal {}: shutting down", sig);
      return sig;
    }
    if (onHangup) {
      onHangup();
    } else {
      log::get("main")->info("SIGHUP: this service has nothing to reload; ignored");
    }
  }
}

void reportConfigError(const config::ConfigError& error) {
  std::fprintf(stderr, "config error: %s\n", error.what());
}

int ShutdownSignals::waitFor(std::chrono::milliseconds timeout) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  const auto ms = std::max<std::int64_t>(0, timeout.count());
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1'000'000)};
  int sig = sigtimedwait(&set, nullptr, &ts);
  return sig > 0 ? sig : 0;  // -1: EAGAIN (timeout) or EINTR
}

int ShutdownSignals::wait() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

}  // namespace medius
