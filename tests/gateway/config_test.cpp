// gateway.json loading (medius/gateway/config.hpp): the call keys and the internal side's
// media policy.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "medius/common/config.hpp"
#include "medius/gateway/config.hpp"

namespace medius::gateway {
namespace {

GatewayConfig parse(std::string_view text) {
  return loadConfig(config::Document::parse(text, "gateway.json"));
}

// `text` is refused with an error naming gateway.json and containing `fragment`.
void expectError(std::string_view text, const std::string& fragment) {
  try {
    parse(text);
    ADD_FAILURE() << "accepted: " << text;
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("gateway.json"), std::string::npos) << e.what();
  }
}

TEST(GatewayConfig, CallDefaults) {
  auto c = parse(R"({"domain": "example.com"})");
  EXPECT_EQ(c.sessionExpiresS, 1800);
  EXPECT_EQ(c.minSeS, 90);
  EXPECT_TRUE(c.rel100);
  EXPECT_EQ(c.noAnswerTimeoutMs, 60000);
  EXPECT_EQ(c.maxCalls, 10000);
  EXPECT_TRUE(c.rccDialogEvents);
}

TEST(GatewayConfig, ReadsTheCallKeys) {
  auto c = parse(R"({"domain": "example.com", "calls": {"rel100": false, "min_se_s": 120, "session_expires_s": 600,
                               "no_answer_timeout_ms": 30000, "max_calls": 50,
                               "rcc_dialog_events": false}})");
  EXPECT_FALSE(c.rel100);
  EXPECT_FALSE(c.rccDialogEvents);
  EXPECT_EQ(c.minSeS, 120);
  EXPECT_EQ(c.sessionExpiresS, 600);
  EXPECT_EQ(c.noAnswerTimeoutMs, 30000);
  EXPECT_EQ(c.maxCalls, 50);
}

TEST(GatewayConfig, BadCallKeysNameTheirPath) {
  expectError(R"({"domain": "example.com", "calls": {"rel100": "yes"}})", "calls.rel100");
  expectError(R"({"domain": "example.com", "calls": {"rcc_dialog_events": 1}})",
              "calls.rcc_dialog_events");
  // Session-Expires may not be below Min-SE.
  expectError(R"({"domain": "example.com", "calls": {"min_se_s": 600, "session_expires_s": 300}})",
              "calls.session_expires_s");
  expectError(R"({"domain": "example.com", "calls": {"prack": true}})", "calls.prack");
}

TEST(GatewayConfig, CallsNeedCredentialsByDefault) {
  auto c = parse(R"({"domain": "example.com"})");
  EXPECT_EQ(c.authCalls, CallAuthMode::Required);
  EXPECT_EQ(c.authRealm, "example.com");
  EXPECT_TRUE(c.authFromMustMatch);
  c = parse(R"({"domain": "example.com", "auth": {"calls": "off", "realm": "corp.example",
                "from_must_match": false}})");
  EXPECT_EQ(c.authCalls, CallAuthMode::Off);
  EXPECT_EQ(c.authRealm, "corp.example");
  EXPECT_FALSE(c.authFromMustMatch);
}

TEST(GatewayConfig, BadAuthKeysNameFileAndPath) {
  auto expectError = [](std::string_view auth, const std::string& path, const std::string& problem) {
    std::string text = R"({"domain": "example.com", "auth": )" + std::string(auth) + "}";
    try {
      parse(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const config::ConfigError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("gateway.json: " + path + ": "), std::string::npos) << what;
      EXPECT_NE(what.find(problem), std::string::npos) << what;
    }
  };
  expectError(R"({"calls": "optional"})", "$.auth.calls", "required");
  expectError(R"({"calls": false})", "$.auth.calls", "");
  expectError(R"({"realm": ""})", "$.auth.realm", "must not be empty");
  expectError(R"({"realm": "ex\"ample"})", "$.auth.realm", "quotes");
  expectError(R"({"from_must_match": "no"})", "$.auth.from_must_match", "");
  expectError(R"({"required": true})", "$.auth.required", "unknown key");
}

