// The built `registrar` binary refuses bad configs: exit code 2, one stderr line
// "config error: FILE: $.path: problem", nothing started.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

struct RunResult {
  int exitCode;
  std::string stderrText;
};

RunResult runWithConfig(const std::string& name, const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / ("medius-reg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / name;
  std::ofstream(file) << text;
  auto err = dir / (name + ".stderr");
  std::string cmd = std::string(MEDIUS_REGISTRAR_BINARY) + " --config '" + file.string() +
                    "' > /dev/null 2> '" + err.string() + "'";
  int status = std::system(cmd.c_str());
  std::ifstream in(err);
  std::stringstream ss;
  ss << in.rdbuf();
  std::filesystem::remove_all(dir);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}

void expectConfigError(const std::string& name, const std::string& text, const std::string& path) {
  RunResult r = runWithConfig(name, text);
  EXPECT_EQ(r.exitCode, 2) << r.stderrText;
  EXPECT_EQ(r.stderrText.rfind("config error: ", 0), 0u) << r.stderrText;
  EXPECT_NE(r.stderrText.find(name + ": " + path + ": "), std::string::npos) << r.stderrText;
  EXPECT_EQ(std::count(r.stderrText.begin(), r.stderrText.end(), '\n'), 1) << r.stderrText;
}

// Ports 1 on purpose: if a bad config were accepted, binding would fail loudly.
const std::string kService = R"("service": {"grpc_listen": "127.0.0.1:1", "metrics_listen": "127.0.0.1:1"}, )";

TEST(RegistrarBinary, WrongTypeNamesFileAndPath) {
  expectConfigError("wrong-type.json",
                    "{" + kService + R"("domain": "example.com", "max_contacts_per_aor": "ten"})",
                    "$.max_contacts_per_aor");
}

TEST(RegistrarBinary, MissingFieldNamesFileAndPath) {
  expectConfigError("missing-field.json",
                    "{" + kService + R"("domain": "example.com", "users": [{"aor": "sip:a@example.com"}]})",
                    "$.users[0].username");
}

TEST(RegistrarBinary, UnknownKeyNamesFileAndPath) {
  expectConfigError("unknown-key.json",
                    "{" + kService + R"("domain": "example.com", "expiry": {"min_secs": 60}})",
                    "$.expiry.min_secs");
}

TEST(RegistrarBinary, SyntaxErrorNamesLine) {
  RunResult r = runWithConfig("syntax.json", "{\n\"domain\": \"example.com\",\n}\n");
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.stderrText.find("syntax.json: line 3"), std::string::npos) << r.stderrText;
}

TEST(RegistrarBinary, EmptyObjectNamesMissingDomain) {
  RunResult r = runWithConfig("x.json", "{}");
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.stderrText.find("$.domain: missing required field"), std::string::npos) << r.stderrText;
}

}  // namespace
