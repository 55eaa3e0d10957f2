// medius/common/config.hpp: every error names the file and the JSON path.
#include <gtest/gtest.h>

#include "medius/common/config.hpp"

namespace medius::config {
namespace {

// Runs `f`, expects a ConfigError, returns it.
template <typename F>
ConfigError expectError(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError";
  return ConfigError("", "", "");
}

TEST(Config, WrongTypeNamesFileAndPath) {
  auto e = expectError([] {
    auto doc = Document::parse(R"({"a": {"port": "x"}})", "conf.json");
    auto root = doc.root();
    auto a = root.requireObject("a");
    a.integer("port", 1, 0, 10);
  });
  EXPECT_EQ(e.file(), "conf.json");
  EXPECT_EQ(e.path(), "$.a.port");
  EXPECT_NE(e.problem().find("expected an integer"), std::string::npos);
  EXPECT_EQ(std::string(e.what()).rfind("conf.json: $.a.port: ", 0), 0u) << e.what();
}

TEST(Config, MissingFieldNamesFileAndPath) {
  auto e = expectError([] {
    auto doc = Document::parse(R"({"users": [{"name": "a"}, {}]})", "users.json");
    auto root = doc.root();
    for (auto& u : root.objects("users")) u.requireString("name");
  });
  EXPECT_EQ(e.file(), "users.json");
  EXPECT_EQ(e.path(), "$.users[1].name");
  EXPECT_EQ(e.problem(), "missing required field");
}

TEST(Config, UnknownKeyNamesFileAndPath) {
  auto e = expectError([] {
    auto doc = Document::parse(R"({"known": 1, "knwon": 2})", "k.json");
    auto root = doc.root();
    root.integer("known", 0, 0, 5);
    root.finish();
  });
  EXPECT_EQ(e.file(), "k.json");
  EXPECT_EQ(e.path(), "$.knwon");
  EXPECT_NE(e.problem().find("unknown key"), std::string::npos);
}

TEST(Config, SyntaxErrorNamesLine) {
  auto e = expectError([] { Document::parse("{\n  \"a\": 1,\n  \"b\": \n}\n", "bad.json"); });
  EXPECT_EQ(e.file(), "bad.json");
  EXPECT_NE(e.path().find("line 4"), std::string::npos) << e.what();
  EXPECT_NE(e.problem().find("invalid JSON"), std::string::npos);
}

TEST(Config, OutOfRangeAndChoice) {
  auto doc = Document::parse(R"({"n": 99, "c": "blue"})", "r.json");
  auto root = doc.root();
  auto e1 = expectError([&] { root.integer("n", 0, 0, 10); });
  EXPECT_EQ(e1.path(), "$.n");
  auto e2 = expectError([&] { root.choice("c", "red", {"red", "green"}); });
  EXPECT_EQ(e2.path(), "$.c");
  EXPECT_NE(e2.problem().find("\"blue\""), std::string::npos);
}

TEST(Config, MissingFileIsAnError) {
  auto e = expectError([] { Document::load("/nonexistent/medius.json"); });
  EXPECT_EQ(e.file(), "/nonexistent/medius.json");
}

TEST(Config, ParseHostPort) {
  EXPECT_EQ(parseHostPort("127.0.0.1:5060").port, 5060);
  EXPECT_EQ(parseHostPort("[::1]:80").host, "::1");
  EXPECT_THROW(parseHostPort("nohost"), std::invalid_argument);
  EXPECT_THROW(parseHostPort("h:99999"), std::invalid_argument);
}

}  // namespace
}  // namespace medius::config