TEST(GatewayConfig, InternalMediaDefaults) {
  auto c = parse(R"({"domain": "example.com"})");
  EXPECT_EQ(c.internalSrtp, v1::SRTP_POLICY_REQUIRED);
  EXPECT_EQ(c.internalCodecs, (std::vector<std::string>{"opus", "G722", "PCMU", "PCMA"}));
  // A media block without the keys keeps the defaults.
  c = parse(R"({"domain": "example.com", "media": {"timeout_ms": 500}})");
  EXPECT_EQ(c.internalSrtp, v1::SRTP_POLICY_REQUIRED);
  EXPECT_EQ(c.internalCodecs.size(), 4u);
}

TEST(GatewayConfig, ReadsTheInternalMediaKeys) {
  auto c = parse(R"({"domain": "example.com", "media": {"internal_srtp": "optional",
                     "internal_codecs": ["Opus", "pcma", "g729"]}})");
  EXPECT_EQ(c.internalSrtp, v1::SRTP_POLICY_OPTIONAL);
  EXPECT_EQ(c.internalCodecs, (std::vector<std::string>{"opus", "PCMA", "G729"}));
  EXPECT_EQ(parse(R"({"domain": "example.com", "media": {"internal_srtp": "off"}})").internalSrtp,
            v1::SRTP_POLICY_OFF);
}

// The reference lab's internal clients are SIPp (no SRTP): its gateway.json relaxes the
// default "required" to "optional" (see the medius script and docs/configuration.md).
// Its TLS listener's throwaway certificates come from deploy/certs/make-certs.sh (./medius
// up runs it into .medius/certs and points MEDIUS_INTERNAL_TLS_* at them, as done here).
TEST(GatewayConfig, TheLabAllowsPlainRtpInside) {
  std::string source = MEDIUS_SOURCE_DIR;
  std::string certs = ::testing::TempDir() + "medius-lab-certs-" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("'" + source + "/deploy/certs/make-certs.sh' '" + certs + "' >/dev/null").c_str()),
            0);
  ::setenv("MEDIUS_INTERNAL_TLS_CERT", (certs + "/gateway.pem").c_str(), 1);
  ::setenv("MEDIUS_INTERNAL_TLS_KEY", (certs + "/gateway.key").c_str(), 1);
  ::setenv("MEDIUS_INTERNAL_TLS_CA", (certs + "/ca.pem").c_str(), 1);
  auto c = loadConfig(config::Document::load(source + "/examples/local/gateway.json"));
  for (const char* name : {"MEDIUS_INTERNAL_TLS_CERT", "MEDIUS_INTERNAL_TLS_KEY", "MEDIUS_INTERNAL_TLS_CA"}) {
    ::unsetenv(name);
  }
  std::filesystem::remove_all(certs);
  EXPECT_EQ(c.internalSrtp, v1::SRTP_POLICY_OPTIONAL);
  EXPECT_EQ(c.internalCodecs, (std::vector<std::string>{"opus", "G722", "PCMU", "PCMA"}));
  ASSERT_TRUE(c.internalTls);
  EXPECT_EQ(c.internalTls->listen, "sips:127.0.0.1:5061");
  EXPECT_EQ(c.internalTls->certFile, certs + "/gateway.pem");
  EXPECT_FALSE(c.internalTls->requireClientCert);
}

