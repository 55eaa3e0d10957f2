// SIP over TLS (medius/gateway/sip_tls.hpp): the certificate checks that stop a start
// with the file and the problem (Sofia would listen and fail every handshake silently),
// the directory handed to Sofia, trusted names, and the internal.tls config block.
// Certificates are made here with OpenSSL; the TLS listener itself is exercised end to
// end by tests/e2e/test_tls.py.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <prometheus/registry.h>

#include "medius/common/config.hpp"
#include "medius/gateway/config.hpp"
#include "medius/gateway/gateway.hpp"
#include "medius/gateway/metrics.hpp"
#include "medius/gateway/registrar_client.hpp"
#include "medius/gateway/sip_loop.hpp"
#include "medius/gateway/sip_tls.hpp"
#include "medius/gateway/trunk_locator.hpp"
#include "medius/gateway/trunk_monitor.hpp"

namespace medius::gateway {
namespace {

namespace fs = std::filesystem;

PkeyPtr makeKey() { return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

// A certificate for `key` named `cn` (and the subjectAltName `san`, as "DNS:a,DNS:b", when
// given), signed by issuerKey (self-signed when null), valid from now+notBefore to
// now+notAfter seconds.
X509Ptr makeCert(EVP_PKEY* key, const std::string& cn, EVP_PKEY* issuerKey, X509* issuer,
                 long notBefore = -3600, long notAfter = 86400, long serial = 1,
                 const char* san = nullptr) {
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), notBefore);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), notAfter);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
  if (!issuer) {
    // A CA (OpenSSL verifies a chain only through a certificate marked as one).
    X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints,
                                             "critical,CA:TRUE");
    X509_add_ext(x.get(), bc, -1);
    X509_EXTENSION_free(bc);
  }
  if (san) {
    X509_EXTENSION* names = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san);
    X509_add_ext(x.get(), names, -1);
    X509_EXTENSION_free(names);
  }
  X509_sign(x.get(), issuerKey ? issuerKey : key, EVP_sha256());
  return x;
}

class TlsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/medius-sip-tls-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    caKey_ = makeKey();
    ca_ = makeCert(caKey_.get(), "Test CA", nullptr, nullptr);
    key_ = makeKey();
    cert_ = makeCert(key_.get(), "gw.example.com", caKey_.get(), ca_.get(), -3600, 86400, 42);
    writeCert("gw.pem", cert_.get());
    writeKey("gw.key", key_.get());
    writeCert("ca.pem", ca_.get());
    settings_.listen = "sips:127.0.0.1:5061";
    settings_.certFile = path("gw.pem");
    settings_.keyFile = path("gw.key");
    settings_.caFile = path("ca.pem");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  void writeCert(const std::string& name, X509* x, X509* more = nullptr) {
    FILE* f = std::fopen(path(name).c_str(), "w");
    ASSERT_NE(f, nullptr);
    PEM_write_X509(f, x);
    if (more) PEM_write_X509(f, more);
    std::fclose(f);
  }
  void writeKey(const std::string& name, EVP_PKEY* key, bool encrypted = false) {
    FILE* f = std::fopen(path(name).c_str(), "w");
    ASSERT_NE(f, nullptr);
    static char pass[] = "secret";
    PEM_write_PrivateKey(f, key, encrypted ? EVP_aes_128_cbc() : nullptr,
                         encrypted ? reinterpret_cast<unsigned char*>(pass) : nullptr,
                         encrypted ? 6 : 0, nullptr, nullptr);
    std::fclose(f);
  }
  void writeText(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
  }
  // The message of the TlsFileError that loading throws, checking its field.
  std::string failure(const std::string& field) {
    try {
      loadTlsCredentials(settings_, std::time(nullptr));
    } catch (const TlsFileError& e) {
      EXPECT_EQ(e.field(), field) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "loaded";
    return {};
  }

  std::string dir_;
  PkeyPtr caKey_, key_;
  X509Ptr ca_, cert_;
  SipTlsSettings settings_;
};

TEST_F(TlsFiles, GoodFilesLoad) {
  auto c = loadTlsCredentials(settings_, std::time(nullptr));
  EXPECT_NE(c.subject.find("gw.example.com"), std::string::npos) << c.subject;
  EXPECT_EQ(c.serial, "2A");
  EXPECT_EQ(c.cas.size(), 1u);
  EXPECT_TRUE(c.chain.empty());
  EXPECT_GT(c.notAfter, std::time(nullptr) + 86000);
}

