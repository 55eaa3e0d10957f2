#include "medius/common/metrics.hpp"

#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>

namespace medius::metrics {

const std::vector<double>& latencyBuckets() {
  static const std::vector<double> buckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                           0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5,
                                           5.0,    10.0};
  return buckets;
}

MetricsServer::MetricsServer(const std::string& listen)
    : registry_(std::make_shared<prometheus::Registry>()),
      exposer_(std::make_unique<prometheus::Exposer>(listen, 2)) {
  exposer_->RegisterCollectable(registry_);
}

MetricsServer::~MetricsServer() = default;

std::uint16_t MetricsServer::port() const {
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : static_cast<std::uint16_t>(ports.front());
}

std::string serialize(prometheus::Registry& registry) {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry.Collect());
}

}  // namespace medius::metrics
