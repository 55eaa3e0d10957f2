// Loading routing.json: the example, its JSON Schema, and every refusal naming file,
// JSON path and problem.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "routing_test_support.hpp"

namespace medius::routing::test {
namespace {

using json = nlohmann::json;

TEST(RoutingConfig, LoadsTheExample) {
  auto cfg = exampleConfig();
  EXPECT_EQ(cfg->domain, "example.com");
  EXPECT_EQ(cfg->dialPlans.size(), 1u);
  EXPECT_EQ(cfg->dialPlans[0].rules.size(), 7u);
  EXPECT_EQ(trunkNames(*cfg), (std::vector<std::string>{"pstn-primary", "pstn-backup", "pbx"}));
  EXPECT_EQ(cfg->routes.size(), 4u);
  EXPECT_EQ(cfg->users.size(), 2u);
  EXPECT_EQ(serviceSettings(*cfg).grpcListen, "127.0.0.1:50052");
  EXPECT_EQ(serviceSettings(*cfg).metricsListen, "127.0.0.1:9102");
  EXPECT_EQ(registrarSettings(*cfg).address, "127.0.0.1:50051");
  EXPECT_EQ(registrarSettings(*cfg).timeoutMs, 500);
  const User* alice = cfg->findUserByNumber("+14255550100");
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->uri, "sip:alice@example.com");
  EXPECT_EQ(alice->extension, "100");
  ASSERT_TRUE(alice->forwardNoAnswer);
  EXPECT_EQ(alice->forwardNoAnswer->normalized, "+14255550101");
  EXPECT_EQ(alice->noAnswerSeconds, 20u);
  EXPECT_EQ(cfg->findUserByUri("sip:bob@example.com"), cfg->findUserByNumber("+14255550101"));
  EXPECT_EQ(cfg->findUserByNumber("+14255550102"), nullptr);
  EXPECT_EQ(cfg->users[1].dialPlan, cfg->defaultDialPlan);
}

TEST(RoutingConfig, HashIsTwelveHexOfSha256OfTheText) {
  auto a = loadConfigText(exampleText(), "a.json");
  auto b = loadConfigText(exampleText(), "b.json");
  auto c = loadConfigText(exampleText() + "\n", "c.json");
  EXPECT_EQ(configHash(*a).size(), 12u);
  EXPECT_EQ(configHash(*a).find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(configHash(*a), configHash(*b));
  EXPECT_NE(configHash(*a), configHash(*c));
  // SHA-256("") starts with e3b0c44298fc: check the digest itself on a minimal document.
  EXPECT_EQ(configHash(*exampleConfig()), configHash(*a));
}

TEST(RoutingConfig, TrunkInfo) {
  auto cfg = exampleConfig();
  v1::TrunkInfo info = trunkInfo(*cfg, "pstn-primary");
  EXPECT_EQ(info.name(), "pstn-primary");
  EXPECT_EQ(info.address().host(), "127.0.0.11");
  EXPECT_EQ(info.address().port(), 5060u);
  EXPECT_EQ(info.address().transport(), v1::TRANSPORT_UDP);
  EXPECT_EQ(info.max_concurrent_calls(), 200u);
  EXPECT_EQ(info.media().srtp(), v1::SRTP_POLICY_OFF);
  EXPECT_EQ(std::vector<std::string>(info.media().codecs().begin(), info.media().codecs().end()),
            (std::vector<std::string>{"PCMU", "PCMA", "G729"}));
  EXPECT_EQ(trunkInfo(*cfg, "pbx").media().codecs_size(), 2);
  EXPECT_THROW(trunkInfo(*cfg, "nope"), std::out_of_range);
}

TEST(RoutingConfig, TrunkMediaPolicy) {
  auto cfg = exampleConfig();
  using Codecs = std::vector<std::string>;
  EXPECT_EQ(cfg->findTrunk("pstn-primary")->codecs, (Codecs{"PCMU", "PCMA", "G729"}));
  EXPECT_EQ(cfg->findTrunk("pstn-backup")->codecs, (Codecs{"PCMU", "PCMA", "G729"}));
  EXPECT_EQ(cfg->findTrunk("pbx")->codecs, (Codecs{"PCMU", "PCMA"}));
  for (const auto& t : cfg->trunks) EXPECT_EQ(t.srtp, v1::SRTP_POLICY_OFF) << t.name;
  // Defaults when the keys are absent; names normalized whatever their case.
  auto edited = variant([](json& j) {
    j["trunks"][0].erase("srtp");
    j["trunks"][0].erase("codecs");
    j["trunks"][1]["srtp"] = "required";
    j["trunks"][1]["codecs"] = json::array({"OPUS", "g722", "pcma"});
    j["trunks"][2]["srtp"] = "optional";
  });
  EXPECT_EQ(edited->trunks[0].srtp, v1::SRTP_POLICY_OFF);
  EXPECT_EQ(edited->trunks[0].codecs, (Codecs{"PCMU", "PCMA"}));
  EXPECT_EQ(edited->trunks[1].srtp, v1::SRTP_POLICY_REQUIRED);
  EXPECT_EQ(edited->trunks[1].codecs, (Codecs{"opus", "G722", "PCMA"}));
  EXPECT_EQ(edited->trunks[2].srtp, v1::SRTP_POLICY_OPTIONAL);
  v1::TrunkInfo info = trunkInfo(*edited, "pstn-backup");
  EXPECT_EQ(info.media().srtp(), v1::SRTP_POLICY_REQUIRED);
  EXPECT_EQ(std::vector<std::string>(info.media().codecs().begin(), info.media().codecs().end()),
            (Codecs{"opus", "G722", "PCMA"}));
}

TEST(RoutingConfig, TrustedTrunks) {
  // The reference topology trusts its PSTN carriers (P-Asserted-Identity toward them),
  // not the PBX; absent means untrusted; anything but a boolean is refused.
  auto cfg = exampleConfig();
  EXPECT_TRUE(cfg->findTrunk("pstn-primary")->trusted);
  EXPECT_TRUE(trunkInfo(*cfg, "pstn-backup").trusted());
  EXPECT_FALSE(trunkInfo(*cfg, "pbx").trusted());
  auto edited = variant([](json& j) { j["trunks"][0].erase("trusted"); });
  EXPECT_FALSE(edited->trunks[0].trusted);
  std::string error = variantError([](json& j) { j["trunks"][2]["trusted"] = "yes"; }, "bad.json");
  EXPECT_NE(error.find("bad.json: $.trunks[2].trusted: "), std::string::npos) << error;
}

void expectError(const std::function<void(json&)>& edit, const std::string& path,
                 const std::string& problem);

TEST(RoutingConfig, TlsTrunksPinTheirCertificateName) {
  // A TLS trunk's certificate must carry its tls_name, by default its address's host.
  auto cfg = variant([](json& j) {
    j["trunks"][0]["transport"] = "tls";
    j["trunks"][1]["transport"] = "tls";
    j["trunks"][1]["tls_name"] = "sip.carrier.example.net";
  });
  EXPECT_EQ(trunkInfo(*cfg, "pstn-primary").address().transport(), v1::TRANSPORT_TLS);
  EXPECT_EQ(trunkInfo(*cfg, "pstn-primary").tls_name(), "127.0.0.11");
  EXPECT_EQ(trunkInfo(*cfg, "pstn-backup").tls_name(), "sip.carrier.example.net");
  EXPECT_EQ(trunkInfo(*cfg, "pbx").tls_name(), "");
  expectError([](json& j) { j["trunks"][2]["tls_name"] = "pbx.example.net"; },
              "$.trunks[2].tls_name", "only for a trunk whose transport is \"tls\"");
  expectError(
      [](json& j) {
        j["trunks"][0]["transport"] = "tls";
        j["trunks"][0]["tls_name"] = "*.carrier.example.net";
      },
      "$.trunks[0].tls_name", "no wildcard");
}

TEST(RoutingConfig, RegistrarAddressFromEnvironment) {
  ::setenv("MEDIUS_REGISTRAR_ADDRESS", "127.0.0.5:6000", 1);
  auto cfg = exampleConfig();
  ::unsetenv("MEDIUS_REGISTRAR_ADDRESS");
  EXPECT_EQ(registrarSettings(*cfg).address, "127.0.0.5:6000");
}

// --- refusals: file + JSON path + problem ---

void expectError(const std::function<void(json&)>& edit, const std::string& path,
                 const std::string& problem) {
  std::string error = variantError(edit, "bad.json");
  EXPECT_NE(error.find("bad.json: " + path + ": "), std::string::npos) << path << ": " << error;
  EXPECT_NE(error.find(problem), std::string::npos) << error;
}

TEST(RoutingConfigErrors, RegexThatDoesNotCompile) {
  expectError([](json& j) { j["routes"][1]["pattern"] = "^\\+1(425\\d{7}$"; }, "$.routes[1].pattern",
              "regular expression does not compile: missing )");
  expectError([](json& j) { j["dial_plans"][0]["rules"][2]["pattern"] = "^\\d{4,9}[0-"; },
              "$.dial_plans[0].rules[2].pattern", "regular expression does not compile");
  expectError([](json& j) { j["trunks"][2]["inbound"]["called"][0]["pattern"] = "(?<x"; },
              "$.trunks[2].inbound.called[0].pattern", "regular expression does not compile");
}

TEST(RoutingConfigErrors, TranslationUsingAMissingGroup) {
  expectError([](json& j) { j["dial_plans"][0]["rules"][0]["translation"] = "+1425555$2"; },
              "$.dial_plans[0].rules[0].translation", "uses $2 but the pattern has 1 capture group");
  expectError([](json& j) { j["trunks"][0]["outbound"]["called"][0]["translation"] = "$"; },
              "$.trunks[0].outbound.called[0].translation", "lone");
}

TEST(RoutingConfigErrors, RouteNamingAnUnknownTrunk) {
  expectError([](json& j) { j["routes"][2]["trunks"][1] = "pstn-bakup"; }, "$.routes[2].trunks[1]",
              "unknown trunk \"pstn-bakup\"");
  expectError(
      [](json& j) {
        j["routes"][2]["trunks"] = json::array({{{"name", "pstn-primary"}}, {{"name", "x"}}});
      },
      "$.routes[2].trunks[1].name", "unknown trunk \"x\"");
}

TEST(RoutingConfigErrors, UserWithADuplicateLineNumber) {
  expectError([](json& j) { j["users"][1]["line"] = "+14255550100"; }, "$.users[1].line",
              "duplicate line number \"+14255550100\": already the line of sip:alice@example.com "
              "($.users[0])");
}

TEST(RoutingConfigErrors, UnknownKey) {
  expectError([](json& j) { j["users"][0]["voice_polcy"] = "national"; }, "$.users[0].voice_polcy",
              "unknown key");
  expectError([](json& j) { j["trunks"][1]["outbound"]["caled"] = json::array(); },
              "$.trunks[1].outbound.caled", "unknown key");
  expectError([](json& j) { j["routing"] = 1; }, "$.routing", "unknown key");
}

TEST(RoutingConfigErrors, WrongType) {
  expectError([](json& j) { j["trunks"][0]["max_concurrent_calls"] = "200"; },
              "$.trunks[0].max_concurrent_calls", "expected an integer, got a string");
  expectError([](json& j) { j["trunks"][0]["failover_codes"][1] = 200; },
              "$.trunks[0].failover_codes[1]", "between 300 and 699");
  expectError([](json& j) { j["routes"][0]["trunks"] = "pbx"; }, "$.routes[0].trunks",
              "expected an array");
  expectError([](json& j) { j["users"] = json::object(); }, "$.users", "expected an array");
  expectError(
      [](json& j) { j["routes"][2]["trunks"] = json::array({"pstn-primary", {{"name", "pbx"}}}); },
      "$.routes[2].trunks[0]", "all names or all objects");
}

TEST(RoutingConfigErrors, CrossReferences) {
  expectError([](json& j) { j["pstn_usages"][1]["routes"][0] = "locale"; },
              "$.pstn_usages[1].routes[0]", "unknown route \"locale\"");
  expectError([](json& j) { j["voice_policies"][0]["usages"][2] = "nationwide"; },
              "$.voice_policies[0].usages[2]", "unknown PSTN usage \"nationwide\"");
  expectError([](json& j) { j["users"][1]["voice_policy"] = "global"; }, "$.users[1].voice_policy",
              "unknown voice policy \"global\"");
  expectError([](json& j) { j["users"][0]["dial_plan"] = "seattle"; }, "$.users[0].dial_plan",
              "unknown dial plan \"seattle\"");
  expectError([](json& j) { j["default_dial_plan"] = "seattle"; }, "$.default_dial_plan",
              "unknown dial plan");
  expectError([](json& j) { j["users"][0]["coexistence"]["pbx_trunk"] = "pbx2"; },
              "$.users[0].coexistence.pbx_trunk", "unknown trunk \"pbx2\"");
}

TEST(RoutingConfigErrors, ForwardingTargets) {
  expectError([](json& j) { j["users"][0]["forwarding"]["no_answer"]["target"] = "99"; },
              "$.users[0].forwarding.no_answer.target", "does not normalize");
  expectError([](json& j) { j["users"][0]["forwarding"]["no_answer"]["target"] = "12345"; },
              "$.users[0].forwarding.no_answer.target", "is incomplete");
  expectError([](json& j) { j["users"][0]["forwarding"]["no_answer"]["target"] = "100"; },
              "$.users[0].forwarding.no_answer.target", "own line");
  expectError(
      [](json& j) { j["users"][1]["forwarding"]["immediate"]["target"] = "sip:carol@example.com"; },
      "$.users[1].forwarding.immediate.target", "no user \"sip:carol@example.com\"");
  expectError([](json& j) { j["users"][0]["forwarding"]["no_answer"]["after_seconds"] = 0; },
              "$.users[0].forwarding.no_answer.after_seconds", "between 1 and 600");
}

TEST(RoutingConfigErrors, NamesAndNumbers) {
  expectError([](json& j) { j["trunks"][1]["name"] = "pstn-primary"; }, "$.trunks[1].name",
              "duplicate trunk name");
  expectError([](json& j) { j["dial_plans"][0]["rules"][1]["name"] = "ext-3"; },
              "$.dial_plans[0].rules[1].name", "duplicate rule name");
  expectError([](json& j) { j["users"][1]["uri"] = "sip:alice@EXAMPLE.com"; }, "$.users[1].uri",
              "duplicate user");
  expectError([](json& j) { j["users"][1]["line"] = "4255550101"; }, "$.users[1].line",
              "expected an E.164 number");
  expectError([](json& j) { j["users"][1]["line"] = "+14255550101;ext="; }, "$.users[1].line",
              "expected \"+E164\" or");
  expectError([](json& j) { j["trunks"][0]["address"] = "127.0.0.11"; }, "$.trunks[0].address",
              "expected host:port");
  expectError([](json& j) { j["routes"][3]["caller_id"]["number"] = "4255550000"; },
              "$.routes[3].caller_id.number", "expected an E.164 number");
  expectError([](json& j) { j["dial_plans"][0]["rules"][2]["translation"] = "x"; },
              "$.dial_plans[0].rules[2].translation", "incomplete rule has no translation");
  expectError([](json& j) { j["routes"][1]["trunks"] = json::array({"pbx", "pbx"}); },
              "$.routes[1].trunks[1]", "listed twice");
  expectError([](json& j) { j.erase("domain"); }, "$.domain", "missing required field");
}

TEST(RoutingConfigErrors, TrunkMediaPolicy) {
  expectError([](json& j) { j["trunks"][0]["srtp"] = "mandatory"; }, "$.trunks[0].srtp",
              "expected one of \"off\", \"optional\", \"required\", got \"mandatory\"");
  expectError([](json& j) { j["trunks"][0]["srtp"] = true; }, "$.trunks[0].srtp",
              "expected a string");
  expectError([](json& j) { j["trunks"][1]["codecs"] = json::array({"PCMU", "G.729"}); },
              "$.trunks[1].codecs[1]", "unknown codec \"G.729\"");
  expectError([](json& j) { j["trunks"][2]["codecs"] = json::array({"PCMU", "PCMA", "pcmu"}); },
              "$.trunks[2].codecs[2]", "codec \"PCMU\" is listed twice");
  expectError([](json& j) { j["trunks"][2]["codecs"] = json::array(); }, "$.trunks[2].codecs",
              "at least one codec");
  expectError([](json& j) { j["trunks"][2]["codecs"] = "PCMU"; }, "$.trunks[2].codecs",
              "expected an array of strings");
  expectError([](json& j) { j["trunks"][2]["codec"] = json::array({"PCMU"}); },
              "$.trunks[2].codec", "unknown key");
}

TEST(RoutingConfigErrors, FileNameInErrors) {
  std::string path = ::testing::TempDir() + "routing-bad-regex.json";
  json j = json::parse(exampleText());
  j["routes"][0]["pattern"] = "^(";
  std::ofstream(path) << j.dump(2);
  try {
    loadConfig(config::Document::load(path));
    FAIL() << "loaded a config with a bad regex";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_EQ(e.path(), "$.routes[0].pattern");
    EXPECT_NE(e.problem().find("missing )"), std::string::npos) << e.problem();
  }
  std::remove(path.c_str());
}

// --- the JSON Schema describes every key the example uses ---

const json& resolveRef(const json& schema, const json& node) {
  if (node.contains("$ref")) {
    std::string ref = node["$ref"];
    EXPECT_EQ(ref.rfind("#/$defs/", 0), 0u) << ref;
    return schema["$defs"][ref.substr(8)];
  }
  return node;
}

std::string typeOf(const json& v) {
  if (v.is_object()) return "object";
  if (v.is_array()) return "array";
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer()) return "integer";
  return "number";
}

// Schema nodes that may describe `value`: the node itself or its oneOf/anyOf branches.
std::vector<const json*> branches(const json& schema, const json& node, const json& value) {
  const json& n = resolveRef(schema, node);
  std::vector<const json*> out;
  for (const char* key : {"oneOf", "anyOf"}) {
    if (n.contains(key)) {
      for (const auto& b : n[key]) {
        const json& rb = resolveRef(schema, b);
        if (!rb.contains("type") || rb["type"] == typeOf(value)) out.push_back(&rb);
      }
    }
  }
  if (out.empty()) out.push_back(&n);
  return out;
}

void walk(const json& schema, const json& node, const json& value, const std::string& path,
          std::vector<std::string>& problems) {
  auto candidates = branches(schema, node, value);
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      const json* sub = nullptr;
      for (const json* c : candidates) {
        if (c->contains("properties") && (*c)["properties"].contains(it.key())) {
          sub = &(*c)["properties"][it.key()];
        } else if (c->contains("additionalProperties") && (*c)["additionalProperties"].is_object()) {
          sub = &(*c)["additionalProperties"];
        }
        if (sub) break;
      }
      if (!sub) {
        problems.push_back(path + "." + it.key() + " is not in the schema");
        continue;
      }
      walk(schema, *sub, it.value(), path + "." + it.key(), problems);
    }
  } else if (value.is_array()) {
    for (std::size_t i = 0; i < value.size(); ++i) {
      std::string p = path + "[" + std::to_string(i) + "]";
      const json* items = nullptr;
      for (const json* c : candidates) {
        if (!c->contains("items")) continue;
        const json& resolved = resolveRef(schema, (*c)["items"]);
        if (!resolved.contains("type") || resolved["type"] == typeOf(value[i])) {
          items = &(*c)["items"];
          break;
        }
      }
      if (!items) {
        problems.push_back(p + " has no items schema of type " + typeOf(value[i]));
        continue;
      }
      walk(schema, *items, value[i], p, problems);
    }
  } else {
    bool typed = false;
    for (const json* c : candidates) {
      if (!c->contains("type") || (*c)["type"] == typeOf(value)) typed = true;
    }
    if (!typed) problems.push_back(path + " has type " + typeOf(value) + " the schema does not allow");
  }
}