TEST_F(TlsFiles, IntermediatesAfterTheLeafAreTheChain) {
  writeCert("chain.pem", cert_.get(), ca_.get());
  settings_.certFile = path("chain.pem");
  auto c = loadTlsCredentials(settings_, std::time(nullptr));
  EXPECT_EQ(c.chain.size(), 1u);
}

TEST_F(TlsFiles, AMissingFileIsNamed) {
  settings_.certFile = path("nope.pem");
  auto why = failure("cert");
  EXPECT_NE(why.find(path("nope.pem")), std::string::npos) << why;
  EXPECT_NE(why.find("No such file"), std::string::npos) << why;
}

TEST_F(TlsFiles, AKeyOfAnotherCertificateIsRefused) {
  auto other = makeKey();
  writeKey("other.key", other.get());
  settings_.keyFile = path("other.key");
  auto why = failure("key");
  EXPECT_NE(why.find("does not match the certificate"), std::string::npos) << why;
}

TEST_F(TlsFiles, AnExpiredCertificateIsRefused) {
  auto old = makeCert(key_.get(), "gw.example.com", caKey_.get(), ca_.get(), -86400 * 10, -86400);
  writeCert("old.pem", old.get());
  settings_.certFile = path("old.pem");
  auto why = failure("cert");
  EXPECT_NE(why.find("certificate expired on"), std::string::npos) << why;
}

TEST_F(TlsFiles, ACertificateNotYetValidIsRefused) {
  auto future = makeCert(key_.get(), "gw.example.com", caKey_.get(), ca_.get(), 86400, 86400 * 2);
  writeCert("future.pem", future.get());
  settings_.certFile = path("future.pem");
  auto why = failure("cert");
  EXPECT_NE(why.find("not valid before"), std::string::npos) << why;
}

TEST_F(TlsFiles, AnEncryptedKeyIsRefused) {
  writeKey("enc.key", key_.get(), true);
  settings_.keyFile = path("enc.key");
  auto why = failure("key");
  EXPECT_NE(why.find("encrypted"), std::string::npos) << why;
}

TEST_F(TlsFiles, FilesWithoutPemAreRefused) {
  writeText("junk.pem", "not a certificate\n");
  settings_.certFile = path("junk.pem");
  EXPECT_NE(failure("cert").find("no PEM certificate"), std::string::npos);
  settings_.certFile = path("gw.pem");
  settings_.keyFile = path("gw.pem");  // a certificate where the key should be
  EXPECT_NE(failure("key").find("no PEM private key"), std::string::npos);
  settings_.keyFile = path("gw.key");
  settings_.caFile = path("junk.pem");
  EXPECT_NE(failure("ca").find("no PEM certificate"), std::string::npos);
}

TEST_F(TlsFiles, DevicesAndDirectoriesAreRefusedUnread) {
  settings_.certFile = "/dev/zero";
  EXPECT_NE(failure("cert").find("/dev/zero: not a regular file"), std::string::npos);
  settings_.certFile = path("gw.pem");
  settings_.caFile = dir_;
  EXPECT_NE(failure("ca").find("not a regular file"), std::string::npos);
}

