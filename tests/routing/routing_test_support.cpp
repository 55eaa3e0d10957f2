#include "routing_test_support.hpp"

#include <fstream>
#include <sstream>

namespace medius::routing::test {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string examplePath() { return std::string(MEDIUS_SOURCE_DIR) + "/examples/local/routing.json"; }

std::string exampleText() { return readFile(examplePath()); }

std::shared_ptr<const Config> exampleConfig() {
  return loadConfig(config::Document::load(examplePath()));
}

std::shared_ptr<const Config> variant(const std::function<void(nlohmann::json&)>& edit,
                                      const std::string& file) {
  nlohmann::json j = nlohmann::json::parse(exampleText());
  edit(j);
  return loadConfigText(j.dump(2), file);
}

std::string variantError(const std::function<void(nlohmann::json&)>& edit,
                         const std::string& file) {
  try {
    variant(edit, file);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

v1::RouteCallRequest request(const std::string& from, const std::string& to,
                             const std::string& caller) {
  v1::RouteCallRequest r;
  r.set_callee(to);
  r.set_call_id("call-" + from + "-" + to);
  if (from.rfind("trunk:", 0) == 0) {
    r.mutable_source()->set_trunk(from.substr(6));
    r.set_caller(caller.empty() ? "sip:2065550199@127.0.0.11" : caller);
  } else {
    std::string aor = "sip:" + from + "@example.com";
    r.mutable_source()->set_internal_user(aor);
    r.set_caller(caller.empty() ? aor : caller);
  }
  return r;
}

namespace {
std::string renderWith(const v1::RoutePlan& plan,
                       const std::function<std::string(const v1::RouteTarget&)>& one) {
  std::string out;
  for (int g = 0; g < plan.groups_size(); ++g) {
    if (g) out += " | ";
    const auto& group = plan.groups(g);
    for (int t = 0; t < group.targets_size(); ++t) {
      if (t) out += " + ";
      out += one(group.targets(t));
    }
  }
  return out;
}
}  // namespace

std::string render(const v1::RoutePlan& plan) {
  return renderWith(plan, [](const v1::RouteTarget& t) {
    if (t.has_trunk()) {
      return t.trunk().trunk() + ":" + t.trunk().called_number() + (t.trunk().pbx_phone() ? "*" : "");
    }
    return t.user_aor();
  });
}

std::string renderCallerIds(const v1::RoutePlan& plan) {
  return renderWith(plan, [](const v1::RouteTarget& t) { return t.caller_id(); });
}

}  // namespace medius::routing::test
