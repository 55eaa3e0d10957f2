// One logging façade for every service: spdlog loggers per subsystem ("sip", "sofia",
// "grpc", "registrar", "config", ...), each with its own level, one line per event.
//
// Thread: init() once in main before other threads; get() is thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace medius::log {

struct Settings {
  // trace, debug, info, warn, error, critical, off.
  std::string level = "info";
  // Per-subsystem overrides, e.g. {"sofia": "warn"}.
  std::map<std::string, std::string> levels;
  // "text" (human) or "json" (one JSON object per line).
  std::string format = "text";
};

// Configures the default sink on stderr and the levels. The service name is in every line.
void init(const std::string& service, const Settings& settings);

// The logger of a subsystem, created on first use with the configured level.
std::shared_ptr<spdlog::logger> get(const std::string& subsystem);

// Throws std::invalid_argument for an unknown level name.
spdlog::level::level_enum parseLevel(const std::string& name);

}  // namespace medius::log