TEST_F(TlsFiles, TheSofiaDirectoryIsPrivateAndRemoved) {
  auto c = loadTlsCredentials(settings_, std::time(nullptr));
  std::string where;
  {
    SofiaCertDir dir(c);
    where = dir.path();
    struct stat st {};
    ASSERT_EQ(::stat(where.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(::stat((where + "/agent.pem").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // agent.pem: the key, then the certificate, as Sofia reads it.
    std::ifstream agent(where + "/agent.pem");
    std::string text((std::istreambuf_iterator<char>(agent)), std::istreambuf_iterator<char>());
    auto keyAt = text.find("PRIVATE KEY-----");
    auto certAt = text.find("BEGIN CERTIFICATE");
    EXPECT_NE(keyAt, std::string::npos);
    EXPECT_NE(certAt, std::string::npos);
    EXPECT_LT(keyAt, certAt);
    EXPECT_TRUE(fs::exists(where + "/cafile.pem"));
  }
  EXPECT_FALSE(fs::exists(where));
}

TEST(SipTlsNames, TrustedNamesMatchExactlyIgnoringCase) {
  EXPECT_TRUE(subjectsTrusted({"pool.example.com", "x"}, {"POOL.example.com"}));
  EXPECT_FALSE(subjectsTrusted({"evil-pool.example.com"}, {"pool.example.com"}));
  EXPECT_FALSE(subjectsTrusted({"pool.example.com.evil"}, {"pool.example.com"}));
  EXPECT_FALSE(subjectsTrusted({}, {"pool.example.com"}));
  EXPECT_FALSE(subjectsTrusted({""}, {""}));
}

class TlsConfig : public TlsFiles {
 protected:
  GatewayConfig parse(const std::string& tls) {
    std::string text = R"({"domain": "example.com", "internal": {"listen": ["sip:127.0.0.1:5062"], "tls": )" +
                       tls + "}}";
    return loadConfig(config::Document::parse(text, path("gateway.json")));
  }
  std::string error(const std::string& tls) {
    try {
      parse(tls);
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "accepted: " << tls;
    return {};
  }
};

TEST_F(TlsConfig, ReadsTheBlockWithPathsFromTheConfigDirectory) {
  auto c = parse(R"({"listen": "sips:127.0.0.1:5061", "cert": "gw.pem", "key": "gw.key",
                     "ca": "ca.pem", "require_client_cert": true,
                     "trusted_names": ["pool.example.com"], "reload_interval_s": 5})");
  ASSERT_TRUE(c.internalTls);
  EXPECT_EQ(c.internalTls->listen, "sips:127.0.0.1:5061");
  EXPECT_EQ(c.internalTls->certFile, path("gw.pem"));
  EXPECT_EQ(c.internalTls->caFile, path("ca.pem"));
  EXPECT_TRUE(c.internalTls->requireClientCert);
  EXPECT_EQ(c.internalTls->trustedNames, std::vector<std::string>{"pool.example.com"});
  EXPECT_EQ(c.internalTls->reloadIntervalS, 5);
  EXPECT_EQ(c.internalTls->ciphers, kDefaultSipTlsCiphers);
  EXPECT_FALSE(parse(R"({"listen": "sips:127.0.0.1:5061", "cert": "gw.pem", "key": "gw.key"})")
                   .internalTls->requireClientCert);
}

TEST_F(TlsConfig, NoBlockNoTls) {
  auto c = loadConfig(config::Document::parse(R"({"domain": "example.com"})", "gateway.json"));
  EXPECT_FALSE(c.internalTls);
}

TEST_F(TlsConfig, ProblemsNameFileAndPath) {
  auto expect = [&](const std::string& tls, const std::string& where, const std::string& what) {
    std::string e = error(tls);
    EXPECT_NE(e.find("gateway.json"), std::string::npos) << e;
    EXPECT_NE(e.find(where), std::string::npos) << e;
    EXPECT_NE(e.find(what), std::string::npos) << e;
  };
  expect(R"({"listen": "sip:127.0.0.1:5061", "cert": "gw.pem", "key": "gw.key"})",
         "internal.tls.listen", "not a sips: URL");
  expect(R"({"listen": "sips:127.0.0.1:5061", "key": "gw.key"})", "internal.tls.cert", "required");
  expect(R"({"listen": "sips:127.0.0.1:5061", "cert": "missing.pem", "key": "gw.key"})",
         "internal.tls.cert", "missing.pem: cannot read");
  expect(R"({"listen": "sips:127.0.0.1:5061", "cert": "gw.pem", "key": "gw.key",
             "require_client_cert": true})",
         "internal.tls.require_client_cert", "needs \"ca\"");
  expect(R"({"listen": "sips:127.0.0.1:5061", "cert": "gw.pem", "key": "gw.key", "ca": "ca.pem",
             "trusted_names": ["*.example.com"]})",
         "internal.tls.trusted_names", "no wildcards");
  expect(R"({"listen": "sips:127.0.0.1:5061", "cert": "gw.pem", "key": "gw.key",
             "trusted_names": ["pool.example.com"]})",
         "internal.tls.trusted_names", "needs \"ca\"");
  expect(R"({"listen": "sips:127.0.0.1:5061", "cert": "gw.pem", "key": "gw.key",
             "ciphers": "NOTHING-AT-ALL"})",
         "internal.tls.ciphers", "selects no cipher");
  expect(R"({"listen": "sips:127.0.0.1:5061", "cert": "gw.pem", "key": "gw.key", "tls13": true})",
         "internal.tls.tls13", "");
}

