// routing: the Enterprise Voice decision service of Medius (issue 4).
// Thin on purpose: flags, config, wiring, signals. The decisions are in
// medius_routing_core, the gRPC service and reload in medius_routing.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

#include "medius/common/logging.hpp"
#include "medius/common/metrics.hpp"
#include "medius/common/service.hpp"
#include "medius/routing/engine.hpp"
#include "medius/routing/service/grpc_service.hpp"
#include "medius/routing/service/live_config.hpp"
#include "medius/routing/service/metrics.hpp"
#include "medius/routing/service/registrar_device_lookup.hpp"

int main(int argc, char** argv) {
  using namespace medius;
  // First: every thread started later inherits the blocked mask, so SIGHUP (reload) and
  // SIGTERM/SIGINT (shutdown) reach only the sigwait loop below.
  ShutdownSignals signals;

  CLI::App app{"Medius routing: dial plans, voice policies, routes and trunks"};
  std::string configFile;
  app.add_option("--config", configFile, "routing.json")->required();
  CLI11_PARSE(app, argc, argv);

  // Read the file once before anything starts, for the settings and the first error.
  auto loaded = loadConfigOrReport([&] { return routing::service::LiveConfig::read(configFile); });
  if (!loaded) return 2;
  std::shared_ptr<const routing::Config> initial = std::move(*loaded);
  const ServiceSettings settings = routing::serviceSettings(*initial);

  try {
    log::init("routing", settings.log);
    setClientTls(settings.grpcTls);
    auto logger = log::get("routing");

    metrics::MetricsServer metricsServer(settings.metricsListen);
    routing::service::RoutingMetrics metrics(metricsServer.registry());
    routing::TrunkHealth health;
    routing::service::LiveConfig live(configFile, std::move(initial), health, metrics);
    routing::service::RegistrarChannels registrar;
    routing::service::RoutingService service(live, health, registrar, metrics);
    logger->info("starting: config {} (hash {}), registrar {}", live.file(),
                 routing::configHash(*live.current()),
                 routing::registrarSettings(*live.current()).address);
    GrpcServer server(settings.grpcListen, {&service}, {"medius.v1.Routing"}, settings.grpcTls);
    logger->info("serving gRPC on {} (port {}), metrics on {}", settings.grpcListen,
                 server.port(), settings.metricsListen);

    signals.waitForShutdown([&] {
      try {
        const auto result = live.reload();
        logger->info("SIGHUP: reload of {}: {} {}", live.file(),
                     result.changed ? "now serving" : "unchanged, still serving", result.hash);
        const ServiceSettings next = routing::serviceSettings(*live.current());
        if (next.grpcListen != settings.grpcListen ||
            next.metricsListen != settings.metricsListen) {
          logger->warn("SIGHUP: listen addresses changed in {}: they apply after a restart",
                       live.file());
        }
      } catch (const config::ConfigError& e) {
        logger->error("SIGHUP: reload refused, still serving {}: {}",
                      routing::configHash(*live.current()), e.what());
      }
    });
    server.setServing(false);
    server.shutdown(std::chrono::milliseconds(settings.shutdownTimeoutMs));
    logger->info("stopped");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "routing: %s\n", e.what());
    return 1;
  }
}
