// registrar.json loading: the example file, defaults, and every validation rule.
#include <gtest/gtest.h>

#include <cstdlib>

#include "medius/common/config.hpp"
#include "medius/common/digest.hpp"
#include "medius/registrar/config.hpp"
#include "test_support.hpp"

namespace medius::registrar {
namespace {

config::ConfigError errorOf(const std::string& text) {
  try {
    parse(text, "r.json");
  } catch (const config::ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << text;
  return config::ConfigError("", "", "");
}

const std::string kMd5 = std::string(32, 'a');
const std::string kSha = std::string(64, 'b');

std::string withUsers(const std::string& users, const std::string& extra = "") {
  return R"({"domain": "example.com", )" + extra + R"("users": [)" + users + "]}";
}
std::string user(const std::string& fields) {
  return R"({"username": "alice", "aor": "sip:alice@example.com", )" + fields + "}";
}
const std::string kBoth = R"("ha1_md5": ")" + kMd5 + R"(", "ha1_sha256": ")" + kSha + "\"";

TEST(RegistrarConfig, ExampleFileLoadsWithCorrectHa1s) {
  RegistrarConfig c = load(MEDIUS_EXAMPLE_CONFIG);
  EXPECT_EQ(c.domain, "example.com");
  EXPECT_EQ(c.store.type, StoreConfig::Type::Memory);
  EXPECT_EQ(c.service.grpcListen, "127.0.0.1:50051");
  EXPECT_EQ(c.service.metricsListen, "127.0.0.1:9101");
  ASSERT_EQ(c.users.size(), 2u);
  for (const auto& [name, password] : {std::pair{"alice", "secret-alice"}, {"bob", "secret-bob"}}) {
    const UserConfig* u = c.findUser(name);
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(u->aor, std::string("sip:") + name + "@example.com");
    EXPECT_EQ(u->ha1Md5, digest::ha1(digest::Algorithm::Md5, name, "example.com", password));
    EXPECT_EQ(u->ha1Sha256, digest::ha1(digest::Algorithm::Sha256, name, "example.com", password));
  }
}

TEST(RegistrarConfig, Defaults) {
  RegistrarConfig c = parse(withUsers(user(kBoth)), "r.json");
  EXPECT_EQ(c.expiry.minSeconds, 60u);
  EXPECT_EQ(c.expiry.defaultSeconds, 3600u);
  EXPECT_EQ(c.expiry.maxSeconds, 7200u);
  EXPECT_EQ(c.maxContactsPerAor, 10u);
  EXPECT_TRUE(c.auth.required);
  EXPECT_EQ(c.auth.realm, "example.com");
  ASSERT_EQ(c.auth.algorithms.size(), 2u);
  EXPECT_EQ(c.auth.algorithms[0], digest::Algorithm::Sha256);
  EXPECT_FALSE(c.auth.nonceSecret.has_value());
}

TEST(RegistrarConfig, RedisStore) {
  RegistrarConfig c = parse(withUsers(user(kBoth), R"("store": {"type": "redis", "address": "192.0.2.1:6380", "key_prefix": "x:", "timeout_ms": 250}, )"), "r.json");
  EXPECT_EQ(c.store.type, StoreConfig::Type::Redis);
  EXPECT_EQ(c.store.address, "192.0.2.1:6380");
  EXPECT_EQ(c.store.keyPrefix, "x:");
  EXPECT_EQ(c.store.timeoutMs, 250);
}

TEST(RegistrarConfig, EnvironmentOverridesStore) {
  ::setenv("MEDIUS_STORE", "redis", 1);
  ::setenv("MEDIUS_REDIS_ADDRESS", "127.0.0.1:7000", 1);
  RegistrarConfig c = parse(withUsers(user(kBoth)), "r.json");
  ::unsetenv("MEDIUS_STORE");
  ::unsetenv("MEDIUS_REDIS_ADDRESS");
  EXPECT_EQ(c.store.type, StoreConfig::Type::Redis);
  EXPECT_EQ(c.store.address, "127.0.0.1:7000");
}

struct Case {
  const char* name;
  std::string text;
  std::string path;
};

class RegistrarConfigErrors : public ::testing::TestWithParam<Case> {};

TEST_P(RegistrarConfigErrors, NameFileAndPath) {
  auto e = errorOf(GetParam().text);
  EXPECT_EQ(e.file(), "r.json");
  EXPECT_EQ(e.path(), GetParam().path) << e.what();
  EXPECT_FALSE(e.problem().empty());
}

INSTANTIATE_TEST_SUITE_P(
    All, RegistrarConfigErrors,
    ::testing::Values(
        Case{"MissingDomain", R"({"users": []})", "$.domain"},
        Case{"DomainWrongType", R"({"domain": 5})", "$.domain"},
        Case{"UnknownTopKey", R"({"domain": "example.com", "domian": "x"})", "$.domian"},
        Case{"UnknownStoreType", R"({"domain": "example.com", "store": {"type": "mysql"}})", "$.store.type"},
        Case{"BadRedisAddress", R"({"domain": "example.com", "store": {"type": "redis", "address": "nope"}})", "$.store.address"},
        Case{"UnknownStoreKey", R"({"domain": "example.com", "store": {"type": "memory", "port": 1}})", "$.store.port"},
        Case{"MinAboveDefault", R"({"domain": "example.com", "expiry": {"min_seconds": 600, "default_seconds": 300}})", "$.expiry.default_seconds"},
        Case{"DefaultAboveMax", R"({"domain": "example.com", "expiry": {"default_seconds": 9000}})", "$.expiry.default_seconds"},
        Case{"MaxBelowMin", R"({"domain": "example.com", "expiry": {"min_seconds": 100, "default_seconds": 100, "max_seconds": 50}})", "$.expiry.max_seconds"},
        Case{"ExpiryWrongType", R"({"domain": "example.com", "expiry": {"min_seconds": "60"}})", "$.expiry.min_seconds"},
        Case{"MaxContactsZero", R"({"domain": "example.com", "max_contacts_per_aor": 0})", "$.max_contacts_per_aor"},
        Case{"UnknownAlgorithm", R"({"domain": "example.com", "auth": {"algorithms": ["MD5", "SHA-512"]}})", "$.auth.algorithms[1]"},
        Case{"DuplicateAlgorithm", R"({"domain": "example.com", "auth": {"algorithms": ["MD5", "MD5"]}})", "$.auth.algorithms[1]"},
        Case{"NoAlgorithm", R"({"domain": "example.com", "auth": {"algorithms": []}})", "$.auth.algorithms"},
        Case{"ShortSecret", R"({"domain": "example.com", "auth": {"nonce_secret": "short"}})", "$.auth.nonce_secret"},
        Case{"UserMissingUsername", withUsers(R"({"aor": "sip:alice@example.com"})"), "$.users[0].username"},
        Case{"UserBadAor", withUsers(user(kBoth).replace(user(kBoth).find("sip:alice@"), 10, "tel:alice@")), "$.users[0].aor"},
        Case{"UserAorOtherDomain", withUsers(R"({"username": "a", "aor": "sip:a@other.org", )" + kBoth + "}"), "$.users[0].aor"},
        Case{"Ha1NotHex", withUsers(user(R"("ha1_md5": ")" + std::string(32, 'z') + R"(", "ha1_sha256": ")" + kSha + "\"")), "$.users[0].ha1_md5"},
        Case{"Ha1WrongLength", withUsers(user(R"("ha1_md5": "abc", "ha1_sha256": ")" + kSha + "\"")), "$.users[0].ha1_md5"},
        Case{"Ha1MissingForAlgorithm", withUsers(user(R"("ha1_md5": ")" + kMd5 + "\"")), "$.users[0].ha1_sha256"},
        Case{"UserNoHa1", withUsers(user(R"("x": 1)").replace(user(R"("x": 1)").find(", \"x\": 1"), 8, "")), "$.users[0]"},
        Case{"UserUnknownKey", withUsers(user(kBoth + R"(, "password": "x")")), "$.users[0].password"},
        Case{"DuplicateUser", withUsers(user(kBoth) + ", " + user(kBoth)), "$.users[1].username"}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(RegistrarConfig, Md5OnlyUsersWithMd5OnlyAlgorithms) {
  RegistrarConfig c = parse(withUsers(user(R"("ha1_md5": ")" + kMd5 + "\""), R"("auth": {"algorithms": ["MD5"]}, )"), "r.json");
  EXPECT_EQ(c.users[0].ha1Sha256, "");
  EXPECT_EQ(c.auth.algorithms.size(), 1u);
}

TEST(RegistrarConfig, ParseAor) {
  ASSERT_TRUE(parseAor("sip:alice@example.com").has_value());
  EXPECT_EQ(parseAor("sip:alice@example.com")->user, "alice");
  EXPECT_FALSE(parseAor("sips:alice@example.com").has_value());
  EXPECT_FALSE(parseAor("sip:example.com").has_value());
  EXPECT_FALSE(parseAor("sip:@example.com").has_value());
  EXPECT_FALSE(parseAor("sip:alice@example.com;transport=tcp").has_value());
  EXPECT_FALSE(parseAor("").has_value());
}

}  // namespace
}  // namespace medius::registrar
