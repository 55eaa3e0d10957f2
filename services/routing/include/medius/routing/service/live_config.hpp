// The configuration now serving, and its reload.
//
// The current Config is one immutable snapshot behind an atomic shared_ptr: a request
// loads it once and decides with it to the end, so no call ever sees half a config. A
// reload re-reads the SAME file off to the side, validates it completely (loadConfig),
// and only then publishes it with one atomic store. A bad file throws the loader's
// config::ConfigError (file, JSON path, problem) and leaves the old snapshot serving.
//
// Metrics: reloads_total{result}, config_info{hash} and trunk_up{trunk} (every trunk of
// the serving config with its health) are kept current here.
//
// Ownership: owns the snapshots; borrows the metrics and the trunk health (they outlive
// it). Thread: current() from any thread, lock-free for readers; reload() and
// publishTrunkHealth() from any thread (serialized by a mutex).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "medius/routing/engine.hpp"
#include "medius/routing/service/metrics.hpp"

namespace medius::routing::service {

struct ReloadResult {
  // Hash of the configuration serving after the reload.
  std::string hash;
  // False when the file's hash equals the one already serving (nothing swapped).
  bool changed = false;
};

class LiveConfig {
 public:
  // Serves `initial` (already loaded from `file`) and publishes its metrics.
  LiveConfig(std::string file, std::shared_ptr<const Config> initial, const TrunkHealth& health,
             RoutingMetrics& metrics);
  LiveConfig(const LiveConfig&) = delete;
  LiveConfig& operator=(const LiveConfig&) = delete;

  const std::string& file() const { return file_; }

  // The snapshot serving now; keep the returned pointer for the whole request.
  std::shared_ptr<const Config> current() const { return current_.load(); }

  // Reads and validates `file` (throws config::ConfigError); publishes nothing.
  static std::shared_ptr<const Config> read(const std::string& file);

  // Re-reads file(). Throws config::ConfigError (counted as failed; the old snapshot keeps
  // serving); otherwise counts ok or unchanged.
  ReloadResult reload();

  // Refreshes trunk_up{trunk} for the serving config's trunks (after a health report).
  void publishTrunkHealth();

 private:
  void publishLocked(const Config& config);

  const std::string file_;
  const TrunkHealth& health_;
  RoutingMetrics& metrics_;
  std::mutex reloadMutex_;
  std::atomic<std::shared_ptr<const Config>> current_;
};

}  // namespace medius::routing::service
