// `signaling-gateway --check-config`: the built binary loads and checks a config the way a
// start does (MEDIUS_* variables applied, internal.tls's files read and verified) and exits
// 0 or 2 without listening on anything. tests/deploy uses it on the configs docker-compose
// and the Helm chart produce. Certificates come from deploy/certs/make-certs.sh (the lab CA
// the reference topology and docker-compose use).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

struct RunResult {
  int exitCode;
  std::string out;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class CheckConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("medius-gw-check-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::string cmd = "bash '" + std::string(MEDIUS_SOURCE_DIR) + "/deploy/certs/make-certs.sh' '" +
                      (dir_ / "certs").string() + "' > /dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "make-certs.sh failed";
    // The reference topology's config with the certificates of this test: what a start
    // would load, on ports this test holds (a check must not try to bind them).
    config_ = nlohmann::json::parse(slurp(fs::path(MEDIUS_SOURCE_DIR) / "examples/local/gateway.json"));
    held_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(held_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(held_, 1), 0);
    socklen_t len = sizeof a;
    ::getsockname(held_, reinterpret_cast<sockaddr*>(&a), &len);
    std::string port = std::to_string(ntohs(a.sin_port));
    config_["service"]["grpc_listen"] = "127.0.0.1:" + port;
    config_["service"]["metrics_listen"] = "127.0.0.1:" + port;
    config_["internal"]["listen"] = {"sip:127.0.0.1:" + port};
    config_["trunk"]["listen"] = {"sip:127.0.0.1:" + port};
    auto& tls = config_["internal"]["tls"];
    tls["listen"] = "sips:127.0.0.1:" + port;
    tls["cert"] = (dir_ / "certs/gateway.pem").string();
    tls["key"] = (dir_ / "certs/gateway.key").string();
    tls["ca"] = (dir_ / "certs/ca.pem").string();
  }
  void TearDown() override {
    if (held_ >= 0) ::close(held_);
    fs::remove_all(dir_);
  }

  // Runs the binary with `args` on config_ (written to gateway.json), `env` prepended
  // ("NAME=value ..."); the MEDIUS_ variables the test environment might carry are cleared.
  RunResult run(const std::string& args, const std::string& env = "") {
    fs::path file = dir_ / "gateway.json";
    std::ofstream(file) << config_.dump(2);
    fs::path out = dir_ / "out.txt";
    std::string cmd = "env -u MEDIUS_INTERNAL_TLS_LISTEN -u MEDIUS_INTERNAL_TLS_CERT "
                      "-u MEDIUS_INTERNAL_TLS_KEY -u MEDIUS_INTERNAL_TLS_CA -u MEDIUS_INTERNAL_LISTEN "
                      "-u MEDIUS_TRUNK_LISTEN -u MEDIUS_GRPC_LISTEN -u MEDIUS_METRICS_LISTEN " +
                      env + " timeout 20 '" + std::string(MEDIUS_GATEWAY_BINARY) + "' --config '" +
                      file.string() + "' " + args + " > '" + out.string() + "' 2>&1";
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out)};
  }

  fs::path dir_;
  nlohmann::json config_;
  int held_ = -1;
};

TEST_F(CheckConfig, GoodConfigExitsZeroWithoutListening) {
  RunResult r = run("--check-config");
  EXPECT_EQ(r.exitCode, 0) << r.out;
  EXPECT_EQ(r.out.rfind("config ok: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("TLS sips:127.0.0.1:"), std::string::npos) << r.out;
}

TEST_F(CheckConfig, WithoutTlsBlockToo) {
  config_["internal"].erase("tls");
  RunResult r = run("--check-config");
  EXPECT_EQ(r.exitCode, 0) << r.out;
  EXPECT_EQ(r.out.find("TLS"), std::string::npos) << r.out;
}

TEST_F(CheckConfig, KeyOfAnotherCertificateNamesFieldAndFile) {
  config_["internal"]["tls"]["key"] = (dir_ / "certs/client.key").string();
  RunResult r = run("--check-config");
  EXPECT_EQ(r.exitCode, 2) << r.out;
  EXPECT_EQ(r.out.rfind("config error: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("internal.tls.key"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("client.key: the private key does not match the certificate"),
            std::string::npos)
      << r.out;
}

TEST_F(CheckConfig, EnvironmentOverridesAreChecked) {
  // The file is good; the variable a deployment sets points at a file that is not there.
  RunResult r = run("--check-config", "MEDIUS_INTERNAL_TLS_CERT=" + (dir_ / "none.pem").string());
  EXPECT_EQ(r.exitCode, 2) << r.out;
  EXPECT_NE(r.out.find("none.pem"), std::string::npos) << r.out;
}

TEST_F(CheckConfig, UnknownKeyNamesPath) {
  config_["internal"]["tls"]["require_client_certs"] = true;
  RunResult r = run("--check-config");
  EXPECT_EQ(r.exitCode, 2) << r.out;
  EXPECT_NE(r.out.find("require_client_certs"), std::string::npos) << r.out;
}

}  // namespace
