#include "medius/registrar/config.hpp"

#include <set>

#include "medius/common/config.hpp"

namespace medius::registrar {

namespace {

bool isLowerOrUpperHex(std::string_view s) {
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!ok) return false;
  }
  return true;
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string readHa1(config::Object& user, std::string_view key, std::size_t digits) {
  auto v = user.optionalString(key);
  if (!v) return {};
  if (v->size() != digits || !isLowerOrUpperHex(*v)) {
    user.fail(key, "expected " + std::to_string(digits) + " hex digits (H(username:realm:password))");
  }
  return lower(*v);
}

StoreConfig readStore(config::Object& root) {
  StoreConfig s;
  std::optional<config::Object> obj = root.optionalObject("store");
  config::Document empty = config::Document::parse("{}", "(defaults)");
  config::Object fallback = empty.root();
  config::Object& o = obj ? *obj : fallback;
  std::string type = o.choice("type", "memory", {"memory", "redis"}, "MEDIUS_STORE");
  s.type = type == "redis" ? StoreConfig::Type::Redis : StoreConfig::Type::Memory;
  s.address = o.string("address", s.address, "MEDIUS_REDIS_ADDRESS");
  try {
    config::parseHostPort(s.address);
  } catch (const std::invalid_argument& e) {
    if (const char* env = std::getenv("MEDIUS_REDIS_ADDRESS"); env && *env) {
      throw config::ConfigError("environment variable MEDIUS_REDIS_ADDRESS", "", e.what());
    }
    o.fail("address", e.what());
  }
  s.keyPrefix = o.string("key_prefix", s.keyPrefix);
  s.timeoutMs = o.integer("timeout_ms", s.timeoutMs, 1, 60'000);
  o.finish();
  return s;
}

ExpiryConfig readExpiry(config::Object& root) {
  ExpiryConfig e;
  auto obj = root.optionalObject("expiry");
  if (!obj) return e;
  constexpr std::int64_t kMax = 10 * 365 * 24 * 3600;  // ten years fits in uint32
  e.minSeconds = static_cast<std::uint32_t>(obj->integer("min_seconds", e.minSeconds, 1, kMax));
  e.defaultSeconds =
      static_cast<std::uint32_t>(obj->integer("default_seconds", e.defaultSeconds, 1, kMax));
  e.maxSeconds = static_cast<std::uint32_t>(obj->integer("max_seconds", e.maxSeconds, 1, kMax));
  if (e.maxSeconds < e.minSeconds) {
    obj->fail("max_seconds", "must not be less than min_seconds (" +
                                 std::to_string(e.minSeconds) + ")");
  }
  if (e.defaultSeconds < e.minSeconds || e.defaultSeconds > e.maxSeconds) {
    obj->fail("default_seconds", "must be between min_seconds (" + std::to_string(e.minSeconds) +
                                     ") and max_seconds (" + std::to_string(e.maxSeconds) + ")");
  }
  obj->finish();
  return e;
}

AuthConfig readAuth(config::Object& root, const std::string& domain) {
  AuthConfig a;
  a.realm = domain;
  auto obj = root.optionalObject("auth");
  if (!obj) return a;
  a.required = obj->boolean("required", a.required);
  a.realm = obj->string("realm", domain);
  if (a.realm.empty() || a.realm.find('"') != std::string::npos) {
    obj->fail("realm", "must be non-empty and contain no double quote");
  }
  auto names = obj->strings("algorithms", {"SHA-256", "MD5"});
  if (names.empty()) obj->fail("algorithms", "must list at least one of \"SHA-256\", \"MD5\"");
  a.algorithms.clear();
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::string key = "algorithms[" + std::to_string(i) + "]";
    digest::Algorithm alg;
    if (names[i] == "MD5") {
      alg = digest::Algorithm::Md5;
    } else if (names[i] == "SHA-256") {
      alg = digest::Algorithm::Sha256;
    } else {
      obj->fail(key, "expected \"SHA-256\" or \"MD5\", got \"" + names[i] + "\"");
    }
    for (auto seen : a.algorithms) {
      if (seen == alg) obj->fail(key, "\"" + names[i] + "\" is listed twice");
    }
    a.algorithms.push_back(alg);
  }
  a.nonceTtlSeconds = obj->integer("nonce_ttl_seconds", a.nonceTtlSeconds, 1, 86'400);
  a.nonceSecret = obj->optionalString("nonce_secret");
  if (a.nonceSecret && a.nonceSecret->size() < 16) {
    obj->fail("nonce_secret", "must be at least 16 characters long");
  }
  obj->finish();
  return a;
}

}  // namespace

std::optional<Aor> parseAor(std::string_view text) {
  if (text.substr(0, 4) != "sip:") return std::nullopt;
  std::string_view rest = text.substr(4);
  auto at = rest.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= rest.size()) return std::nullopt;
  Aor aor{std::string(rest.substr(0, at)), std::string(rest.substr(at + 1))};
  for (char c : aor.user) {
    if (c == '@' || c == ';' || c == '?' || c == ':' || c == ' ' || c == '<' || c == '>') {
      return std::nullopt;
    }
  }
  for (char c : aor.domain) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-';
    if (!ok) return std::nullopt;
  }
  return aor;
}

