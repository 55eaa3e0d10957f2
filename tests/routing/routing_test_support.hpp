// Helpers for the routing tests: the reference configuration (examples/local/routing.json),
// variants of it, a fake DeviceLookup and a compact rendering of route plans.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "medius/routing/config.hpp"
#include "medius/routing/engine.hpp"

namespace medius::routing::test {

std::string readFile(const std::string& path);
std::string examplePath();
std::string exampleText();
std::shared_ptr<const Config> exampleConfig();

// The example with `edit` applied, loaded under the name `file`.
std::shared_ptr<const Config> variant(const std::function<void(nlohmann::json&)>& edit,
                                      const std::string& file = "variant.json");
// The ConfigError (what()) of loading the edited example; "" when it loads.
std::string variantError(const std::function<void(nlohmann::json&)>& edit,
                         const std::string& file = "bad.json");

// Every user has devices except those in `absent`.
class FakeDevices : public DeviceLookup {
 public:
  explicit FakeDevices(std::set<std::string> absent = {}) : absent_(std::move(absent)) {}
  bool hasDevices(const std::string& aor) override {
    ++lookups;
    return !absent_.contains(aor);
  }
  int lookups = 0;

 private:
  std::set<std::string> absent_;
};

// "alice"/"bob" -> internal user source; "trunk:<name>" -> trunk source.
v1::RouteCallRequest request(const std::string& from, const std::string& to,
                             const std::string& caller = "");

// Groups separated by " | ", targets inside a group by " + ": "sip:bob@example.com",
// "pstn-primary:12065550123" (trunk:called number), "pbx:100*" (a PBX phone).
std::string render(const v1::RoutePlan& plan);
// The caller IDs of the targets, in the same layout.
std::string renderCallerIds(const v1::RoutePlan& plan);

}  // namespace medius::routing::test
