#include "medius/media/config.hpp"

#include <arpa/inet.h>

#include <thread>

#include "medius/common/config.hpp"

namespace medius::media {

namespace {

bool isIpv4(const std::string& text) {
  in_addr addr{};
  return ::inet_pton(AF_INET, text.c_str(), &addr) == 1;
}

// An env override is reported under the variable's name, like config::Object does.
[[noreturn]] void failAddress(config::Object& root, std::string_view key, const char* env,
                              const std::string& value) {
  std::string problem = "expected an IPv4 address, got \"" + value + "\"";
  if (const char* set = std::getenv(env); set && *set) {
    throw config::ConfigError(std::string("environment variable ") + env, "", problem);
  }
  root.fail(key, problem);
}

MediaConfig fromDocument(const config::Document& doc) {
  MediaConfig c;
  c.file = doc.file();
  config::Object root = doc.root();
  c.service = readServiceSettings(root, "127.0.0.1:50053", "127.0.0.1:9103");
  c.advertisedAddress =
      root.string("advertised_address", c.advertisedAddress, "MEDIUS_MEDIA_ADVERTISED_ADDRESS");
  if (!isIpv4(c.advertisedAddress) || c.advertisedAddress == "0.0.0.0") {
    failAddress(root, "advertised_address", "MEDIUS_MEDIA_ADVERTISED_ADDRESS",
                c.advertisedAddress);
  }
  c.bindAddress = root.string("bind_address", c.bindAddress, "MEDIUS_MEDIA_BIND_ADDRESS");
  if (!isIpv4(c.bindAddress)) {
    failAddress(root, "bind_address", "MEDIUS_MEDIA_BIND_ADDRESS", c.bindAddress);
  }

  std::optional<config::Object> range = root.optionalObject("port_range");
  config::Document empty = config::Document::parse("{}", "(defaults)");
  config::Object fallback = empty.root();
  config::Object& r = range ? *range : fallback;
  c.portRange.min = static_cast<std::uint16_t>(
      r.integer("min", c.portRange.min, 1024, 65534, "MEDIUS_MEDIA_PORT_MIN"));
  c.portRange.max = static_cast<std::uint16_t>(
      r.integer("max", c.portRange.max, 1025, 65535, "MEDIUS_MEDIA_PORT_MAX"));
  // At least one even RTP port with its RTCP port above it.
  std::uint32_t firstEven = (c.portRange.min + 1u) & ~1u;
  if (firstEven + 1 > c.portRange.max) {
    std::string problem = "the range " + std::to_string(c.portRange.min) + "-" +
                          std::to_string(c.portRange.max) +
                          " holds no even RTP port with its RTCP port (RTP + 1)";
    for (const char* env : {"MEDIUS_MEDIA_PORT_MIN", "MEDIUS_MEDIA_PORT_MAX"}) {
      if (const char* set = std::getenv(env); set && *set) {
        throw config::ConfigError(std::string("environment variable ") + env, "", problem);
      }
    }
    if (!range) root.fail("port_range", problem);
    r.fail("max", problem);
  }
  r.finish();

  auto cores = std::thread::hardware_concurrency();
  c.workers = static_cast<std::uint32_t>(root.integer("workers", 0, 0, 256, "MEDIUS_MEDIA_WORKERS"));
  if (c.workers == 0) c.workers = cores == 0 ? 1 : cores;
  c.mediaTimeoutMs = static_cast<std::uint32_t>(
      root.integer("media_timeout_ms", c.mediaTimeoutMs, 100, 3'600'000, "MEDIUS_MEDIA_TIMEOUT_MS"));
  c.strictSource = root.boolean("strict_source", c.strictSource);
  c.maxSessions = static_cast<std::uint32_t>(root.integer("max_sessions", c.maxSessions, 1, 1'000'000));
  c.loadLimit = static_cast<double>(root.integer("load_limit", 0, 0, 100'000, "MEDIUS_MEDIA_LOAD_LIMIT"));
  if (c.loadLimit == 0) c.loadLimit = 80.0 * c.workers;
  c.orphanGraceMs = static_cast<std::uint32_t>(root.integer("orphan_grace_ms", c.orphanGraceMs, 100,
                                                            3'600'000, "MEDIUS_MEDIA_ORPHAN_GRACE_MS"));
  {
    std::optional<config::Object> drain = root.optionalObject("drain");
    config::Object& d = drain ? *drain : fallback;
    c.drainTimeoutSeconds =
        d.integer("timeout_seconds", c.drainTimeoutSeconds, 1, 86400, "MEDIUS_DRAIN_TIMEOUT_SECONDS");
    if (drain) d.finish();
  }
  root.finish();
  return c;
}

}  // namespace

std::string MediaConfig::summary() const {
  return "grpc=" + service.grpcListen + " metrics=" + service.metricsListen +
         " advertised=" + advertisedAddress + " bind=" + bindAddress +
         " ports=" + std::to_string(portRange.min) + "-" + std::to_string(portRange.max) +
         " workers=" + std::to_string(workers) + " media_timeout_ms=" +
         std::to_string(mediaTimeoutMs) + " strict_source=" + (strictSource ? "true" : "false") +
         " max_sessions=" + std::to_string(maxSessions) +
         " load_limit=" + std::to_string(static_cast<long>(loadLimit)) + "%" +
         " drain_timeout_s=" + std::to_string(drainTimeoutSeconds) +
         " orphan_grace_ms=" + std::to_string(orphanGraceMs);
}

MediaConfig load(const std::string& path) { return fromDocument(config::Document::load(path)); }

MediaConfig parse(std::string_view text, const std::string& name) {
  return fromDocument(config::Document::parse(text, name));
}

}  // namespace medius::media
