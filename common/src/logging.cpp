#include "medius/common/logging.hpp"

#include <mutex>
#include <stdexcept>

#include <spdlog/sinks/stdout_sinks.h>

namespace medius::log {

namespace {
std::mutex g_mutex;
std::string g_service = "medius";
Settings g_settings;
std::shared_ptr<spdlog::sinks::sink> g_sink;

std::shared_ptr<spdlog::sinks::sink> sink() {
  if (!g_sink) g_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  return g_sink;
}

std::string pattern() {
  if (g_settings.format == "json") {
    return R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","service":")" + g_service +
           R"(","subsystem":"%n","level":"%l","msg":"%v"})";
  }
  return "%Y-%m-%d %H:%M:%S.%e " + g_service + " %n %^%l%$: %v";
}
}  // namespace

spdlog::level::level_enum parseLevel(const std::string& name) {
  auto level = spdlog::level::from_str(name);
  if (level == spdlog::level::off && name != "off") {
    throw std::invalid_argument("unknown log level \"" + name +
                                "\" (trace, debug, info, warn, error, critical, off)");
  }
  return level;
}

void init(const std::string& service, const Settings& settings) {
  std::lock_guard lock(g_mutex);
  g_service = service;
  g_settings = settings;
  parseLevel(settings.level);
  for (const auto& [name, level] : settings.levels) parseLevel(level);
  spdlog::drop_all();
}

std::shared_ptr<spdlog::logger> get(const std::string& subsystem) {
  if (auto existing = spdlog::get(subsystem)) return existing;
  std::lock_guard lock(g_mutex);
  if (auto existing = spdlog::get(subsystem)) return existing;
  auto logger = std::make_shared<spdlog::logger>(subsystem, sink());
  auto it = g_settings.levels.find(subsystem);
  logger->set_level(parseLevel(it != g_settings.levels.end() ? it->second : g_settings.level));
  logger->set_pattern(pattern());
  logger->flush_on(spdlog::level::warn);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace medius::log
