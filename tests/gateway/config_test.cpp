// gateway.json loading (medius/gateway/config.hpp): the call keys.
#include <gtest/gtest.h>

#include "medius/common/config.hpp"
#include "medius/gateway/config.hpp"

namespace medius::gateway {
namespace {

GatewayConfig parse(std::string_view text) {
  return loadConfig(config::Document::parse(text, "gateway.json"));
}

TEST(GatewayConfig, CallDefaults) {
  auto c = parse(R"({"domain": "example.com"})");
  EXPECT_EQ(c.sessionExpiresS, 1800);
  EXPECT_EQ(c.minSeS, 90);
  EXPECT_TRUE(c.rel100);
  EXPECT_EQ(c.noAnswerTimeoutMs, 60000);
  EXPECT_EQ(c.maxCalls, 10000);
}

TEST(GatewayConfig, ReadsTheCallKeys) {
  auto c = parse(R"({"domain": "example.com", "calls": {"rel100": false, "min_se_s": 120, "session_expires_s": 600,
                               "no_answer_timeout_ms": 30000, "max_calls": 50}})");
  EXPECT_FALSE(c.rel100);
  EXPECT_EQ(c.minSeS, 120);
  EXPECT_EQ(c.sessionExpiresS, 600);
  EXPECT_EQ(c.noAnswerTimeoutMs, 30000);
  EXPECT_EQ(c.maxCalls, 50);
}

TEST(GatewayConfig, BadCallKeysNameTheirPath) {
  auto expectError = [](std::string_view text, const std::string& fragment) {
    try {
      parse(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const config::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("gateway.json"), std::string::npos) << e.what();
    }
  };
  expectError(R"({"domain": "example.com", "calls": {"rel100": "yes"}})", "calls.rel100");
  // Session-Expires may not be below Min-SE.
  expectError(R"({"domain": "example.com", "calls": {"min_se_s": 600, "session_expires_s": 300}})",
              "calls.session_expires_s");
  expectError(R"({"domain": "example.com", "calls": {"prack": true}})", "calls.prack");
}

}  // namespace
}  // namespace medius::gateway
