// Tests of medius/common/grpc_tls.hpp: mutual TLS between the cluster's services over real
// sockets (a GrpcServer and gRPC channels on 127.0.0.1), with certificates made for the test
// by the openssl command line tool (a CA, the service's own, one from another CA); and
// plaintext only on loopback.
#include "medius/common/grpc_tls.hpp"

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "medius/common/config.hpp"
#include "medius/common/service.hpp"

namespace medius {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class GrpcTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("medius-grpc-tls-" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    const std::string d = dir_->string();
    auto run = [](const std::string& command) {
      ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
    };
    // Two CAs, each with one certificate for 127.0.0.1 (server and client use).
    for (std::string ca : {"ca", "other-ca"}) {
      run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + ca + " -keyout " + d + "/" + ca +
          ".key -out " + d + "/" + ca + ".pem");
    }
    auto issue = [&](const std::string& name, const std::string& ca) {
      run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " + d + "/" + name +
          ".key -out " + d + "/" + name + ".csr");
      std::ofstream(d + "/" + name + ".ext")
          << "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n";
      run("openssl x509 -req -in " + d + "/" + name + ".csr -CA " + d + "/" + ca + ".pem -CAkey " + d + "/" +
          ca + ".key -CAcreateserial -days 2 -extfile " + d + "/" + name + ".ext -out " + d + "/" + name + ".pem");
    };
    issue("media", "ca");
    issue("gateway", "ca");
    issue("intruder", "other-ca");
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }
  void TearDown() override { setClientTls(std::nullopt); }

  static GrpcTls tls(const std::string& name, const std::string& ca = "ca") {
    const std::string d = dir_->string();
    return GrpcTls{d + "/" + ca + ".pem", d + "/" + name + ".pem", d + "/" + name + ".key", true};
  }
  // Whether a channel with `credentials` completes its handshake with the server.
  static bool connects(int port, std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), std::move(credentials));
    return channel->WaitForConnected(std::chrono::system_clock::now() + 3s);
  }
  static fs::path* dir_;
};

fs::path* GrpcTlsTest::dir_ = nullptr;

TEST_F(GrpcTlsTest, OnlyAClientWithACertificateOfTheClustersCaGetsIn) {
  GrpcServer server("127.0.0.1:0", {}, {}, tls("media"));
  // The gateway with its own certificate: in.
  setClientTls(tls("gateway"));
  EXPECT_TRUE(connects(server.port(), clientCredentials("127.0.0.1:" + std::to_string(server.port()))));
  // A certificate from another CA: refused.
  setClientTls(tls("intruder", "other-ca"));
  EXPECT_FALSE(connects(server.port(), clientCredentials("127.0.0.1:1")));
  // TLS without a client certificate: refused.
  {
    grpc::experimental::TlsChannelCredentialsOptions options;
    options.set_certificate_provider(
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(tls("gateway").caFile, 60));
    options.watch_root_certs();
    EXPECT_FALSE(connects(server.port(), grpc::experimental::TlsCredentials(options)));
  }
  // Plaintext: refused.
  EXPECT_FALSE(connects(server.port(), grpc::InsecureChannelCredentials()));
}

TEST_F(GrpcTlsTest, AClientRefusesAServerItsCaDidNotSign) {
  GrpcServer server("127.0.0.1:0", {}, {}, tls("intruder", "other-ca"));
  setClientTls(tls("gateway"));
  EXPECT_FALSE(connects(server.port(), clientCredentials("127.0.0.1:1")));
}