TEST_F(TlsConfig, TheTrunkSideVerifiesEveryTrunk) {
  auto trunk = [&](const std::string& tls) {
    return loadConfig(config::Document::parse(
        R"({"domain": "example.com", "trunk": {"listen": ["sip:127.0.0.1:5060"], "tls": )" + tls +
            "}}",
        path("gateway.json")));
  };
  auto c = trunk(R"({"listen": "sips:127.0.0.1:5065", "cert": "gw.pem", "key": "gw.key",
                     "ca": "ca.pem"})");
  EXPECT_FALSE(c.internalTls);
  ASSERT_TRUE(c.trunkTls);
  EXPECT_EQ(c.trunkTls->listen, "sips:127.0.0.1:5065");
  EXPECT_EQ(c.trunkTls->caFile, path("ca.pem"));
  EXPECT_TRUE(c.trunkTls->requireClientCert);  // a trunk connecting in shows its certificate
  EXPECT_FALSE(trunk(R"({"listen": "sips:127.0.0.1:5065", "cert": "gw.pem", "key": "gw.key",
                         "ca": "ca.pem", "require_client_cert": false})")
                   .trunkTls->requireClientCert);
  auto expect = [&](const std::string& tls, const std::string& where, const std::string& what) {
    try {
      trunk(tls);
      ADD_FAILURE() << "accepted: " << tls;
    } catch (const config::ConfigError& e) {
      std::string text = e.what();
      EXPECT_NE(text.find(where), std::string::npos) << text;
      EXPECT_NE(text.find(what), std::string::npos) << text;
    }
  };
  expect(R"({"listen": "sips:127.0.0.1:5065", "cert": "gw.pem", "key": "gw.key"})",
         "trunk.tls.ca", "required");
  expect(R"({"listen": "sips:127.0.0.1:5065", "cert": "gw.pem", "key": "gw.key", "ca": "ca.pem",
             "trusted_names": ["carrier.example.net"]})",
         "trunk.tls.trusted_names", "tls_name");
  expect(R"({"listen": "sip:127.0.0.1:5065", "cert": "gw.pem", "key": "gw.key", "ca": "ca.pem"})",
         "trunk.tls.listen", "not a sips: URL");
  try {
    loadConfig(config::Document::parse(
        R"({"domain": "example.com", "trunk": {"listen": ["sips:127.0.0.1:5065"]}})", "gateway.json"));
    ADD_FAILURE() << "accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("trunk.tls.listen"), std::string::npos) << e.what();
  }
}

TEST_F(TlsFiles, CertificateNamesFollowRfc6125) {
  auto key = makeKey();
  auto named = makeCert(key.get(), "cn.example.net", caKey_.get(), ca_.get(), -3600, 86400, 7,
                        "DNS:sip.carrier.example.net,DNS:*.pstn.example.net,IP:127.0.0.21");
  EXPECT_TRUE(certificateNames(named.get(), "sip.carrier.example.net"));
  EXPECT_TRUE(certificateNames(named.get(), "SIP.Carrier.Example.NET"));
  EXPECT_TRUE(certificateNames(named.get(), "sip2.pstn.example.net"));  // one label
  EXPECT_FALSE(certificateNames(named.get(), "a.b.pstn.example.net"));
  EXPECT_FALSE(certificateNames(named.get(), "pstn.example.net"));
  EXPECT_TRUE(certificateNames(named.get(), "127.0.0.21"));
  EXPECT_FALSE(certificateNames(named.get(), "127.0.0.22"));
  EXPECT_FALSE(certificateNames(named.get(), "carrier.example.net"));
  // With SANs, the CN is not looked at; without, it is.
  EXPECT_FALSE(certificateNames(named.get(), "cn.example.net"));
  auto cnOnly = makeCert(key.get(), "cn.example.net", caKey_.get(), ca_.get());
  EXPECT_TRUE(certificateNames(cnOnly.get(), "cn.example.net"));
  EXPECT_FALSE(certificateNames(cnOnly.get(), ""));
  EXPECT_FALSE(certificateNames(nullptr, "cn.example.net"));
}

TEST_F(TlsConfig, SipsListenersBelongToTheTlsBlock) {
  try {
    loadConfig(config::Document::parse(
        R"({"domain": "example.com", "internal": {"listen": ["sips:127.0.0.1:5061"]}})",
        "gateway.json"));
    ADD_FAILURE() << "accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("internal.tls.listen"), std::string::npos) << e.what();
  }
}

// The client side of a connection: a certificate to present, a request to send.
struct TlsClient {
  std::uint16_t port = 0;  // 0: the internal side's TLS port
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  std::string request =
      "OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKt1\r\n"
      "Max-Forwards: 70\r\nFrom: <sip:t@example.com>;tag=1\r\nTo: <sip:example.com>\r\n"
      "Call-ID: tls-unit-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
};

