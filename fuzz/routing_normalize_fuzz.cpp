// libFuzzer target: any dialled string (number, sip:/tel: URI, garbage) from any source
// through parsing, normalization and route() against the reference configuration
// (examples/local/routing.json). Never a crash; the decision is the same with and
// without an explanation (the prefix index agrees with the full scan of every route).
//
// Input: byte 0 picks the source (alice, bob, trunk pstn-primary, trunk pbx, unknown
// user) and the trunks down; the rest is "callee" or "callee\ncaller".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "medius/routing/config.hpp"
#include "medius/routing/engine.hpp"

namespace {

class Devices : public medius::routing::DeviceLookup {
 public:
  explicit Devices(bool present) : present_(present) {}
  bool hasDevices(const std::string&) override { return present_; }

 private:
  bool present_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace medius::routing;
  static const std::shared_ptr<const Config> config =
      loadConfig(medius::config::Document::load(MEDIUS_EXAMPLE_ROUTING));
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string_view callee = text.substr(0, text.find('\n'));
  std::string_view caller =
      text.find('\n') == std::string_view::npos ? std::string_view() : text.substr(text.find('\n') + 1);

  (void)parseDialled(callee, "example.com");

  medius::v1::RouteCallRequest req;
  req.set_callee(std::string(callee));
  req.set_caller(std::string(caller));
  req.set_call_id(std::string(caller));
  switch (selector % 5) {
    case 0: req.mutable_source()->set_internal_user("sip:alice@example.com"); break;
    case 1: req.mutable_source()->set_internal_user("sip:bob@example.com"); break;
    case 2: req.mutable_source()->set_trunk("pstn-primary"); break;
    case 3: req.mutable_source()->set_trunk("pbx"); break;
    default: req.mutable_source()->set_internal_user(std::string(caller)); break;
  }
  TrunkHealth health;
  if (selector & 0x08) health.report("pstn-primary", false);
  if (selector & 0x10) health.report("pbx", false);
  if (selector & 0x20) req.add_exclude_trunks("pstn-backup");
  Devices devices((selector & 0x40) == 0);
  std::vector<medius::v1::ExplainStep> steps;
  medius::v1::RoutePlan explained = route(*config, health, devices, req, &steps);
  medius::v1::RoutePlan quiet = route(*config, health, devices, req, nullptr);
  if (explained.SerializeAsString() != quiet.SerializeAsString()) std::abort();
  if (explained.outcome() == medius::v1::RoutePlan::OUTCOME_UNSPECIFIED) std::abort();
  if (explained.outcome() == medius::v1::RoutePlan::OUTCOME_ROUTED && explained.groups_size() == 0) {
    std::abort();
  }
  return 0;
}
