#include "medius/gateway/config.hpp"

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>

#include <openssl/ssl.h>

#include <sofia-sip/su_alloc.h>
#include <sofia-sip/url.h>

#include "medius/common/grpc_tls.hpp"
#include "medius/common/media_policy.hpp"
#include "medius/gateway/media_client.hpp"
#include "medius/gateway/sip_tls.hpp"

namespace medius::gateway {

namespace {

std::vector<std::string> splitComma(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    auto first = item.find_first_not_of(" \t");
    auto last = item.find_last_not_of(" \t");
    if (first != std::string::npos) out.push_back(item.substr(first, last - first + 1));
    start = end + 1;
  }
  return out;
}

// "listen": [...] of a side block, with a comma-separated env override.
std::string notListenUrl(const std::string& url, const char* side) {
  if (url.rfind("sips:", 0) == 0) {
    return "\"" + url + "\" is a sips: URL: TLS listens through " + side + ".tls.listen";
  }
  return "\"" + url + "\" is not a sip: URL with a host";
}

// "listen": [...] of a side block, with a comma-separated env override; `extra` reads the
// block's other keys.
std::vector<std::string> readListen(config::Object& root, const char* side,
                                    std::vector<std::string> fallback, const char* env,
                                    const std::function<void(config::Object&)>& extra = {}) {
  std::vector<std::string> urls = std::move(fallback);
  if (auto block = root.optionalObject(side)) {
    if (extra) extra(*block);
    urls = block->strings("listen", urls);
    if (const char* value = std::getenv(env); value && *value) {
      urls = splitComma(value);
      if (urls.empty()) throw config::ConfigError(std::string("environment variable ") + env, "",
                                                  "no listen URL");
      for (const auto& url : urls) {
        if (!isListenUrl(url)) {
          throw config::ConfigError(std::string("environment variable ") + env, "",
                                    notListenUrl(url, side));
        }
      }
      block->finish();
      return urls;
    }
    if (urls.empty()) block->fail("listen", "at least one URL is required");
    for (const auto& url : urls) {
      if (!isListenUrl(url)) block->fail("listen", notListenUrl(url, side));
    }
    block->finish();
    return urls;
  }
  if (const char* value = std::getenv(env); value && *value) {
    urls = splitComma(value);
    for (const auto& url : urls) {
      if (!isListenUrl(url)) {
        throw config::ConfigError(std::string("environment variable ") + env, "",
                                  notListenUrl(url, side));
      }
    }
  }
  return urls;
}

// internal.tls and trunk.tls: every file is read and checked here, so that a bad one stops
// the start with the file and the problem (Sofia would listen and fail every handshake
// silently). On the trunk side the peers are trunks: their certificates are always
// verified (ca is required, client certificates are required unless turned off) and
// pinned per trunk (routing.json's tls_name), so trusted_names has no place there.
SipTlsSettings readTls(config::Object& tls, const std::string& baseDir, bool trunkSide) {
  SipTlsSettings t;
  const std::string envPrefix = trunkSide ? "MEDIUS_TRUNK_TLS_" : "MEDIUS_INTERNAL_TLS_";
  auto env = [&](const char* suffix) { return envPrefix + suffix; };
  auto path = [&](const char* key, const std::string& envName, bool required) {
    std::string value = tls.string(key, "", envName.c_str());
    if (required && value.empty()) tls.fail(key, "is required");
    std::filesystem::path p(value);
    if (!value.empty() && p.is_relative() && !baseDir.empty()) p = std::filesystem::path(baseDir) / p;
    return value.empty() ? std::string() : p.string();
  };
  t.listen = tls.string("listen", "", env("LISTEN").c_str());
  if (!isTlsListenUrl(t.listen)) {
    tls.fail("listen", "\"" + t.listen + "\" is not a sips: URL with a host (\"sips:127.0.0.1:5061\")");
  }
  t.certFile = path("cert", env("CERT"), true);
  t.keyFile = path("key", env("KEY"), true);
  t.caFile = path("ca", env("CA"), trunkSide);
  t.requireClientCert = tls.boolean("require_client_cert", trunkSide);
  if (trunkSide) {
    if (tls.has("trusted_names")) {
      tls.fail("trusted_names", "belongs to internal.tls: a trunk is trusted through routing.json "
                                "(its \"trusted\" flag), its certificate pinned by its tls_name");
    }
  } else {
    t.trustedNames = tls.strings("trusted_names", {});
  }
  for (const auto& name : t.trustedNames) {
    if (name.empty() || name.find('*') != std::string::npos) {
      tls.fail("trusted_names", "\"" + name + "\": names are exact (no empty names, no wildcards)");
    }
  }
  if (t.caFile.empty() && t.requireClientCert) {
    tls.fail("require_client_cert", "needs \"ca\" (the CA that signs client certificates)");
  }
  if (t.caFile.empty() && !t.trustedNames.empty()) {
    tls.fail("trusted_names", "needs \"ca\": a peer's name is only trusted once its certificate verifies");
  }
  t.ciphers = tls.string("ciphers", kDefaultSipTlsCiphers);
  {
    SSL_CTX* probe = SSL_CTX_new(TLS_server_method());
    bool ok = probe && SSL_CTX_set_cipher_list(probe, t.ciphers.c_str()) == 1;
    SSL_CTX_free(probe);
    if (!ok) tls.fail("ciphers", "\"" + t.ciphers + "\" selects no cipher OpenSSL knows");
  }
  t.reloadIntervalS = tls.integer("reload_interval_s", 60, 0, 86400);
  try {
    loadTlsCredentials(t, std::time(nullptr));
  } catch (const TlsFileError& e) {
    tls.fail(e.field(), e.what());
  }
  tls.finish();
  return t;
}

void readFlood(config::Object& block, FloodSettings& f) {
  f.enabled = block.boolean("enabled", f.enabled);
  f.windowMs = block.integer("window_ms", f.windowMs, 100, 60000);
  f.maxRequests = block.integer("max_requests", f.maxRequests, 1, 1000000);
  f.banSeconds = block.integer("ban_s", f.banSeconds, 1, 86400);
  f.maxSources = block.integer("max_sources", f.maxSources, 16, 1000000);
  f.maxRequestsPerSecond =
      block.integer("max_requests_per_second", f.maxRequestsPerSecond, 0, 1000000);
  f.retryAfterSeconds = block.integer("retry_after_s", f.retryAfterSeconds, 0, 86400);
  f.userAgentDeny = block.strings("user_agent_deny", f.userAgentDeny);
  for (const auto& p : f.userAgentDeny) {
    if (p.empty()) block.fail("user_agent_deny", "an empty pattern would match every request");
  }
  f.exempt.clear();
  for (const auto& text : block.strings("exempt", {})) {
    auto prefix = IpPrefix::parse(text);
    if (!prefix) {
      block.fail("exempt", "\"" + text + "\" is not an IP address or prefix (\"192.0.2.0/24\")");
    }
    f.exempt.push_back(*prefix);
  }
  block.finish();
}

void readAuthLimits(config::Object& block, AuthLimitSettings& a) {
  a.enabled = block.boolean("enabled", a.enabled);
  a.sourceMaxFailures = block.integer("max_failures_per_source", a.sourceMaxFailures, 1, 1000000);
  a.sourceWindowS = block.integer("source_window_s", a.sourceWindowS, 1, 86400);
  a.sourceBanS = block.integer("source_ban_s", a.sourceBanS, 1, 86400);
  a.userMaxFailures = block.integer("max_failures_per_user", a.userMaxFailures, 1, 1000000);
  a.userWindowS = block.integer("user_window_s", a.userWindowS, 1, 86400);
  a.userLockS = block.integer("user_lock_s", a.userLockS, 1, 86400);
  a.knownSourceS = block.integer("known_source_s", a.knownSourceS, 0, 31 * 86400);
  a.maxEntries = block.integer("max_entries", a.maxEntries, 16, 1000000);
  block.finish();
}

}  // namespace

