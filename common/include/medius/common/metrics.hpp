// A Prometheus exposer per service: one registry, served at /metrics.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <prometheus/registry.h>

namespace prometheus {
class Exposer;
}

namespace medius::metrics {

// Latency buckets (seconds) for gRPC calls and request handling: 100 us .. 10 s.
const std::vector<double>& latencyBuckets();

class MetricsServer {
 public:
  // Binds "host:port" ("127.0.0.1:0" picks a free port). Throws on bind failure.
  explicit MetricsServer(const std::string& listen);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> sharedRegistry() { return registry_; }
  std::uint16_t port() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

// Text exposition of a registry (tests read metric values through this).
std::string serialize(prometheus::Registry& registry);

}  // namespace medius::metrics