TEST(GatewayConfig, BadInternalMediaKeysNameTheirPath) {
  auto expectError = [](std::string_view media, const std::string& path,
                        const std::string& problem) {
    std::string text = R"({"domain": "example.com", "media": )" + std::string(media) + "}";
    try {
      parse(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const config::ConfigError& e) {
      EXPECT_EQ(e.file(), "gateway.json");
      EXPECT_EQ(e.path(), path) << e.what();
      EXPECT_NE(e.problem().find(problem), std::string::npos) << e.what();
    }
  };
  expectError(R"({"internal_srtp": "mandatory"})", "$.media.internal_srtp",
              "expected one of \"off\", \"optional\", \"required\"");
  expectError(R"({"internal_codecs": ["opus", "speex"]})", "$.media.internal_codecs[1]",
              "unknown codec \"speex\"");
  expectError(R"({"internal_codecs": ["opus", "G722", "OPUS"]})", "$.media.internal_codecs[2]",
              "codec \"opus\" is listed twice");
  expectError(R"({"internal_codecs": []})", "$.media.internal_codecs", "at least one codec");
  expectError(R"({"internal_codec": ["opus"]})", "$.media.internal_codec", "unknown key");
  // Workers found by name: a host and a port after "dns:", and plaintext only to loopback.
  expectError(R"({"workers": ["dns:"]})", "$.media.workers", "\"dns:\"");
  expectError(R"({"workers": ["dns:media"]})", "$.media.workers", "\"dns:media\"");
  expectError(R"({"workers": ["dns:media.medius.svc:50053"]})", "$.media.workers",
              "not a loopback address");
  expectError(R"({"discovery_interval_ms": 10})", "$.media.discovery_interval_ms", "");
}

TEST(GatewayConfig, ReadsWorkersFoundByName) {
  auto c = parse(R"({"domain": "example.com", "media": {"workers": ["dns:localhost:50053",
                     "127.0.0.1:50055"], "discovery_interval_ms": 2000}})");
  EXPECT_EQ(c.mediaWorkers,
            (std::vector<std::string>{"dns:localhost:50053", "127.0.0.1:50055"}));
  EXPECT_EQ(c.mediaDiscoveryIntervalMs, 2000);
  EXPECT_EQ(parse(R"({"domain": "example.com"})").mediaDiscoveryIntervalMs, 5000);
}

TEST(GatewayConfig, DrainTimeout) {
  EXPECT_EQ(parse(R"({"domain": "example.com"})").drainTimeoutSeconds, 600);
  EXPECT_EQ(parse(R"({"domain": "example.com", "drain": {"timeout_seconds": 30}})")
                .drainTimeoutSeconds, 30);
  for (const char* bad : {R"({"domain": "example.com", "drain": {"timeout_seconds": 0}})",
                          R"({"domain": "example.com", "drain": {"timeout_seconds": "1m"}})",
                          R"({"domain": "example.com", "drain": {"timeout_s": 30}})"}) {
    try {
      parse(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const config::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("$.drain.timeout_s"), std::string::npos) << e.what();
    }
  }
}

TEST(GatewayConfig, FloodDefaults) {
  auto c = parse(
      R"({"domain": "example.com", "retry_after_seconds": 9, "calls": {"max_calls": 40}})");
  EXPECT_TRUE(c.flood.enabled);
  EXPECT_EQ(c.flood.windowMs, 2000);
  EXPECT_EQ(c.flood.maxRequests, 400);
  EXPECT_EQ(c.flood.banSeconds, 60);
  EXPECT_EQ(c.flood.maxSources, 16384);
  EXPECT_EQ(c.flood.maxRequestsPerSecond, 0);
  // The dialog limit is calls.max_calls; the 503's Retry-After defaults to the gateway's.
  EXPECT_EQ(c.flood.maxDialogs, 40);
  EXPECT_EQ(c.flood.retryAfterSeconds, 9);
  const auto& deny = c.flood.userAgentDeny;
  EXPECT_NE(std::find(deny.begin(), deny.end(), "friendly-scanner"), deny.end());
  EXPECT_TRUE(c.flood.exempt.empty());
}

TEST(GatewayConfig, ReadsTheFloodKeys) {
  auto c = parse(R"({"domain": "example.com", "security": {"flood": {
      "enabled": false, "window_ms": 500, "max_requests": 7, "ban_s": 3, "max_sources": 100,
      "max_requests_per_second": 250, "retry_after_s": 30,
      "user_agent_deny": ["EvilTool"], "exempt": ["192.0.2.0/24", "2001:db8::1"]}}})");
  EXPECT_FALSE(c.flood.enabled);
  EXPECT_EQ(c.flood.windowMs, 500);
  EXPECT_EQ(c.flood.maxRequests, 7);
  EXPECT_EQ(c.flood.banSeconds, 3);
  EXPECT_EQ(c.flood.maxSources, 100);
  EXPECT_EQ(c.flood.maxRequestsPerSecond, 250);
  EXPECT_EQ(c.flood.retryAfterSeconds, 30);
  EXPECT_EQ(c.flood.userAgentDeny, std::vector<std::string>{"EvilTool"});
  ASSERT_EQ(c.flood.exempt.size(), 2u);
  EXPECT_TRUE(c.flood.exempt[0].contains(*IpAddress::parse("192.0.2.9")));
  EXPECT_TRUE(c.flood.exempt[1].contains(*IpAddress::parse("2001:db8::1")));
}