bool isTlsListenUrl(const std::string& url) {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  url_t* parsed = url_make(home, url.c_str());
  bool ok = parsed && parsed->url_type == url_sips && parsed->url_host && *parsed->url_host &&
            !parsed->url_user;
  su_home_deinit(home);
  return ok;
}

bool isListenUrl(const std::string& url) {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  url_t* parsed = url_make(home, url.c_str());
  // TLS (sips:) has its own block (internal.tls) with the certificate.
  bool ok = parsed && parsed->url_type == url_sip && parsed->url_host && *parsed->url_host &&
            !parsed->url_user;
  su_home_deinit(home);
  return ok;
}

GatewayConfig loadConfig(const config::Document& doc) {
  GatewayConfig c;
  config::Object root = doc.root();
  c.service = readServiceSettings(root, "127.0.0.1:50054", "127.0.0.1:9104");
  c.gatewayId = root.string("gateway_id", "gw1", "MEDIUS_GATEWAY_ID");
  if (c.gatewayId.empty()) root.fail("gateway_id", "must not be empty");
  c.domain = root.requireString("domain");
  if (c.domain.empty()) root.fail("domain", "must not be empty");
  std::filesystem::path file(doc.file());
  std::string baseDir = file.has_parent_path() ? file.parent_path().string() : std::string();
  c.internalListen = readListen(root, "internal", c.internalListen, "MEDIUS_INTERNAL_LISTEN",
                                [&](config::Object& internal) {
                                  if (auto tls = internal.optionalObject("tls")) {
                                    c.internalTls = readTls(*tls, baseDir, false);
                                  }
                                });
  c.trunkListen = readListen(root, "trunk", c.trunkListen, "MEDIUS_TRUNK_LISTEN",
                             [&](config::Object& trunk) {
                               if (auto tls = trunk.optionalObject("tls")) {
                                 c.trunkTls = readTls(*tls, baseDir, true);
                               }
                             });
  if (auto registrar = root.optionalObject("registrar")) {
    c.registrarAddress = registrar->string("address", c.registrarAddress, "MEDIUS_REGISTRAR_ADDRESS");
    try {
      checkGrpcTarget(c.registrarAddress);  // one registrar, or "ipv4:" replicas
    } catch (const std::invalid_argument& e) {
      registrar->fail("address", e.what());
    }
    requireTlsOrLoopback(*registrar, "address", c.registrarAddress, c.service.grpcTls.has_value());
    c.registrarTimeoutMs = registrar->integer("timeout_ms", 2000, 1, 60000);
    registrar->finish();
  } else if (const char* value = std::getenv("MEDIUS_REGISTRAR_ADDRESS"); value && *value) {
    c.registrarAddress = value;
  }
  if (auto routing = root.optionalObject("routing")) {
    c.routingAddress = routing->string("address", c.routingAddress, "MEDIUS_ROUTING_ADDRESS");
    try {
      config::parseHostPort(c.routingAddress);
    } catch (const std::invalid_argument& e) {
      routing->fail("address", e.what());
    }
    requireTlsOrLoopback(*routing, "address", c.routingAddress, c.service.grpcTls.has_value());
    c.routingTimeoutMs = routing->integer("timeout_ms", 1000, 1, 60000);
    routing->finish();
  } else if (const char* value = std::getenv("MEDIUS_ROUTING_ADDRESS"); value && *value) {
    c.routingAddress = value;
  }
  if (auto keepalive = root.optionalObject("trunk_keepalive")) {
    c.keepaliveIntervalMs = keepalive->integer("interval_ms", 5000, 100, 300000);
    c.keepaliveFailuresToDown = keepalive->integer("failures_to_down", 2, 1, 100);
    c.keepaliveSuccessesToUp = keepalive->integer("successes_to_up", 1, 1, 100);
    keepalive->finish();
  }
  if (auto media = root.optionalObject("media")) {
    c.mediaWorkers = media->strings("workers", c.mediaWorkers);
    if (const char* value = std::getenv("MEDIUS_MEDIA_WORKERS"); value && *value) {
      c.mediaWorkers = splitComma(value);
    }
    if (c.mediaWorkers.empty()) media->fail("workers", "at least one worker address is required");
    for (const auto& worker : c.mediaWorkers) {
      // "host:port", or "dns:host:port" (every address of host, re-resolved).
      std::string target = worker;
      try {
        if (auto name = parseDnsWorker(worker)) target = name->first + ":" + name->second;
        config::parseHostPort(target);
      } catch (const std::invalid_argument& e) {
        media->fail("workers", "\"" + worker + "\": " + e.what());
      }
      requireTlsOrLoopback(*media, "workers", target, c.service.grpcTls.has_value());
    }
    c.mediaDiscoveryIntervalMs = media->integer("discovery_interval_ms", 5000, 100, 300000);
    c.mediaTimeoutMs = media->integer("timeout_ms", 1000, 1, 60000);
    c.mediaInactivityMs = media->integer("media_timeout_ms", 0, 0, 3600000);
    c.internalSrtp = config::readSrtpPolicy(*media, "internal_srtp", c.internalSrtp);
    c.internalCodecs = config::readCodecs(*media, "internal_codecs", c.internalCodecs);
    media->finish();
  } else if (const char* value = std::getenv("MEDIUS_MEDIA_WORKERS"); value && *value) {
    c.mediaWorkers = splitComma(value);
  }
  if (auto calls = root.optionalObject("calls")) {
    c.cdrFile = calls->string("cdr_file", "", "MEDIUS_CDR_FILE");
    c.noAnswerTimeoutMs = calls->integer("no_answer_timeout_ms", 60000, 1000, 600000);
    c.rccDialogEvents = calls->boolean("rcc_dialog_events", true);
    c.maxCalls = calls->integer("max_calls", 10000, 1, 1000000);
    c.minSeS = calls->integer("min_se_s", 90, 1, 86400);
    c.sessionExpiresS = calls->integer("session_expires_s", 1800, c.minSeS, 86400);
    c.rel100 = calls->boolean("rel100", true);
    calls->finish();
  } else if (const char* value = std::getenv("MEDIUS_CDR_FILE"); value && *value) {
    c.cdrFile = value;
  }
  c.authRealm = c.domain;
  if (auto auth = root.optionalObject("auth")) {
    c.authCalls = auth->choice("calls", "required", {"required", "off"}) == "off"
                      ? CallAuthMode::Off
                      : CallAuthMode::Required;
    c.authRealm = auth->string("realm", c.domain);
    if (c.authRealm.empty()) auth->fail("realm", "must not be empty");
    for (char ch : c.authRealm) {
      // It goes into a quoted-string of the challenge and must match the registrar's.
      if (ch == '"' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20) {
        auth->fail("realm", "must be printable, without quotes or backslashes");
      }
    }
    c.authFromMustMatch = auth->boolean("from_must_match", true);
    auth->finish();
  }
  c.retryAfterSeconds = root.integer("retry_after_seconds", 5, 0, 86400);
  {
    std::optional<config::Object> drain = root.optionalObject("drain");
    config::Document empty = config::Document::parse("{}", "(defaults)");
    config::Object fallback = empty.root();
    config::Object& d = drain ? *drain : fallback;
    c.drainTimeoutSeconds =
        d.integer("timeout_seconds", c.drainTimeoutSeconds, 1, 86400, "MEDIUS_DRAIN_TIMEOUT_SECONDS");
    d.finish();
  }
  if (auto flows = root.optionalObject("flows")) {
    c.flowTimerSeconds = flows->integer("flow_timer_s", c.flowTimerSeconds, 0, 3600);
    c.flowPingIntervalMs = flows->integer("ping_interval_ms", c.flowPingIntervalMs, 100, 600000);
    c.flowUdpTimeoutMs = flows->integer("udp_timeout_ms", c.flowUdpTimeoutMs, 200, 3600000);
    flows->finish();
  }
  c.flood.maxDialogs = c.maxCalls;
  c.flood.retryAfterSeconds = c.retryAfterSeconds;
  if (auto security = root.optionalObject("security")) {
    if (auto flood = security->optionalObject("flood")) readFlood(*flood, c.flood);
    if (auto auth = security->optionalObject("auth")) readAuthLimits(*auth, c.authLimits);
    security->finish();
  }
  c.userAgent = root.string("user_agent", "Medius/0.1");
  for (char ch : c.userAgent) {
    if (ch == '\r' || ch == '\n') root.fail("user_agent", "must be one line");
  }
  root.finish();
  return c;
}

}  // namespace medius::gateway
