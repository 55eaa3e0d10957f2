// media-transcoder: the media worker of Medius (this slice: anchoring and relay, no codecs).
// Thin on purpose: flags, config, wiring, signals. The logic is in medius_media.
#include <chrono>
#include <csignal>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "medius/common/drain.hpp"
#include "medius/common/logging.hpp"
#include "medius/common/metrics.hpp"
#include "medius/common/service.hpp"
#include "medius/media/config.hpp"
#include "medius/media/grpc_service.hpp"
#include "medius/media/metrics.hpp"
#include "medius/media/orphan_sweeper.hpp"
#include "medius/media/session_manager.hpp"

int main(int argc, char** argv) {
  using namespace medius;
  ShutdownSignals signals;  // first: every thread started later inherits the blocked mask

  CLI::App app{"Medius media-transcoder: anchored RTP relay"};
  std::string configFile;
  app.add_option("--config", configFile, "media.json")->required();
  CLI11_PARSE(app, argc, argv);

  auto loaded = loadConfigOrReport([&] { return media::load(configFile); });
  if (!loaded) return 2;
  const media::MediaConfig& config = *loaded;

  try {
    log::init("media-transcoder", config.service.log);
    setClientTls(config.service.grpcTls);
    auto logger = log::get("media");
    logger->info("starting: {} (config {})", config.summary(), config.file);

    metrics::MetricsServer metricsServer(config.service.metricsListen);
    media::MediaMetrics metrics(metricsServer.registry());
    media::SessionManager manager(config, metrics);
    // Deletes the sessions of a gateway that stopped watching (crashed) and the sessions
    // whose media timeout nobody acted on, orphan_grace_ms later (session_manager.hpp).
    media::OrphanSweeper sweeper(manager, media::OrphanSweeper::intervalFor(config.orphanGraceMs));
    media::MediaService service(manager);
    GrpcServer server(config.service.grpcListen, {&service}, {"medius.v1.MediaTranscoder"}, config.service.grpcTls);
    // Draining (medius/common/drain.hpp): the first SIGTERM/SIGINT or a Drain RPC refuses
    // new sessions (UNAVAILABLE: the gateways try another worker) and turns health
    // NOT_SERVING; sessions in progress keep relaying, and their updates and deletes are
    // served, until the last one is deleted or drain.timeout_seconds pass; a second signal
    // ends them now.
    DrainState drain(std::chrono::seconds(config.drainTimeoutSeconds));
    service.setOnDrain([&] {
      if (drain.request(DrainState::Clock::now())) logger->info("Drain RPC: draining");
      server.setServing(false);
    });
    logger->info("serving gRPC on {} (port {}), metrics on {}", config.service.grpcListen,
                 server.port(), config.service.metricsListen);

    DrainHooks hooks;
    hooks.startDraining = [&] {
      manager.drain();
      server.setServing(false);
    };
    hooks.remaining = [&] { return manager.sessionCount(); };
    hooks.what = "sessions";
    runDrain(signals, drain, hooks);
    server.setServing(false);
    sweeper.stop();  // before the watches end: a gateway's stream ending here is no crash
    service.stopWatches();
    server.shutdown(std::chrono::milliseconds(config.service.shutdownTimeoutMs));
    manager.shutdown();
    logger->info("stopped");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "media-transcoder: %s\n", e.what());
    return 1;
  }
}