TEST(GatewayConfig, BadFloodKeysNameTheirPath) {
  expectError(R"({"domain": "example.com", "security": {"flood": {"window_ms": 0}}})",
              "security.flood.window_ms");
  expectError(R"({"domain": "example.com", "security": {"flood": {"max_requests": "many"}}})",
              "security.flood.max_requests");
  expectError(R"({"domain": "example.com", "security": {"flood": {"max_sources": 1}}})",
              "security.flood.max_sources");
  expectError(
      R"({"domain": "example.com", "security": {"flood": {"exempt": ["trunk.example.com"]}}})",
      "security.flood.exempt");
  expectError(R"({"domain": "example.com", "security": {"flood": {"exempt": ["10.200.0.0/40"]}}})",
              "10.200.0.0/40");
  expectError(R"({"domain": "example.com", "security": {"flood": {"user_agent_deny": [""]}}})",
              "security.flood.user_agent_deny");
  expectError(R"({"domain": "example.com", "security": {"flood": {"ban": 5}}})",
              "security.flood.ban");
  expectError(R"({"domain": "example.com", "security": {"flod": {}}})", "security.flod");
}

TEST(GatewayConfig, AuthLimitDefaultsAndKeys) {
  auto d = parse(R"({"domain": "example.com"})");
  EXPECT_TRUE(d.authLimits.enabled);
  EXPECT_EQ(d.authLimits.sourceMaxFailures, 10);
  EXPECT_EQ(d.authLimits.sourceWindowS, 60);
  EXPECT_EQ(d.authLimits.sourceBanS, 600);
  EXPECT_EQ(d.authLimits.userMaxFailures, 20);
  EXPECT_EQ(d.authLimits.userWindowS, 300);
  EXPECT_EQ(d.authLimits.userLockS, 300);
  EXPECT_EQ(d.authLimits.knownSourceS, 86400);
  EXPECT_EQ(d.authLimits.maxEntries, 16384);
  auto c = parse(R"({"domain": "example.com", "security": {"auth": {
      "enabled": false, "max_failures_per_source": 3, "source_window_s": 10, "source_ban_s": 20,
      "max_failures_per_user": 4, "user_window_s": 30, "user_lock_s": 40, "known_source_s": 0,
      "max_entries": 100}}})");
  EXPECT_FALSE(c.authLimits.enabled);
  EXPECT_EQ(c.authLimits.sourceMaxFailures, 3);
  EXPECT_EQ(c.authLimits.sourceWindowS, 10);
  EXPECT_EQ(c.authLimits.sourceBanS, 20);
  EXPECT_EQ(c.authLimits.userMaxFailures, 4);
  EXPECT_EQ(c.authLimits.userWindowS, 30);
  EXPECT_EQ(c.authLimits.userLockS, 40);
  EXPECT_EQ(c.authLimits.knownSourceS, 0);
  EXPECT_EQ(c.authLimits.maxEntries, 100);
  // The flood block is untouched by the auth block.
  EXPECT_EQ(c.flood.banSeconds, 60);
}

TEST(GatewayConfig, BadAuthLimitKeysNameTheirPath) {
  expectError(R"({"domain": "example.com", "security": {"auth": {"max_failures_per_source": 0}}})",
              "security.auth.max_failures_per_source");
  expectError(R"({"domain": "example.com", "security": {"auth": {"user_lock_s": 100000}}})",
              "security.auth.user_lock_s");
  expectError(R"({"domain": "example.com", "security": {"auth": {"source_ban_s": "long"}}})",
              "security.auth.source_ban_s");
  expectError(R"({"domain": "example.com", "security": {"auth": {"max_entries": 2}}})",
              "security.auth.max_entries");
  expectError(R"({"domain": "example.com", "security": {"auth": {"ban_s": 5}}})",
              "security.auth.ban_s");
}

}  // namespace
}  // namespace medius::gateway
