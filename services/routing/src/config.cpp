// Loading and validating routing.json into an immutable Config (see config.hpp).
#include "medius/routing/config.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <set>

#include <openssl/evp.h>

#include "medius/common/grpc_tls.hpp"
#include "medius/common/media_policy.hpp"

namespace medius::routing {

namespace {

std::string quote(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out += '"';
  return out;
}

std::string indexed(std::string_view key, std::size_t i) {
  return std::string(key) + "[" + std::to_string(i) + "]";
}

std::string sha256Prefix(const std::string& text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), md.data(), &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < 6 && i < length; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

// A unique, non-empty "name"; registers it in `index` under `position`.
std::string readName(config::Object& o, NameIndex& index, std::size_t position,
                     std::string_view what) {
  std::string name = o.requireString("name");
  if (name.empty()) o.fail("name", "must not be empty");
  if (!index.emplace(name, position).second) {
    o.fail("name", "duplicate " + std::string(what) + " name " + quote(name));
  }
  return name;
}

// A compiled "pattern" (and "translation" when `translationKey` is not empty).
Pattern readPattern(config::Object& o, std::string_view translationKey, bool translationRequired) {
  std::string pattern = o.requireString("pattern");
  std::string translation;
  if (!translationKey.empty()) {
    translation = translationRequired ? o.requireString(translationKey)
                                      : o.string(translationKey, "");
  }
  try {
    return Pattern(std::move(pattern), std::move(translation));
  } catch (const BadTranslation& e) {
    o.fail(translationKey, e.what());
  } catch (const std::invalid_argument& e) {
    o.fail("pattern", std::string("regular expression does not compile: ") + e.what());
  }
}

std::vector<TranslationRule> readTranslationRules(config::Object& parent, std::string_view key) {
  std::vector<TranslationRule> rules;
  for (auto& r : parent.objects(key)) {
    TranslationRule rule{r.string("name", ""), r.string("description", ""),
                         readPattern(r, "translation", true)};
    r.finish();
    rules.push_back(std::move(rule));
  }
  return rules;
}

Translations readTranslations(config::Object& trunk, std::string_view key) {
  Translations t;
  if (auto o = trunk.optionalObject(key)) {
    t.called = readTranslationRules(*o, "called");
    t.calling = readTranslationRules(*o, "calling");
    o->finish();
  }
  return t;
}

// Index of a name in `index`, or a ConfigError at o.key.
std::size_t resolve(const config::Object& o, std::string_view key, const NameIndex& index,
                    const std::string& name, std::string_view what) {
  auto it = index.find(name);
  if (it == index.end()) o.fail(key, "unknown " + std::string(what) + " " + quote(name));
  return it->second;
}

void readDialPlans(config::Object& root, Config& cfg) {
  auto plans = root.objects("dial_plans");
  if (plans.empty()) root.fail("dial_plans", "at least one dial plan is required");
  for (auto& p : plans) {
    DialPlan plan;
    plan.name = readName(p, cfg.dialPlanByName, cfg.dialPlans.size(), "dial plan");
    plan.description = p.string("description", "");
    NameIndex ruleNames;
    for (auto& r : p.objects("rules")) {
      std::string name = readName(r, ruleNames, plan.rules.size(), "rule");
      std::string description = r.string("description", "");
      bool incomplete = r.boolean("incomplete", false);
      if (incomplete && r.has("translation")) {
        r.fail("translation", "an incomplete rule has no translation (the number gets 484)");
      }
      Pattern pattern = readPattern(r, incomplete ? "" : "translation", !incomplete);
      r.finish();
      plan.rules.push_back({std::move(name), std::move(description), std::move(pattern),
                            incomplete});
    }
    if (plan.rules.empty()) p.fail("rules", "a dial plan needs at least one rule");
    p.finish();
    cfg.dialPlans.push_back(std::move(plan));
  }
  std::string def = root.requireString("default_dial_plan");
  cfg.defaultDialPlan = resolve(root, "default_dial_plan", cfg.dialPlanByName, def, "dial plan");
}

void readTrunks(config::Object& root, Config& cfg) {
  for (auto& t : root.objects("trunks")) {
    Trunk trunk;
    trunk.name = readName(t, cfg.trunkByName, cfg.trunks.size(), "trunk");
    trunk.description = t.string("description", "");
    std::string address = t.requireString("address");
    try {
      trunk.address = config::parseHostPort(address);
    } catch (const std::invalid_argument& e) {
      t.fail("address", e.what());
    }
    if (trunk.address.host.empty() || trunk.address.port == 0) {
      t.fail("address", "expected host:port with a port between 1 and 65535, got " +
                            quote(address));
    }
    std::string transport = t.choice("transport", "udp", {"udp", "tcp", "tls"});
    trunk.transport = transport == "udp"   ? v1::TRANSPORT_UDP
                      : transport == "tcp" ? v1::TRANSPORT_TCP
                                           : v1::TRANSPORT_TLS;
    if (trunk.transport == v1::TRANSPORT_TLS) {
      trunk.tlsName = t.string("tls_name", trunk.address.host);
      if (trunk.tlsName.empty() || trunk.tlsName.find_first_of("* \t") != std::string::npos) {
        t.fail("tls_name", "expected the exact name the trunk's certificate carries (a DNS "
                           "name or an IP address, no wildcard), got " + quote(trunk.tlsName));
      }
    } else if (t.has("tls_name")) {
      t.fail("tls_name", "is only for a trunk whose transport is \"tls\"");
    }
    trunk.maxConcurrentCalls =
        static_cast<std::uint32_t>(t.integer("max_concurrent_calls", 0, 0, 1'000'000));
    trunk.failoverCodes.clear();
    for (auto code : t.integers("failover_codes", {408, 503, 504}, 300, 699)) {
      trunk.failoverCodes.push_back(static_cast<std::uint32_t>(code));
    }
    trunk.failoverTimeoutMs =
        static_cast<std::uint32_t>(t.integer("failover_timeout_ms", 10000, 0, 600'000));
    trunk.srtp = config::readSrtpPolicy(t, "srtp", trunk.srtp);
    trunk.codecs = config::readCodecs(t, "codecs", trunk.codecs);
    trunk.trusted = t.boolean("trusted", false);
    trunk.outbound = readTranslations(t, "outbound");
    trunk.inbound = readTranslations(t, "inbound");
    t.finish();
    cfg.trunks.push_back(std::move(trunk));
  }
  if (cfg.trunks.empty()) root.fail("trunks", "at least one trunk is required");
}

void readRouteTrunks(config::Object& r, Config& cfg, Route& route) {
  std::vector<std::string> names;
  std::vector<config::Object> objects;
  try {
    names = r.strings("trunks", {});
  } catch (const config::ConfigError&) {
    try {
      objects = r.objects("trunks");
    } catch (const config::ConfigError& e) {
      throw config::ConfigError(e.file(), e.path(),
                                e.problem() + " (trunks are all names or all objects "
                                              "{\"name\", \"priority\", \"weight\"})");
    }
  }
  if (!r.has("trunks")) r.fail("trunks", "missing required field");
  NameIndex seen;
  auto add = [&](const config::Object& o, std::string_view key, const std::string& name,
                 std::int64_t priority, std::int64_t weight) {
    RouteTrunk rt{resolve(o, key, cfg.trunkByName, name, "trunk"), priority, weight};
    if (!seen.emplace(name, 0).second) o.fail(key, "trunk " + quote(name) + " is listed twice");
    route.trunks.push_back(rt);
  };
  for (std::size_t i = 0; i < names.size(); ++i) {
    add(r, indexed("trunks", i), names[i], static_cast<std::int64_t>(i), 1);
  }
  for (auto& o : objects) {
    std::string name = o.requireString("name");
    std::int64_t priority = o.integer("priority", 1, 0, 1'000'000);
    std::int64_t weight = o.integer("weight", 1, 1, 1'000'000);
    add(o, "name", name, priority, weight);
    o.finish();
  }
  if (route.trunks.empty()) r.fail("trunks", "a route needs at least one trunk");
  std::stable_sort(route.trunks.begin(), route.trunks.end(),
                   [](const RouteTrunk& a, const RouteTrunk& b) { return a.priority < b.priority; });
  for (std::size_t i = 1; i < route.trunks.size(); ++i) {
    if (route.trunks[i].priority == route.trunks[i - 1].priority) route.weighted = true;
  }
}

void readRoutes(config::Object& root, Config& cfg) {
  for (auto& r : root.objects("routes")) {
    Route route{readName(r, cfg.routeByName, cfg.routes.size(), "route"), r.string("description", ""),
                readPattern(r, "", false), {}, false, std::nullopt, std::nullopt};
    readRouteTrunks(r, cfg, route);
    if (auto cid = r.optionalObject("caller_id")) {
      route.callerIdNumber = cid->optionalString("number");
      route.callerIdName = cid->optionalString("name");
      if (route.callerIdNumber && !isE164(*route.callerIdNumber)) {
        cid->fail("number", "expected an E.164 number (\"+\" and 2 to 15 digits), got " +
                                quote(*route.callerIdNumber));
      }
      if (!route.callerIdNumber && !route.callerIdName) {
        r.fail("caller_id", "expected \"number\" and/or \"name\"");
      }
      cid->finish();
    }
    r.finish();
    cfg.routes.push_back(std::move(route));
  }
}

void readUsagesAndPolicies(config::Object& root, Config& cfg) {
  for (auto& u : root.objects("pstn_usages")) {
    PstnUsage usage;
    usage.name = readName(u, cfg.usageByName, cfg.usages.size(), "PSTN usage");
    usage.description = u.string("description", "");
    auto routes = u.strings("routes", {});
    if (routes.empty()) u.fail("routes", "a PSTN usage needs at least one route");
    for (std::size_t i = 0; i < routes.size(); ++i) {
      usage.routes.push_back(resolve(u, indexed("routes", i), cfg.routeByName, routes[i], "route"));
    }
    u.finish();
    cfg.usages.push_back(std::move(usage));
  }
  for (auto& p : root.objects("voice_policies")) {
    VoicePolicy policy;
    policy.name = readName(p, cfg.policyByName, cfg.policies.size(), "voice policy");
    policy.description = p.string("description", "");
    auto usages = p.strings("usages", {});
    for (std::size_t i = 0; i < usages.size(); ++i) {
      policy.usages.push_back(
          resolve(p, indexed("usages", i), cfg.usageByName, usages[i], "PSTN usage"));
    }
    std::vector<bool> seen(cfg.routes.size(), false);
    for (std::size_t u : policy.usages) {
      for (std::size_t r : cfg.usages[u].routes) {
        policy.entries.push_back({u, r, seen[r]});
        seen[r] = true;
      }
    }
    std::set<std::size_t> lengths;
    for (std::size_t e = 0; e < policy.entries.size(); ++e) {
      policy.allEntries.push_back(static_cast<std::uint32_t>(e));
      if (policy.entries[e].repeat) continue;
      const std::string& prefix = cfg.routes[policy.entries[e].route].pattern.literalPrefix();
      policy.entriesByPrefix[prefix].push_back(static_cast<std::uint32_t>(e));
      lengths.insert(prefix.size());
    }
    policy.prefixLengths.assign(lengths.begin(), lengths.end());
    p.finish();
    cfg.policies.push_back(std::move(policy));
  }
}

std::string lowerHost(std::string_view uri) {
  std::string out(uri);
  auto at = out.find('@');
  for (std::size_t i = at == std::string::npos ? out.size() : at; i < out.size(); ++i) {
    if (out[i] >= 'A' && out[i] <= 'Z') out[i] = static_cast<char>(out[i] - 'A' + 'a');
  }
  return out;
}

// A forwarding or simultaneous-ring target object {"target": "..."} (+ extra keys read by
// the caller before finish()).
ForwardTarget readTarget(config::Object& o) {
  ForwardTarget t;
  t.target = o.requireString("target");
  if (t.target.empty()) o.fail("target", "must not be empty");
  return t;
}

void readUsers(config::Object& root, Config& cfg, std::vector<std::string>& paths) {
  for (auto& u : root.objects("users")) {
    User user;
    std::size_t position = cfg.users.size();
    user.uri = lowerHost(u.requireString("uri"));
    {
      Dialled d = parseDialled(user.uri, cfg.domain);
      if (user.uri.rfind("sip:", 0) != 0 || d.kind != Dialled::Kind::Uri || d.uri != user.uri) {
        u.fail("uri", "expected a SIP URI \"sip:user@host\" with a non-numeric user, got " +
                          quote(user.uri));
      }
    }
    if (auto [it, fresh] = cfg.userByUri.emplace(user.uri, position); !fresh) {
      u.fail("uri", "duplicate user " + quote(user.uri) + " (also " + paths[it->second] + ")");
    }
    user.displayName = u.string("display_name", "");
    user.line = u.requireString("line");
    std::string_view line = user.line;
    auto semi = line.find(';');
    user.number = std::string(line.substr(0, semi));
    if (semi != std::string_view::npos) {
      std::string_view param = line.substr(semi + 1);
      bool ok = param.rfind("ext=", 0) == 0 && param.size() > 4;
      for (std::size_t i = 4; ok && i < param.size(); ++i) ok = param[i] >= '0' && param[i] <= '9';
      if (!ok) u.fail("line", "expected \"+E164\" or \"+E164;ext=digits\", got " + quote(user.line));
      user.extension = std::string(param.substr(4));
    }
    if (!isE164(user.number)) {
      u.fail("line", "expected an E.164 number (\"+\" and 2 to 15 digits), optionally "
                     "\";ext=digits\", got " + quote(user.line));
    }
    if (auto [it, fresh] = cfg.userByNumber.emplace(user.number, position); !fresh) {
      u.fail("line", "duplicate line number " + quote(user.number) + ": already the line of " +
                         cfg.users[it->second].uri + " (" + paths[it->second] + ")");
    }
    user.dialPlan = cfg.defaultDialPlan;
    if (auto plan = u.optionalString("dial_plan")) {
      user.dialPlan = resolve(u, "dial_plan", cfg.dialPlanByName, *plan, "dial plan");
    }
    if (auto policy = u.optionalString("voice_policy")) {
      user.voicePolicy = resolve(u, "voice_policy", cfg.policyByName, *policy, "voice policy");
    }
    if (auto co = u.optionalObject("coexistence")) {
      std::string trunk = co->requireString("pbx_trunk");
      user.pbxTrunk = resolve(*co, "pbx_trunk", cfg.trunkByName, trunk, "trunk");
      user.pbxNumber = co->requireString("pbx_number");
      if (!isE164(user.pbxNumber)) {
        co->fail("pbx_number", "expected an E.164 number (\"+\" and 2 to 15 digits), got " +
                                   quote(user.pbxNumber));
      }
      co->finish();
    }
    if (auto fw = u.optionalObject("forwarding")) {
      if (auto o = fw->optionalObject("immediate")) {
        user.forwardImmediate = readTarget(*o);
        o->finish();
      }
      if (auto o = fw->optionalObject("no_answer")) {
        user.forwardNoAnswer = readTarget(*o);
        user.noAnswerSeconds = static_cast<std::uint32_t>(o->integer("after_seconds", 20, 1, 600));
        o->finish();
      }
      if (auto o = fw->optionalObject("unavailable")) {
        user.forwardUnavailable = readTarget(*o);
        o->finish();
      }
      fw->finish();
    }
    if (auto o = u.optionalObject("simultaneous_ring")) {
      user.simultaneousRing = readTarget(*o);
      o->finish();
    }
    u.finish();
    paths.push_back(u.path());
    cfg.users.push_back(std::move(user));
  }
}

// Normalizes a forwarding target with its user's dial plan; fails at `path`.
void resolveTarget(const Config& cfg, const User& user, ForwardTarget& target,
                   const std::string& path) {
  auto fail = [&](const std::string& problem) {
    throw config::ConfigError(cfg.file, path + ".target", problem);
  };
  Dialled d = parseDialled(target.target, cfg.domain);
  if (d.kind == Dialled::Kind::Uri) {
    const User* other = cfg.findUserByUri(d.uri);
    if (!other) fail("no user " + quote(d.uri));
    target.normalized = other->number;
  } else if (d.kind == Dialled::Kind::Number) {
    const DialPlan& plan = cfg.dialPlans[user.dialPlan];
    bool done = false;
    for (const auto& rule : plan.rules) {
      if (rule.incomplete) {
        if (rule.pattern.matches(d.number)) {
          fail(quote(target.target) + " is incomplete in dial plan " + quote(plan.name) +
               " (rule " + quote(rule.name) + ")");
        }
        continue;
      }
      if (rule.pattern.translate(d.number, target.normalized)) {
        done = true;
        break;
      }
    }
    if (!done) {
      fail(quote(target.target) + " does not normalize: no rule of dial plan " +
           quote(plan.name) + " matches");
    }
  } else {
    fail("expected a number or a SIP URI, got " + quote(target.target));
  }
  if (target.normalized == user.number) fail("forwards the user to their own line");
}

}  // namespace

const User* Config::findUserByNumber(std::string_view e164) const {
  auto it = userByNumber.find(e164);
  return it == userByNumber.end() ? nullptr : &users[it->second];
}

const User* Config::findUserByUri(std::string_view uri) const {
  auto it = userByUri.find(uri);
  return it == userByUri.end() ? nullptr : &users[it->second];
}

const Trunk* Config::findTrunk(std::string_view name) const {
  auto it = trunkByName.find(name);
  return it == trunkByName.end() ? nullptr : &trunks[it->second];
}

std::shared_ptr<const Config> loadConfig(const config::Document& doc) {
  auto cfg = std::make_shared<Config>();
  cfg->file = doc.file();
  cfg->hash = sha256Prefix(doc.text());
  config::Object root = doc.root();
  cfg->service = readServiceSettings(root, "127.0.0.1:50052", "127.0.0.1:9102");
  cfg->domain = root.requireString("domain");
  if (cfg->domain.empty()) root.fail("domain", "must not be empty");
  {
    std::optional<config::Object> reg = root.optionalObject("registrar");
    config::Document empty = config::Document::parse("{}", "(defaults)");
    config::Object fallback = empty.root();
    config::Object& o = reg ? *reg : fallback;
    cfg->registrar.address =
        o.string("address", cfg->registrar.address, "MEDIUS_REGISTRAR_ADDRESS");
    try {
      checkGrpcTarget(cfg->registrar.address);  // one registrar, or "ipv4:" replicas
    } catch (const std::invalid_argument& e) {
      o.fail("address", e.what());
    }
    requireTlsOrLoopback(o, "address", cfg->registrar.address, cfg->service.grpcTls.has_value());
    cfg->registrar.timeoutMs = o.integer("timeout_ms", cfg->registrar.timeoutMs, 1, 60'000);
    o.finish();
  }
  readDialPlans(root, *cfg);
  readTrunks(root, *cfg);
  readRoutes(root, *cfg);
  readUsagesAndPolicies(root, *cfg);
  std::vector<std::string> userPaths;
  readUsers(root, *cfg, userPaths);
  root.finish();
  for (std::size_t i = 0; i < cfg->users.size(); ++i) {
    User& user = cfg->users[i];
    std::string fw = userPaths[i] + ".forwarding";
    if (user.forwardImmediate) resolveTarget(*cfg, user, *user.forwardImmediate, fw + ".immediate");
    if (user.forwardNoAnswer) resolveTarget(*cfg, user, *user.forwardNoAnswer, fw + ".no_answer");
    if (user.forwardUnavailable) {
      resolveTarget(*cfg, user, *user.forwardUnavailable, fw + ".unavailable");
    }
    if (user.simultaneousRing) {
      resolveTarget(*cfg, user, *user.simultaneousRing, userPaths[i] + ".simultaneous_ring");
    }
  }
  return cfg;
}

std::shared_ptr<const Config> loadConfigText(std::string_view text, const std::string& name) {
  return loadConfig(config::Document::parse(text, name));
}

void trunkMedia(const Trunk& trunk, v1::TrunkMedia& media) {
  media.set_srtp(trunk.srtp);
  media.mutable_codecs()->Reserve(static_cast<int>(trunk.codecs.size()));
  for (const auto& codec : trunk.codecs) media.add_codecs(codec);
}

const std::string& configHash(const Config& config) { return config.hash; }
const ServiceSettings& serviceSettings(const Config& config) { return config.service; }
const RegistrarSettings& registrarSettings(const Config& config) { return config.registrar; }

std::vector<std::string> trunkNames(const Config& config) {
  std::vector<std::string> names;
  names.reserve(config.trunks.size());
  for (const auto& t : config.trunks) names.push_back(t.name);
  return names;
}

v1::TrunkInfo trunkInfo(const Config& config, const std::string& trunk) {
  const Trunk* t = config.findTrunk(trunk);
  if (!t) throw std::out_of_range("unknown trunk \"" + trunk + "\"");
  v1::TrunkInfo info;
  info.set_name(t->name);
  info.mutable_address()->set_host(t->address.host);
  info.mutable_address()->set_port(t->address.port);
  info.mutable_address()->set_transport(t->transport);
  info.set_max_concurrent_calls(t->maxConcurrentCalls);
  info.set_trusted(t->trusted);
  info.set_tls_name(t->tlsName);
  trunkMedia(*t, *info.mutable_media());
  return info;
}

}  // namespace medius::routing
