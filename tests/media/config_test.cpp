// media.json loading (medius/media/config.hpp).
#include <gtest/gtest.h>

#include <cstdlib>

#include "medius/common/config.hpp"
#include "medius/media/config.hpp"

namespace medius::media {
namespace {

TEST(MediaConfig, DefaultsMatchTheReferenceTopology) {
  auto c = parse("{}", "media.json");
  EXPECT_EQ(c.service.grpcListen, "127.0.0.1:50053");
  EXPECT_EQ(c.service.metricsListen, "127.0.0.1:9103");
  EXPECT_EQ(c.advertisedAddress, "127.0.0.1");
  EXPECT_EQ(c.bindAddress, "127.0.0.1");
  EXPECT_EQ(c.portRange.min, 20000);
  EXPECT_EQ(c.portRange.max, 29999);
  EXPECT_GE(c.workers, 1u);
  EXPECT_EQ(c.mediaTimeoutMs, 30000u);
  EXPECT_FALSE(c.strictSource);
}

TEST(MediaConfig, ReadsEveryKey) {
  auto c = parse(R"({"advertised_address": "203.0.113.5", "bind_address": "0.0.0.0",
                    "port_range": {"min": 30000, "max": 30099}, "workers": 3,
                    "media_timeout_ms": 5000, "strict_source": true, "max_sessions": 7})",
                 "media.json");
  EXPECT_EQ(c.advertisedAddress, "203.0.113.5");
  EXPECT_EQ(c.bindAddress, "0.0.0.0");
  EXPECT_EQ(c.portRange.min, 30000);
  EXPECT_EQ(c.portRange.max, 30099);
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.mediaTimeoutMs, 5000u);
  EXPECT_TRUE(c.strictSource);
  EXPECT_EQ(c.maxSessions, 7u);
}

TEST(MediaConfig, EnvironmentOverridesTheFile) {
  ::setenv("MEDIUS_MEDIA_ADVERTISED_ADDRESS", "198.51.100.1", 1);
  ::setenv("MEDIUS_MEDIA_PORT_MIN", "31000", 1);
  ::setenv("MEDIUS_MEDIA_PORT_MAX", "31999", 1);
  auto c = parse(R"({"advertised_address": "203.0.113.5"})", "media.json");
  ::unsetenv("MEDIUS_MEDIA_ADVERTISED_ADDRESS");
  ::unsetenv("MEDIUS_MEDIA_PORT_MIN");
  ::unsetenv("MEDIUS_MEDIA_PORT_MAX");
  EXPECT_EQ(c.advertisedAddress, "198.51.100.1");
  EXPECT_EQ(c.portRange.min, 31000);
  EXPECT_EQ(c.portRange.max, 31999);
}

std::string errorOf(const std::string& text) {
  try {
    parse(text, "media.json");
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(MediaConfig, LoadLimitDefaultsTo80PercentOfEachWorkersCore) {
  EXPECT_DOUBLE_EQ(parse(R"({"workers": 3})", "media.json").loadLimit, 240.0);
  EXPECT_DOUBLE_EQ(parse(R"({"workers": 3, "load_limit": 50})", "media.json").loadLimit, 50.0);
  EXPECT_NE(errorOf(R"({"load_limit": -1})").find("$.load_limit"), std::string::npos);
}

TEST(MediaConfig, DrainTimeout) {
  EXPECT_EQ(parse(R"({})", "media.json").drainTimeoutSeconds, 600);
  EXPECT_EQ(parse(R"({"drain": {"timeout_seconds": 45}})", "media.json").drainTimeoutSeconds, 45);
  EXPECT_NE(errorOf(R"({"drain": {"timeout_seconds": 86401}})").find("$.drain.timeout_seconds"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"drain": {"limit": 5}})").find("$.drain.limit"), std::string::npos);
}

TEST(MediaConfig, OrphanGrace) {
  EXPECT_EQ(parse(R"({})", "media.json").orphanGraceMs, 15000u);
  EXPECT_EQ(parse(R"({"orphan_grace_ms": 2000})", "media.json").orphanGraceMs, 2000u);
  EXPECT_EQ(errorOf(R"({"orphan_grace_ms": 0})"),
            "media.json: $.orphan_grace_ms: expected an integer between 100 and 3600000, got 0");
  EXPECT_NE(errorOf(R"({"orphan_grace_ms": "15s"})").find("$.orphan_grace_ms"), std::string::npos);
  ::setenv("MEDIUS_MEDIA_ORPHAN_GRACE_MS", "30000", 1);
  auto c = parse(R"({"orphan_grace_ms": 2000})", "media.json");
  ::unsetenv("MEDIUS_MEDIA_ORPHAN_GRACE_MS");
  EXPECT_EQ(c.orphanGraceMs, 30000u);
}

TEST(MediaConfig, ErrorsNameFileAndPath) {
  EXPECT_EQ(errorOf(R"({"advertised_address": "media.example.com"})"),
            "media.json: $.advertised_address: expected an IPv4 address, got \"media.example.com\"");
  EXPECT_NE(errorOf(R"({"port_range": {"min": 30001, "max": 30001}})").find("$.port_range.max"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"port_rnage": {}})").find("port_rnage"), std::string::npos);
  EXPECT_NE(errorOf(R"({"media_timeout_ms": 0})").find("$.media_timeout_ms"), std::string::npos);
}

}  // namespace
}  // namespace medius::media
