// DeviceLookup over the registrar's gRPC Lookup: does an AOR have a registered contact?
//
// RegistrarChannels keeps one gRPC channel per registrar address (the address may change
// with a reload). A RegistrarDeviceLookup is made per request from the serving config's
// registrar settings; every Lookup has the deadline registrar.timeout_ms, and any failure
// (unreachable, deadline, error status) throws DeviceLookupUnavailable: the routing
// service answers UNAVAILABLE so the gateway can answer 503.
//
// Thread: RegistrarChannels is thread-safe; a RegistrarDeviceLookup belongs to one request.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "medius/routing/engine.hpp"

namespace grpc {
class Channel;
}

namespace medius::routing::service {

class RegistrarChannels {
 public:
  std::shared_ptr<grpc::Channel> channel(const std::string& address);

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

class RegistrarDeviceLookup final : public DeviceLookup {
 public:
  RegistrarDeviceLookup(RegistrarChannels& channels, const RegistrarSettings& settings);

  // True when the registrar lists at least one unexpired binding for `aor`.
  // Throws DeviceLookupUnavailable.
  bool hasDevices(const std::string& aor) override;

 private:
  RegistrarChannels& channels_;
  RegistrarSettings settings_;
};

}  // namespace medius::routing::service