TEST(GrpcPlaintext, OnlyOnLoopback) {
  for (const char* target : {"127.0.0.1:50051", "127.3.2.1:1", "localhost:5", "[::1]:50051", "::1",
                             "ipv4:127.0.0.1:5", "dns:///localhost:5", "unix:/run/medius.sock"}) {
    EXPECT_TRUE(isLoopbackTarget(target)) << target;
  }
  for (const char* target : {"0.0.0.0:50051", "10.200.0.5:50051", "media:50053", "127.example.com:5",
                             "[::]:50051", "dns:///media.svc:50053", "128.0.0.1:5", ""}) {
    EXPECT_FALSE(isLoopbackTarget(target)) << target;
  }
  // Replica lists: loopback only when every address is.
  EXPECT_TRUE(isLoopbackTarget("ipv4:127.0.0.1:5,127.0.0.2:6"));
  EXPECT_TRUE(isLoopbackTarget("ipv6:[::1]:5,[::1]:6"));
  EXPECT_FALSE(isLoopbackTarget("ipv4:127.0.0.1:5,10.200.0.5:6"));
  EXPECT_FALSE(isLoopbackTarget("ipv4:127.0.0.1:5,"));
  setClientTls(std::nullopt);
  EXPECT_NO_THROW(clientCredentials("127.0.0.1:50053"));
  EXPECT_THROW(clientCredentials("10.200.2.3:50053"), std::invalid_argument);
}

TEST(GrpcTarget, OneAddressOrAListOfReplicas) {
  for (const char* target : {"127.0.0.1:50051", "registrar:50051", "[::1]:50051",
                             "ipv4:127.0.0.1:50051", "ipv4:127.0.0.1:50051,127.0.0.2:50051",
                             "ipv6:[::1]:50051,[::1]:50052"}) {
    EXPECT_NO_THROW(checkGrpcTarget(target)) << target;
  }
  for (const char* target : {"127.0.0.1", "ipv4:", "ipv4:127.0.0.1:50051,",
                             "ipv4:registrar:50051", "ipv4:127.0.0.1:x", "ipv6:127.0.0.1:5",
                             "ipv4:[::1]:5"}) {
    EXPECT_THROW(checkGrpcTarget(target), std::invalid_argument) << target;
  }
}

ServiceSettings settingsOf(const std::string& text) {
  config::Document doc = config::Document::parse(text, "svc.json");
  config::Object root = doc.root();
  return readServiceSettings(root, "127.0.0.1:50051", "127.0.0.1:9101");
}

std::string configErrorOf(const std::string& text) {
  try {
    settingsOf(text);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST_F(GrpcTlsTest, TheServiceBlockNamesWhatIsWrong) {
  // Plaintext on a non-loopback address.
  std::string e = configErrorOf(R"({"service": {"grpc_listen": "0.0.0.0:50051"}})");
  EXPECT_NE(e.find("grpc_listen"), std::string::npos) << e;
  EXPECT_NE(e.find("grpc_tls"), std::string::npos) << e;
  // TLS: every file must be there and hold what it should.
  const GrpcTls good = tls("media");
  auto block = [](const std::string& ca, const std::string& cert, const std::string& key) {
    return R"({"service": {"grpc_listen": "0.0.0.0:50051", "grpc_tls": {"ca": ")" + ca + R"(", "cert": ")" +
           cert + R"(", "key": ")" + key + R"("}}})";
  };
  ServiceSettings s = settingsOf(block(good.caFile, good.certFile, good.keyFile));
  ASSERT_TRUE(s.grpcTls);
  EXPECT_EQ(s.grpcTls->certFile, good.certFile);
  EXPECT_TRUE(s.grpcTls->requireClientCert);
  e = configErrorOf(block(good.caFile, dir_->string() + "/missing.pem", good.keyFile));
  EXPECT_NE(e.find("grpc_tls.cert"), std::string::npos) << e;
  EXPECT_NE(e.find("missing.pem"), std::string::npos) << e;
  e = configErrorOf(block(good.caFile, good.certFile, good.certFile));
  EXPECT_NE(e.find("grpc_tls.key"), std::string::npos) << e;
  EXPECT_NE(e.find("private key"), std::string::npos) << e;
  e = configErrorOf(block(good.keyFile, good.certFile, good.keyFile));
  EXPECT_NE(e.find("grpc_tls.ca"), std::string::npos) << e;
}

}  // namespace
}  // namespace medius
