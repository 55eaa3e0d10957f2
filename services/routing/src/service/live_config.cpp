#include "medius/routing/service/live_config.hpp"

#include <utility>
#include <vector>

namespace medius::routing::service {

LiveConfig::LiveConfig(std::string file, std::shared_ptr<const Config> initial,
                       const TrunkHealth& health, RoutingMetrics& metrics)
    : file_(std::move(file)), health_(health), metrics_(metrics), current_(std::move(initial)) {
  std::lock_guard lock(reloadMutex_);
  publishLocked(*current_.load());
}

std::shared_ptr<const Config> LiveConfig::read(const std::string& file) {
  // Document::load and loadConfig throw ConfigError; nothing is published before both
  // succeeded.
  return loadConfig(config::Document::load(file));
}

ReloadResult LiveConfig::reload() {
  std::lock_guard lock(reloadMutex_);
  std::shared_ptr<const Config> next;
  try {
    next = read(file_);
  } catch (const config::ConfigError&) {
    metrics_.reloads.failed.Increment();
    throw;
  }
  const std::shared_ptr<const Config> old = current_.load();
  if (configHash(*next) == configHash(*old)) {
    metrics_.reloads.unchanged.Increment();
    return {configHash(*old), false};
  }
  current_.store(next);
  publishLocked(*next);
  metrics_.reloads.ok.Increment();
  return {configHash(*next), true};
}

void LiveConfig::publishTrunkHealth() {
  std::lock_guard lock(reloadMutex_);
  publishLocked(*current_.load());
}

void LiveConfig::publishLocked(const Config& config) {
  std::vector<std::pair<std::string, bool>> trunks;
  for (const std::string& name : trunkNames(config)) trunks.emplace_back(name, health_.isUp(name));
  metrics_.setTrunks(trunks);
  metrics_.setConfigHash(configHash(config));
}

}  // namespace medius::routing::service