// The listener itself, in process: a Gateway with internal.tls on a port Sofia picks, an
// OpenSSL client on a plain blocking socket.
class TlsGateway : public TlsFiles {
 protected:
  void SetUp() override {
    TlsFiles::SetUp();
    settings_.listen = "sips:127.0.0.1:0";
    settings_.reloadIntervalS = 0;
    config_.domain = "example.com";
    config_.internalListen = {"sip:127.0.0.1:0;transport=udp"};
    config_.trunkListen = {"sip:127.0.0.1:0;transport=udp"};
    configure();
    config_.internalTls = settings_;
    metrics_ = std::make_unique<GatewayMetrics>(registry_);
    client_ = std::make_unique<GrpcRegistrarClient>("127.0.0.1:1", std::chrono::milliseconds(100),
                                                    *metrics_);
    loop_.invoke([&] {
      gateway_ = std::make_unique<Gateway>(loop_, config_, *client_, *metrics_, state_);
      port_ = gateway_->tlsPort();
    });
    ASSERT_NE(port_, 0);
  }
  void TearDown() override {
    loop_.invoke([&] { gateway_.reset(); });
    client_.reset();
    loop_.stop();
    TlsFiles::TearDown();
  }

  // What a test changes in settings_ and config_ before the gateway starts.
  virtual void configure() {}

  // Connects with TLS versions [minVersion, maxVersion], verifying the gateway with the CA;
  // returns the peer certificate's serial ("" when the handshake failed) and, when asked,
  // the answer to the client's request.
  std::string connect(int minVersion, int maxVersion, std::string* answer = nullptr,
                      const TlsClient& client = TlsClient{}) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (client.cert) {
      SSL_CTX_use_certificate(ctx, client.cert);
      SSL_CTX_use_PrivateKey(ctx, client.key);
    }
    SSL_CTX_set_min_proto_version(ctx, minVersion);
    SSL_CTX_set_max_proto_version(ctx, maxVersion);
    SSL_CTX_set_security_level(ctx, 0);  // let this client offer TLS 1.0/1.1
    SSL_CTX_set_cipher_list(ctx, "DEFAULT@SECLEVEL=0");
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca_.get());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(client.port ? client.port : port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string serial;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      SSL* ssl = SSL_new(ctx);
      SSL_set_fd(ssl, fd);
      if (SSL_connect(ssl) == 1) {
        if (X509* peer = SSL_get1_peer_certificate(ssl)) {
          BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), nullptr);
          char* hex = BN_bn2hex(bn);
          serial = hex;
          OPENSSL_free(hex);
          BN_free(bn);
          X509_free(peer);
        }
        if (answer) {
          SSL_write(ssl, client.request.data(), static_cast<int>(client.request.size()));
          char buf[4096];
          while (answer->find("\r\n\r\n") == std::string::npos) {
            int n = SSL_read(ssl, buf, sizeof buf);
            if (n <= 0) break;
            answer->append(buf, static_cast<std::size_t>(n));
          }
        }
      }
      SSL_free(ssl);
    }
    ::close(fd);
    SSL_CTX_free(ctx);
    return serial;
  }

  double handshakes(const char* result) {
    double v = 0;
    loop_.invoke([&] { v = metrics_->tlsHandshakes(result); });
    return v;
  }

  GatewayConfig config_;
  prometheus::Registry registry_;
  std::unique_ptr<GatewayMetrics> metrics_;
  GatewayState state_;
  SipLoop loop_;
  std::unique_ptr<GrpcRegistrarClient> client_;
  std::unique_ptr<Gateway> gateway_;
  std::uint16_t port_ = 0;
};

