// libFuzzer target: any text through the routing configuration loader must give either a
// Config or a ConfigError (file, path, problem), never a crash, a hang or another
// exception; a Config that loads must route a few calls without failing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "medius/routing/config.hpp"
#include "medius/routing/engine.hpp"

namespace {

class Devices : public medius::routing::DeviceLookup {
 public:
  bool hasDevices(const std::string& aor) override { return aor.size() % 2 == 0; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace medius::routing;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::shared_ptr<const Config> config;
  try {
    config = loadConfigText(text, "fuzz.json");
  } catch (const medius::config::ConfigError& e) {
    if (e.file().empty()) std::abort();
    return 0;
  }
  if (configHash(*config).size() != 12) std::abort();
  TrunkHealth health;
  Devices devices;
  for (const char* callee : {"2200", "101", "+14255550100", "011442071234567", "sip:bob@example.com"}) {
    for (int source = 0; source < 2; ++source) {
      medius::v1::RouteCallRequest req;
      req.set_callee(callee);
      req.set_caller("sip:2065550199@127.0.0.11");
      if (source == 0) {
        req.mutable_source()->set_internal_user(config->users.empty() ? "sip:x@example.com"
                                                                      : config->users[0].uri);
      } else {
        req.mutable_source()->set_trunk(config->trunks[0].name);
      }
      std::vector<medius::v1::ExplainStep> steps;
      medius::v1::RoutePlan a = route(*config, health, devices, req, &steps);
      medius::v1::RoutePlan b = route(*config, health, devices, req, nullptr);
      if (a.SerializeAsString() != b.SerializeAsString()) std::abort();
    }
  }
  return 0;
}