// Every property declared in the schema has a description.
void describedEverywhere(const json& node, const std::string& path,
                         std::vector<std::string>& problems) {
  if (node.is_object()) {
    if (node.contains("properties")) {
      for (auto it = node["properties"].begin(); it != node["properties"].end(); ++it) {
        if (!it.value().contains("description")) {
          problems.push_back(path + ".properties." + it.key() + " has no description");
        }
      }
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      describedEverywhere(it.value(), path + "." + it.key(), problems);
    }
  } else if (node.is_array()) {
    for (std::size_t i = 0; i < node.size(); ++i) {
      describedEverywhere(node[i], path + "[" + std::to_string(i) + "]", problems);
    }
  }
}

TEST(RoutingSchema, DescribesEveryKeyOfTheExample) {
  json schema = json::parse(readFile(std::string(MEDIUS_SOURCE_DIR) +
                                     "/config/schema/routing.schema.json"));
  json example = json::parse(exampleText());
  EXPECT_EQ(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
  std::vector<std::string> problems;
  walk(schema, schema, example, "$", problems);
  describedEverywhere(schema, "#", problems);
  EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
  // The walk notices a key the schema lacks.
  example["users"][0]["favourite_colour"] = "blue";
  problems.clear();
  walk(schema, schema, example, "$", problems);
  EXPECT_EQ(problems, std::vector<std::string>{"$.users[0].favourite_colour is not in the schema"});
}

}  // namespace
}  // namespace medius::routing::test
