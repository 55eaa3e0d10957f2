// medius/common/media_policy.hpp: the "srtp" and "codecs" keys shared by routing.json
// (per trunk) and gateway.json (internal side).
#include "medius/common/media_policy.hpp"

#include <gtest/gtest.h>

namespace medius::config {
namespace {

struct Read {
  v1::SrtpPolicy srtp = v1::SRTP_POLICY_UNSPECIFIED;
  std::vector<std::string> codecs;
};

Read read(const std::string& text) {
  auto doc = Document::parse(text, "media.json");
  auto root = doc.root();
  Read r;
  r.srtp = readSrtpPolicy(root, "srtp", v1::SRTP_POLICY_OFF);
  r.codecs = readCodecs(root, "codecs", {"PCMU", "PCMA"});
  root.finish();
  return r;
}

ConfigError errorOf(const std::string& text) {
  try {
    read(text);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError for " << text;
  return ConfigError("", "", "");
}

TEST(MediaPolicy, Defaults) {
  Read r = read("{}");
  EXPECT_EQ(r.srtp, v1::SRTP_POLICY_OFF);
  EXPECT_EQ(r.codecs, (std::vector<std::string>{"PCMU", "PCMA"}));
}

TEST(MediaPolicy, ValuesAndNormalizedCodecNames) {
  EXPECT_EQ(read(R"({"srtp": "optional"})").srtp, v1::SRTP_POLICY_OPTIONAL);
  EXPECT_EQ(read(R"({"srtp": "required"})").srtp, v1::SRTP_POLICY_REQUIRED);
  EXPECT_EQ(read(R"({"codecs": ["OPUS", "g722", "pcmu", "Pcma", "g729"]})").codecs,
            (std::vector<std::string>{"opus", "G722", "PCMU", "PCMA", "G729"}));
  EXPECT_EQ(normalizeCodec("G.729"), std::nullopt);
  EXPECT_EQ(srtpPolicyName(v1::SRTP_POLICY_REQUIRED), "required");
}

TEST(MediaPolicy, CnIsListedBesideAudioCodecs) {
  // RFC 3389 comfort noise: the media worker may offer CN to this side (docs/media.md).
  EXPECT_EQ(read(R"({"codecs": ["pcmu", "cn"]})").codecs, (std::vector<std::string>{"PCMU", "CN"}));
  ConfigError e = errorOf(R"({"codecs": ["CN"]})");
  EXPECT_EQ(e.path(), "$.codecs");
  EXPECT_NE(e.problem().find("at least one audio codec"), std::string::npos) << e.problem();
}

TEST(MediaPolicy, ErrorsNameFileAndPath) {
  ConfigError e = errorOf(R"({"srtp": "mandatory"})");
  EXPECT_EQ(e.file(), "media.json");
  EXPECT_EQ(e.path(), "$.srtp");
  EXPECT_NE(e.problem().find("\"off\", \"optional\", \"required\""), std::string::npos);

  e = errorOf(R"({"codecs": ["PCMU", "iLBC"]})");
  EXPECT_EQ(e.path(), "$.codecs[1]");
  EXPECT_NE(e.problem().find("unknown codec \"iLBC\""), std::string::npos) << e.problem();

  e = errorOf(R"({"codecs": ["PCMU", "PCMA", "pcmu"]})");
  EXPECT_EQ(e.path(), "$.codecs[2]");
  EXPECT_NE(e.problem().find("\"PCMU\" is listed twice"), std::string::npos) << e.problem();

  EXPECT_EQ(errorOf(R"({"codecs": []})").path(), "$.codecs");
  EXPECT_EQ(errorOf(R"({"codecs": "PCMU"})").path(), "$.codecs");
  EXPECT_EQ(errorOf(R"({"codecs": [0]})").path(), "$.codecs[0]");
  EXPECT_EQ(errorOf(R"({"srtp": true})").path(), "$.srtp");
}

}  // namespace
}  // namespace medius::config
