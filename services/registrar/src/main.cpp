// registrar: the binding and digest-authentication service of Medius.
// Thin on purpose: flags, config, wiring, signals. The logic is in medius_registrar.
#include <csignal>
#include <cstdio>
#include <memory>

#include <CLI/CLI.hpp>

#include "medius/common/logging.hpp"
#include "medius/common/metrics.hpp"
#include "medius/common/service.hpp"
#include "medius/registrar/config.hpp"
#include "medius/registrar/grpc_service.hpp"
#include "medius/registrar/memory_binding_store.hpp"
#include "medius/registrar/metrics.hpp"
#include "medius/registrar/redis_binding_store.hpp"
#include "medius/registrar/registrar.hpp"
#include "medius/registrar/sweeper.hpp"

int main(int argc, char** argv) {
  using namespace medius;
  ShutdownSignals signals;  // first: every thread started later inherits the blocked mask

  CLI::App app{"Medius registrar: SIP bindings and digest authentication"};
  std::string configFile;
  app.add_option("--config", configFile, "registrar.json")->required();
  CLI11_PARSE(app, argc, argv);

  auto loaded = loadConfigOrReport([&] { return registrar::load(configFile); });
  if (!loaded) return 2;
  const registrar::RegistrarConfig& config = *loaded;

  try {
    log::init("registrar", config.service.log);
    setClientTls(config.service.grpcTls);
    auto logger = log::get("registrar");
    logger->info("starting: {} (config {})", config.summary(), config.file);

    metrics::MetricsServer metricsServer(config.service.metricsListen);
    registrar::RegistrarMetrics metrics(metricsServer.registry());

    std::unique_ptr<registrar::BindingStore> store;
    if (config.store.type == registrar::StoreConfig::Type::Redis) {
      store = std::make_unique<registrar::RedisBindingStore>(config.store);
    } else {
      store = std::make_unique<registrar::MemoryBindingStore>();
    }
    registrar::Registrar core(config, *store, SystemClock::instance(), metrics);
    registrar::Sweeper sweeper(core, std::chrono::milliseconds(config.sweepIntervalMs));
    registrar::RegistrarService service(core, *store);
    GrpcServer server(config.service.grpcListen, {&service}, {"medius.v1.Registrar"}, config.service.grpcTls);
    logger->info("serving gRPC on {} (port {}), metrics on {}", config.service.grpcListen,
                 server.port(), config.service.metricsListen);

    signals.waitForShutdown();
    server.setServing(false);
    service.stopWatches();
    server.shutdown(std::chrono::milliseconds(config.service.shutdownTimeoutMs));
    sweeper.stop();
    logger->info("stopped");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "registrar: %s\n", e.what());
    return 1;
  }
}