const std::string& UserConfig::ha1For(digest::Algorithm algorithm) const {
  switch (algorithm) {
    case digest::Algorithm::Md5:
    case digest::Algorithm::Md5Sess: return ha1Md5;
    case digest::Algorithm::Sha256:
    case digest::Algorithm::Sha256Sess: return ha1Sha256;
  }
  return ha1Md5;
}

const UserConfig* RegistrarConfig::findUser(std::string_view username) const {
  for (const auto& u : users) {
    if (u.username == username) return &u;
  }
  return nullptr;
}

std::string RegistrarConfig::summary() const {
  std::string algs;
  for (auto a : auth.algorithms) algs += (algs.empty() ? "" : ",") + std::string(digest::algorithmName(a));
  return "domain=" + domain + " grpc=" + service.grpcListen + " metrics=" + service.metricsListen +
         " store=" + (store.type == StoreConfig::Type::Redis ? "redis(" + store.address + ", prefix " + store.keyPrefix + ")" : std::string("memory")) +
         " expiry=" + std::to_string(expiry.minSeconds) + "/" + std::to_string(expiry.defaultSeconds) +
         "/" + std::to_string(expiry.maxSeconds) + "s max_contacts=" + std::to_string(maxContactsPerAor) +
         " auth=" + (auth.required ? "required" : "off") + " realm=" + auth.realm + " algorithms=" + algs +
         " nonce_secret=" + (auth.nonceSecret ? "<redacted>" : "<shared>") +
         " users=" + std::to_string(users.size());
}

namespace {

RegistrarConfig fromDocument(const config::Document& doc) {
  RegistrarConfig c;
  c.file = doc.file();
  config::Object root = doc.root();
  c.service = readServiceSettings(root, "127.0.0.1:50051", "127.0.0.1:9101");
  c.domain = root.requireString("domain");
  if (!parseAor("sip:x@" + c.domain)) root.fail("domain", "expected a domain name such as example.com");
  c.store = readStore(root);
  c.expiry = readExpiry(root);
  c.maxContactsPerAor = static_cast<std::uint32_t>(root.integer("max_contacts_per_aor", 10, 1, 1000));
  c.sweepIntervalMs = root.integer("sweep_interval_ms", 1000, 10, 3'600'000);
  c.auth = readAuth(root, c.domain);

  std::set<std::string> names;
  for (auto& u : root.objects("users")) {
    UserConfig user;
    user.username = u.requireString("username");
    if (user.username.empty()) u.fail("username", "must not be empty");
    if (!names.insert(user.username).second) u.fail("username", "duplicate user \"" + user.username + "\"");
    user.aor = u.requireString("aor");
    auto aor = parseAor(user.aor);
    if (!aor) u.fail("aor", "expected sip:user@" + c.domain + ", got \"" + user.aor + "\"");
    if (aor->domain != c.domain) {
      u.fail("aor", "must be in the domain " + c.domain + ", got \"" + user.aor + "\"");
    }
    user.ha1Md5 = readHa1(u, "ha1_md5", 32);
    user.ha1Sha256 = readHa1(u, "ha1_sha256", 64);
    if (user.ha1Md5.empty() && user.ha1Sha256.empty()) {
      u.fail("", "needs ha1_md5 or ha1_sha256");
    }
    for (auto alg : c.auth.algorithms) {
      if (user.ha1For(alg).empty()) {
        u.fail(alg == digest::Algorithm::Md5 ? "ha1_md5" : "ha1_sha256",
               "missing required field (auth.algorithms lists " +
                   std::string(digest::algorithmName(alg)) + ")");
      }
    }
    u.finish();
    c.users.push_back(std::move(user));
  }
  root.finish();
  return c;
}

}  // namespace

RegistrarConfig load(const std::string& path) { return fromDocument(config::Document::load(path)); }

RegistrarConfig parse(std::string_view text, const std::string& name) {
  return fromDocument(config::Document::parse(text, name));
}

}  // namespace medius::registrar