TEST_F(TlsGateway, ServesOptionsOverTls12And13Only) {
  std::string answer;
  EXPECT_EQ(connect(TLS1_3_VERSION, TLS1_3_VERSION, &answer), "2A");
  EXPECT_EQ(answer.rfind("SIP/2.0 200 OK\r\n", 0), 0u) << answer;
  EXPECT_EQ(connect(TLS1_2_VERSION, TLS1_2_VERSION), "2A");
  EXPECT_EQ(connect(TLS1_VERSION, TLS1_1_VERSION), "");
  // Counted on the loop, once per connection.
  for (int i = 0; i < 50 && handshakes("protocol_version") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(handshakes("ok"), 2);
  EXPECT_EQ(handshakes("protocol_version"), 1);
}

TEST_F(TlsGateway, ReloadServesTheNewCertificateToNewConnections) {
  EXPECT_EQ(connect(TLS1_2_VERSION, TLS1_3_VERSION), "2A");
  bool reloaded = false;
  loop_.invoke([&] { reloaded = gateway_->reloadTls(false); });
  EXPECT_FALSE(reloaded);  // nothing changed
  // Bad new files: refused, the old certificate stays.
  auto otherKey = makeKey();
  writeKey("gw.key", otherKey.get());
  loop_.invoke([&] { reloaded = gateway_->reloadTls(true); });
  EXPECT_FALSE(reloaded);
  EXPECT_EQ(connect(TLS1_2_VERSION, TLS1_3_VERSION), "2A");
  // A renewed certificate (serial 0x43) for the new key.
  auto renewed = makeCert(otherKey.get(), "renewed.example.com", caKey_.get(), ca_.get(), -3600,
                          86400, 0x43);
  writeCert("gw.pem", renewed.get());
  loop_.invoke([&] { reloaded = gateway_->reloadTls(false); });
  EXPECT_TRUE(reloaded);
  EXPECT_EQ(connect(TLS1_2_VERSION, TLS1_3_VERSION), "43");
}

// A source opening TLS connections faster than security.flood allows is banned like one
// sending requests: its next ClientHello is refused before any crypto.
class TlsHandshakeFlood : public TlsGateway {
 protected:
  void configure() override {
    config_.flood.windowMs = 60000;
    config_.flood.maxRequests = 3;
  }
};

TEST_F(TlsHandshakeFlood, AFloodingSourceIsRefusedAtItsClientHello) {
  for (int i = 0; i < 3; ++i) EXPECT_EQ(connect(TLS1_2_VERSION, TLS1_3_VERSION), "2A") << i;
  EXPECT_EQ(connect(TLS1_2_VERSION, TLS1_3_VERSION), "");
  EXPECT_EQ(connect(TLS1_2_VERSION, TLS1_3_VERSION), "");
  EXPECT_EQ(handshakes("ok"), 3);
  EXPECT_EQ(handshakes("banned_source"), 2);
  double bans = 0;
  loop_.invoke([&] {
    for (const auto& family : registry_.Collect()) {
      if (family.name != "medius_gateway_flood_bans_total") continue;
      for (const auto& m : family.metric) bans += m.counter.value;
    }
  });
  EXPECT_EQ(bans, 1);
}

// Mutual TLS: a peer whose certificate the CA signed and whose subjectAltName names a
// trusted peer sends calls without digest credentials. The names come from Sofia's reading
// of the certificate, which sip_tls.cpp's X509V3_EXT_get keeps from leaking (the ASan build
// runs this test with LeakSanitizer on).
class TrustedTlsPeer : public TlsGateway {
 protected:
  void configure() override {
    settings_.requireClientCert = true;
    settings_.trustedNames = {"peer-san.example.com"};
  }

  // The answer's status line to a MESSAGE sent with a certificate naming `san`.
  std::string messageFrom(const char* san, long serial) {
    auto key = makeKey();
    auto cert = makeCert(key.get(), "peer-cn.example.com", caKey_.get(), ca_.get(), -3600,
                         86400, serial, san);
    TlsClient client;
    client.cert = cert.get();
    client.key = key.get();
    client.request =
        "MESSAGE sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKm" + std::to_string(serial) + "\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:fe@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
        "Call-ID: tls-unit-m" + std::to_string(serial) + "\r\nCSeq: 1 MESSAGE\r\n"
        "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi";
    std::string answer;
    EXPECT_EQ(connect(TLS1_2_VERSION, TLS1_3_VERSION, &answer, client), "2A");
    return answer.substr(0, answer.find("\r\n"));
  }

  double trustedRequests() {
    double v = 0;
    loop_.invoke([&] {
      for (const auto& family : registry_.Collect()) {
        if (family.name != "medius_gateway_trusted_peer_requests_total") continue;
        for (const auto& m : family.metric) v += m.counter.value;
      }
    });
    return v;
  }
};

TEST_F(TrustedTlsPeer, TheSubjectAltNameMakesThePeerTrusted) {
  // Its CN is not trusted, the second of its subjectAltName DNS names is.
  // Dispatched without a challenge (this gateway serves no MESSAGE).
  EXPECT_EQ(messageFrom("DNS:other.example.com,DNS:peer-san.example.com", 0x51),
            "SIP/2.0 501 Not Implemented");
  EXPECT_EQ(trustedRequests(), 1);
  // Signed by the same CA, naming nobody trusted: challenged like any client, which takes
  // the registrar (none here).
  EXPECT_EQ(messageFrom("DNS:stranger.example.com", 0x52), "SIP/2.0 503 Registrar Unavailable");
  EXPECT_EQ(trustedRequests(), 1);
}

// The trunk side over TLS: one trunk, "carrier", at 127.0.0.1, whose certificate must name
// sip.carrier.example.net, in both directions.
class CarrierLocator final : public TrunkLocator {
 public:
  std::string trunkAt(const std::string& host, std::uint32_t) const override {
    return host == "127.0.0.1" ? "carrier" : "";
  }
  std::uint32_t maxCalls(const std::string&) const override { return 0; }
  v1::TrunkMedia media(const std::string&) const override { return {}; }
  bool trusted(const std::string&) const override { return false; }
  std::optional<std::string> tlsName(const std::string& trunk) const override {
    if (trunk != "carrier") return std::nullopt;
    return std::string("sip.carrier.example.net");
  }
};

class TrunkTls : public TlsGateway {
 protected:
  void configure() override {
    SipTlsSettings trunk = settings_;
    trunk.requireClientCert = true;
    config_.trunkTls = trunk;
  }
  void SetUp() override {
    TlsGateway::SetUp();
    loop_.invoke([&] {
      gateway_->setTrunkLocator(&locator_);
      trunkPort_ = gateway_->tlsPort(Side::Trunk);
    });
    ASSERT_NE(trunkPort_, 0);
    ASSERT_NE(trunkPort_, port_);
  }

  // A certificate from the CA (or `issuer`), for the trunk's side of a connection.
  struct Peer {
    PkeyPtr key;
    X509Ptr cert;
  };
  Peer peer(const char* san, long serial, EVP_PKEY* issuerKey = nullptr, X509* issuer = nullptr) {
    Peer p;
    p.key = makeKey();
    p.cert = makeCert(p.key.get(), "carrier", issuerKey ? issuerKey : caKey_.get(),
                      issuer ? issuer : ca_.get(), -3600, 86400, serial, san);
    return p;
  }

  // The answer to an OPTIONS sent over the trunk-side TLS port with `p`'s certificate
  // ("" when the gateway refused the connection).
  std::string optionsFrom(const Peer* p) {
    TlsClient client;
    client.port = trunkPort_;
    if (p) {
      client.cert = p->cert.get();
      client.key = p->key.get();
    }
    std::string answer;
    connect(TLS1_2_VERSION, TLS1_3_VERSION, &answer, client);
    return answer.substr(0, answer.find("\r\n"));
  }

  CarrierLocator locator_;
  std::uint16_t trunkPort_ = 0;
};

TEST_F(TrunkTls, ATrunkConnectingInMustShowItsName) {
  auto good = peer("DNS:sip.carrier.example.net", 0x61);
  EXPECT_EQ(optionsFrom(&good), "SIP/2.0 200 OK");
  // A wildcard for the name's first label is the same name.
  auto wildcard = peer("DNS:*.carrier.example.net", 0x62);
  EXPECT_EQ(optionsFrom(&wildcard), "SIP/2.0 200 OK");
  // Signed by the same CA but naming another peer; no certificate; another CA's.
  auto other = peer("DNS:sip.other.example.net", 0x63);
  EXPECT_EQ(optionsFrom(&other), "");
  EXPECT_EQ(optionsFrom(nullptr), "");
  auto rogueKey = makeKey();
  auto rogueCa = makeCert(rogueKey.get(), "Rogue CA", nullptr, nullptr);
  auto rogue = peer("DNS:sip.carrier.example.net", 0x64, rogueKey.get(), rogueCa.get());
  EXPECT_EQ(optionsFrom(&rogue), "");
  for (int i = 0; i < 50 && handshakes("ok") + handshakes("bad_certificate") +
                                    handshakes("no_certificate") + handshakes("handshake_failure") <
                                5;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(handshakes("ok"), 2);
  EXPECT_EQ(handshakes("bad_certificate"), 2);
}

TEST_F(TrunkTls, TheInternalSideIsNotPinned) {
  // The same gateway's internal TLS port knows nothing of trunks.
  std::string answer;
  EXPECT_EQ(connect(TLS1_2_VERSION, TLS1_3_VERSION, &answer), "2A");
  EXPECT_EQ(answer.rfind("SIP/2.0 200 OK\r\n", 0), 0u) << answer;
}

// A trunk's TLS server on 127.0.0.1: accepts one connection, asks for the client's
// certificate, and answers one request with 200.
class TrunkServer {
 public:
  TrunkServer(X509* cert, EVP_PKEY* key, X509* ca) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx_, cert);
    SSL_CTX_use_PrivateKey(ctx_, key);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_), ca);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 4);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    thread_ = std::thread([this] { serve(); });
  }
  ~TrunkServer() {
    wait();
    ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  std::uint16_t port() const { return port_; }
  // After the thread ended (join through the destructor, or wait()).
  void wait() {
    if (thread_.joinable()) thread_.join();
  }
  std::string sni, request, clientSubject;
  bool handshakeOk = false;

 private:
  void serve() {
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    timeval tv{5, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, c);
    if (SSL_accept(ssl) == 1) {
      handshakeOk = true;
      if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) sni = name;
      if (X509* x = SSL_get0_peer_certificate(ssl)) {
        char line[256];
        X509_NAME_oneline(X509_get_subject_name(x), line, sizeof line);
        clientSubject = line;
      }
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<std::size_t>(n));
      }
      auto header = [&](const char* name) {
        auto at = request.find(std::string("\r\n") + name + ":");
        if (at == std::string::npos) return std::string();
        auto end = request.find("\r\n", at + 2);
        return request.substr(at + 2, end - at - 2);
      };
      std::string answer = "SIP/2.0 200 OK\r\n" + header("Via") + "\r\n" + header("From") +
                           "\r\n" + header("To") + ";tag=t1\r\n" + header("Call-ID") + "\r\n" +
                           header("CSeq") + "\r\nContent-Length: 0\r\n\r\n";
      if (!request.empty()) SSL_write(ssl, answer.data(), static_cast<int>(answer.size()));
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ::close(c);
  }
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

