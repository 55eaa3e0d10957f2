// signaling-gateway: flags, config, objects, run, orderly shutdown. Logic is in
// medius_gateway (see include/medius/gateway/gateway.hpp for the life of a REGISTER).
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "medius/common/config.hpp"
#include "medius/common/drain.hpp"
#include "medius/common/logging.hpp"
#include "medius/common/media_policy.hpp"
#include "medius/common/metrics.hpp"
#include "medius/common/service.hpp"
#include "medius/gateway/admin_service.hpp"
#include "medius/gateway/call_records.hpp"
#include "medius/gateway/config.hpp"
#include "medius/gateway/gateway.hpp"
#include "medius/gateway/media_client.hpp"
#include "medius/gateway/metrics.hpp"
#include "medius/gateway/registrar_client.hpp"
#include "medius/gateway/routing_client.hpp"
#include "medius/gateway/sip_loop.hpp"
#include "medius/gateway/trunk_monitor.hpp"

using namespace medius;
using namespace medius::gateway;

namespace {

std::string joinListen(const std::vector<std::string>& urls) {
  std::string out;
  for (const auto& u : urls) out += (out.empty() ? "" : " ") + u;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  ShutdownSignals signals;  // first: every thread started later inherits the mask

  CLI::App app{"Medius signaling gateway"};
  std::string configFile;
  bool checkOnly = false;
  app.add_option("--config", configFile, "gateway.json")->required();
  app.add_flag("--check-config", checkOnly,
               "load and check the config (MEDIUS_* variables applied, TLS files read and "
               "verified) and exit: 0 when it is good, 2 with the file and field when not; "
               "nothing listens and nothing is contacted");
  CLI11_PARSE(app, argc, argv);

  auto loaded = loadConfigOrReport([&] { return loadConfig(config::Document::load(configFile)); });
  if (!loaded) return 2;
  const GatewayConfig& cfg = *loaded;
  if (checkOnly) {
    // Everything a start would refuse before listening has been checked by now (config.cpp
    // reads and verifies the tls blocks' files and service.grpc_tls's); binding is not tried.
    std::printf("config ok: %s (gateway %s, internal %s%s%s, trunk %s%s%s)\n", configFile.c_str(),
                cfg.gatewayId.c_str(), joinListen(cfg.internalListen).c_str(),
                cfg.internalTls ? ", TLS " : "",
                cfg.internalTls ? cfg.internalTls->listen.c_str() : "",
                joinListen(cfg.trunkListen).c_str(), cfg.trunkTls ? ", TLS " : "",
                cfg.trunkTls ? cfg.trunkTls->listen.c_str() : "");
    return 0;
  }
  log::init("signaling-gateway", cfg.service.log);
  setClientTls(cfg.service.grpcTls);
  auto logger = log::get("main");
  logger->info("gateway {} domain {} registrar {} (timeout {} ms), routing {} (timeout {} ms), "
               "user agent \"{}\"",
               cfg.gatewayId, cfg.domain, cfg.registrarAddress, cfg.registrarTimeoutMs,
               cfg.routingAddress, cfg.routingTimeoutMs, cfg.userAgent);
  std::string codecs;
  for (const auto& c : cfg.internalCodecs) codecs += (codecs.empty() ? "" : ", ") + c;
  logger->info("internal media: srtp {}, codecs {}", config::srtpPolicyName(cfg.internalSrtp),
               codecs);
  if (cfg.authCalls == gateway::CallAuthMode::Off) {
    logger->warn("auth.calls is \"off\": internal-side calls are NOT authenticated; anyone who "
                 "reaches the internal port calls as whoever their From says (lab use only)");
  } else {
    logger->info("calls from the internal side need digest credentials (realm \"{}\", From {})",
                 cfg.authRealm, cfg.authFromMustMatch ? "must match the user" : "ignored");
  }

  try {
    metrics::MetricsServer metricsServer(cfg.service.metricsListen);
    GatewayMetrics gatewayMetrics(metricsServer.registry());
    GatewayState state;

    // Destruction order matters: the trunk monitor and the gateway (on the loop) first,
    // then the gRPC clients (they cancel and wait for their calls, whose completions post
    // to the loop), then the loop.
    SipLoop loop;
    auto registrar = std::make_unique<GrpcRegistrarClient>(
        cfg.registrarAddress, std::chrono::milliseconds(cfg.registrarTimeoutMs), gatewayMetrics);
    auto routing = std::make_unique<GrpcRoutingClient>(
        cfg.routingAddress, std::chrono::milliseconds(cfg.routingTimeoutMs), gatewayMetrics);
    auto media = std::make_unique<GrpcMediaClient>(
        cfg.mediaWorkers, std::chrono::milliseconds(cfg.mediaTimeoutMs), gatewayMetrics,
        MediaWorkerDiscovery{std::chrono::milliseconds(cfg.mediaDiscoveryIntervalMs), {}});
    CallDirectory directory;
    CdrWriter cdr(cfg.cdrFile, &gatewayMetrics.cdrWriteErrors());
    std::unique_ptr<Gateway> gateway;
    std::unique_ptr<TrunkMonitor> monitor;
    // Media events arrive on gRPC threads; the sink is cleared before the gateway goes.
    struct EventSink {
      std::mutex mutex;
      Gateway* gateway = nullptr;
    };
    auto eventSink = std::make_shared<EventSink>();
    try {
      loop.invoke([&] {
        gateway = std::make_unique<Gateway>(loop, cfg, *registrar, gatewayMetrics, state,
                                            CallServices{*routing, *media, directory, cdr});
        KeepaliveSettings keepalive{cfg.keepaliveIntervalMs, cfg.keepaliveFailuresToDown,
                                    cfg.keepaliveSuccessesToUp};
        monitor = std::make_unique<TrunkMonitor>(
            [&loop](std::function<void()> fn) { return loop.post(std::move(fn)); }, *routing,
            *gateway, gatewayMetrics, cfg.gatewayId, keepalive);
        monitor->start(loop.root());
        gateway->setTrunkLocator(monitor.get());
      });
      eventSink->gateway = gateway.get();
      media->watch(cfg.gatewayId, [eventSink](const std::string& worker, const v1::MediaEvent& event) {
        std::lock_guard lock(eventSink->mutex);
        if (eventSink->gateway) eventSink->gateway->onMediaEvent(worker, event);
      });
    } catch (const std::exception& e) {
      logger->critical("{}", e.what());
      return 1;
    }

    // Draining (medius/common/drain.hpp): the first SIGTERM/SIGINT or a Drain RPC stops new
    // calls, calls in progress go on until they end or drain.timeout_seconds pass; a second
    // signal ends them now.
    DrainState drain(std::chrono::seconds(cfg.drainTimeoutSeconds));
    GatewayAdminService admin(cfg.gatewayId, state);
    admin.setTrunkMonitor(monitor.get());
    admin.setCallDirectory(&directory);
    GrpcServer grpcServer(cfg.service.grpcListen, {&admin}, {"medius.v1.GatewayAdmin"}, cfg.service.grpcTls);
    admin.setOnDrain([&](std::uint32_t graceSeconds) {
      std::optional<std::chrono::seconds> grace;
      if (graceSeconds > 0) grace = std::chrono::seconds(graceSeconds);
      if (drain.request(DrainState::Clock::now(), grace)) {
        logger->info("Drain RPC: draining (limit {} s)",
                     graceSeconds > 0 ? graceSeconds : cfg.drainTimeoutSeconds);
      }
      // At once, not at main's next poll: the load balancer's next probe must see it.
      grpcServer.setServing(false);
      loop.post([&] { gateway->startDraining(); });
    });
    logger->info("serving: admin gRPC on port {}, metrics on port {}", grpcServer.port(),
                 metricsServer.port());

    DrainHooks hooks;
    // SIGHUP: logrotate reopens the CDR file; the TLS certificate files are re-read.
    hooks.onHangup = [&cdr, &loop, &gateway] {
      cdr.reopen();
      loop.post([&gateway] {
        if (gateway) gateway->reloadTls(true);
      });
    };
    hooks.startDraining = [&] {
      grpcServer.setServing(false);
      loop.invoke([&] { gateway->startDraining(); });
    };
    hooks.remaining = [&] {
      std::size_t calls = 0;
      loop.invoke([&] { calls = gateway->activeCalls() + gateway->pendingAuth(); });
      return calls;
    };
    hooks.what = "calls";
    runDrain(signals, drain, hooks);
    grpcServer.setServing(false);
    loop.invoke([&] { gateway->stopAccepting(); });
    // REGISTERs being relayed finish (their gRPC deadline bounds them), up to
    // shutdown_timeout_ms; then the calls left (the drain limit, a second signal) are ended
    // with BYE (CANCEL or 503 before the answer).
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(cfg.service.shutdownTimeoutMs);
    while (std::chrono::steady_clock::now() < deadline) {
      std::size_t pending = 0;
      loop.invoke([&] { pending = gateway->pendingRegisters(); });
      if (pending == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    loop.invoke([&] { gateway->endAllCalls(); });
    // The media sessions of the calls that just ended are deleted (and their CDR lines
    // written) before the media client would cancel those calls: a session left behind
    // would keep its worker from finishing its own drain.
    if (!media->waitForCalls(std::chrono::milliseconds(cfg.service.shutdownTimeoutMs))) {
      logger->warn("media calls still in flight after {} ms: cancelled",
                   cfg.service.shutdownTimeoutMs);
    }
    {
      std::lock_guard lock(eventSink->mutex);
      eventSink->gateway = nullptr;
    }
    grpcServer.shutdown(std::chrono::milliseconds(cfg.service.shutdownTimeoutMs));
    loop.invoke([&] {
      monitor.reset();  // cancels its probes while the gateway still exists
      gateway.reset();  // answers what is left with 503
    });
    media.reset();  // stops the event streams; their last posts find the gateway gone
    registrar.reset();
    routing.reset();
    cdr.flush();
    loop.stop();
    logger->info("stopped");
  } catch (const std::exception& e) {
    logger->critical("{}", e.what());
    return 1;
  }
  return 0;
}