class TrunkTlsOutgoing : public TrunkTls {
 protected:
  // Probes the trunk server with an OPTIONS over TLS; returns the final status. The
  // probe is cancelled once `server` has ended when it has no answer by then (Sofia
  // 1.12.11 closes a connection whose handshake failed without failing the request on
  // it: the transaction would end only at its timer F).
  std::uint32_t probe(TrunkServer& server) {
    std::uint16_t port = server.port();
    std::atomic<bool> done{false};
    std::atomic<std::uint32_t> code{0};
    v1::SocketAddress address;
    address.set_host("127.0.0.1");
    address.set_port(port);
    address.set_transport(v1::TRANSPORT_TLS);
    std::uint64_t handle = 0;
    loop_.invoke([&] {
      handle = gateway_->probe(address, [&](ProbeResult, std::uint32_t c) {
        code = c;
        done = true;
      });
    });
    EXPECT_NE(handle, 0u);
    server.wait();
    for (int i = 0; i < 200 && !done && server.handshakeOk; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    loop_.invoke([&] {
      if (!done) gateway_->cancel(handle);
    });
    return code;
  }
};

TEST_F(TrunkTlsOutgoing, TheTrunkMustShowItsNameAndHearsItAsSni) {
  auto good = peer("DNS:sip.carrier.example.net", 0x71);
  TrunkServer server(good.cert.get(), good.key.get(), ca_.get());
  EXPECT_EQ(probe(server), 200u);
  EXPECT_TRUE(server.handshakeOk);
  EXPECT_EQ(server.sni, "sip.carrier.example.net");
  EXPECT_NE(server.clientSubject.find("CN=gw.example.com"), std::string::npos)
      << server.clientSubject;  // mutual: the gateway showed its own certificate
  EXPECT_EQ(server.request.rfind("OPTIONS sips:127.0.0.1:", 0), 0u) << server.request;
}

TEST_F(TrunkTlsOutgoing, ATrunkNamedOtherwiseHearsNothing) {
  auto other = peer("DNS:sip.other.example.net", 0x72);
  TrunkServer server(other.cert.get(), other.key.get(), ca_.get());
  EXPECT_EQ(probe(server), 0u);
  // Refused in the handshake (TLS 1.3: before the client's Finished), so not a byte of
  // SIP was sent.
  EXPECT_FALSE(server.handshakeOk);
  EXPECT_EQ(server.request, "");
}

}  // namespace
}  // namespace medius::gateway
