// The real gateway library on 127.0.0.1 (free ports) with a fake registrar: the
// generated medius.v1.Registrar service implemented in-process. A UDP socket plays the
// SIP client.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include "medius/common/metrics.hpp"
#include "medius/gateway/admin_service.hpp"
#include "medius/gateway/gateway.hpp"
#include "medius/gateway/registrar_client.hpp"
#include "medius/gateway/sip_loop.hpp"
#include "medius/v1/registrar.grpc.pb.h"
#include "net.hpp"

namespace medius::gateway {
namespace {

// Behaviour keyed by the AOR user: "alice" 401 without credentials, 200 with;
// "brief" 423; anything else 404.
class FakeRegistrar final : public v1::Registrar::Service {
 public:
  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest* req,
                        v1::RegisterResponse* resp) override {
    {
      std::lock_guard lock(mutex_);
      last_ = *req;
      ++registers_;
    }
    if (req->aor() == "sip:slow@example.com") {
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
      resp->set_result(v1::RegisterResponse::RESULT_NOT_FOUND);
    } else if (req->aor() == "sip:brief@example.com") {
      resp->set_result(v1::RegisterResponse::RESULT_INTERVAL_TOO_BRIEF);
      resp->set_min_expires(60);
    } else if (req->aor() != "sip:alice@example.com") {
      resp->set_result(v1::RegisterResponse::RESULT_NOT_FOUND);
    } else if (!req->has_credentials() || req->credentials().response() == "wrong" ||
               req->credentials().response() == "stale") {
      // "wrong": a failed password check (counted by the gateway's limits); "stale" not.
      resp->set_result(v1::RegisterResponse::RESULT_UNAUTHORIZED);
      resp->set_credentials_rejected(req->has_credentials() &&
                                     req->credentials().response() == "wrong");
      resp->add_challenges()->set_header_value(
          "Digest realm=\"example.com\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"");
      resp->add_challenges()->set_header_value(
          "Digest realm=\"example.com\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"");
    } else {
      resp->set_result(v1::RegisterResponse::RESULT_OK);
      resp->set_authenticated_user(req->credentials().username());
      for (const auto& c : req->contacts()) {
        auto* b = resp->add_bindings();
        b->set_aor(req->aor());
        b->set_contact_uri(c.uri());
        b->set_expires_in(c.has_expires() ? c.expires() : req->expires());
      }
      auto* other = resp->add_bindings();  // a binding made earlier by another device
      other->set_aor(req->aor());
      other->set_contact_uri("sip:alice@192.0.2.99:5060");
      other->set_expires_in(42);
    }
    return grpc::Status::OK;
  }
  v1::RegisterRequest last() {
    std::lock_guard lock(mutex_);
    return last_;
  }

  // Call authentication: one challenge; the "response" parameter says the verdict
  // ("good" valid as sip:<username>@example.com, "stale", "replay", else invalid).
  grpc::Status Challenge(grpc::ServerContext*, const v1::ChallengeRequest* req,
                         v1::ChallengeResponse* resp) override {
    {
      std::lock_guard lock(mutex_);
      challengeRealm_ = req->realm();
    }
    resp->add_challenges()->set_header_value(
        "Digest realm=\"example.com\", nonce=\"c1\", algorithm=MD5, qop=\"auth\"");
    // Sets for the gateway's ChallengePool only when a test asks for them ("p<N>" nonces).
    std::lock_guard lock(mutex_);
    ++challenges_;
    if (issueRegisterSets_) {
      resp->set_nonce_ttl_seconds(300);
      for (std::uint32_t i = 0; i < req->register_sets(); ++i) {
        std::string nonce = "p" + std::to_string(++issued_);
        auto* set = resp->add_register_sets();
        for (const char* alg : {"SHA-256", "MD5"}) {
          auto* c = set->add_challenges();
          c->set_nonce(nonce);
          c->set_header_value("Digest realm=\"example.com\", nonce=\"" + nonce +
                              "\", algorithm=" + alg + ", qop=\"auth\"");
        }
      }
    }
    return grpc::Status::OK;
  }
  void issueRegisterSets() {
    std::lock_guard lock(mutex_);
    issueRegisterSets_ = true;
  }
  int challenges() {
    std::lock_guard lock(mutex_);
    return challenges_;
  }
  grpc::Status VerifyDigest(grpc::ServerContext*, const v1::VerifyDigestRequest* req,
                            v1::VerifyDigestResponse* resp) override {
    {
      std::lock_guard lock(mutex_);
      verified_ = req->credentials();
      ++verifications_;
    }
    const std::string& r = req->credentials().response();
    if (r == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(400));
    if (r == "good" || r == "slow") {
      resp->set_result(v1::VerifyDigestResponse::RESULT_OK);
      resp->set_aor("sip:" + req->credentials().username() + "@example.com");
      return grpc::Status::OK;
    }
    resp->set_result(r == "stale"    ? v1::VerifyDigestResponse::RESULT_STALE
                     : r == "replay" ? v1::VerifyDigestResponse::RESULT_REPLAYED
                                     : v1::VerifyDigestResponse::RESULT_INVALID);
    resp->add_challenges()->set_header_value(
        std::string("Digest realm=\"example.com\", nonce=\"c2\", algorithm=MD5, qop=\"auth\"") +
        (r == "stale" ? ", stale=true" : ""));
    return grpc::Status::OK;
  }
  std::string challengeRealm() {
    std::lock_guard lock(mutex_);
    return challengeRealm_;
  }
  v1::DigestCredentials verified() {
    std::lock_guard lock(mutex_);
    return verified_;
  }
  int verifications() {
    std::lock_guard lock(mutex_);
    return verifications_;
  }
  int registers() {
    std::lock_guard lock(mutex_);
    return registers_;
  }

 private:
  std::mutex mutex_;
  v1::RegisterRequest last_;
  std::string challengeRealm_;
  v1::DigestCredentials verified_;
  int verifications_ = 0;
  int registers_ = 0;
  int challenges_ = 0;
  bool issueRegisterSets_ = false;
  std::uint32_t issued_ = 0;
};

// Trunks by source: only `allowed` (127.0.0.1:port) is the trunk "pstn".
class FakeLocator final : public TrunkLocator {
 public:
  std::string trunkAt(const std::string& host, std::uint32_t port) const override {
    return host == "127.0.0.1" && port == allowed ? "pstn" : "";
  }
  std::uint32_t maxCalls(const std::string&) const override { return 0; }
  v1::TrunkMedia media(const std::string&) const override { return {}; }
  bool trusted(const std::string&) const override { return false; }
  std::optional<std::string> tlsName(const std::string& trunk) const override {
    if (tls.empty() || trunk != "pstn") return std::nullopt;
    return tls;
  }
  std::uint32_t allowed = 0;
  std::string tls;  // set: "pstn" is a TLS trunk with this certificate name
};

std::string proxyAuth(const std::string& user, const std::string& response) {
  return "Proxy-Authorization: Digest username=\"" + user +
         "\", realm=\"example.com\", nonce=\"c1\", uri=\"sip:example.com\", response=\"" +
         response + "\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\"\r\n";
}

using medius::testing::freeLoopbackPort;

class UdpClient {
 public:
  // Bound to a free port of `host` (a loopback address: another source than 127.0.0.1).
  explicit UdpClient(const char* host = "127.0.0.1") {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, host, &a.sin_addr);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~UdpClient() { close(fd_); }
  std::uint16_t port() const { return port_; }

  // Sends and returns the first final response ("" on timeout).
  std::string exchange(std::uint16_t to, const std::string& text) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(to);
    sendto(fd_, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    return receive();
  }
  std::string receive() {
    char buf[65536];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return "";
      std::string r(buf, static_cast<std::size_t>(n));
      if (r.rfind("SIP/2.0 1", 0) != 0) return r;
    }
  }
  // The first response within ms ("" when none came).
  std::string receiveWithin(int ms) {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string r = receive();
    timeval normal{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &normal, sizeof normal);
    return r;
  }
  // Sends without waiting (ACK).
  void send(std::uint16_t to, const std::string& text) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(to);
    sendto(fd_, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

int statusOf(const std::string& response) {
  if (response.size() < 12 || response.rfind("SIP/2.0 ", 0) != 0) return 0;
  return std::stoi(response.substr(8, 3));
}

std::size_t countHeader(const std::string& response, const std::string& name) {
  std::size_t n = 0;
  for (std::size_t pos = 0; (pos = response.find("\r\n" + name + ":", pos)) != std::string::npos; ++pos) ++n;
  return n;
}

std::optional<std::string> headerValue(const std::string& response, const std::string& name) {
  auto pos = response.find("\r\n" + name + ": ");
  if (pos == std::string::npos) return std::nullopt;
  pos += name.size() + 4;
  return response.substr(pos, response.find("\r\n", pos) - pos);
}

// Value of one series in the text exposition; labels as printed (sorted by name).
double metric(prometheus::Registry& registry, const std::string& series) {
  std::string text = metrics::serialize(registry);
  auto pos = text.find("\n" + series + " ");
  if (pos == std::string::npos) return 0;
  pos += series.size() + 2;
  return std::stod(text.substr(pos, text.find('\n', pos) - pos));
}

class GatewayLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &registrarPort_);
    builder.RegisterService(&fake_);
    registrarServer_ = builder.BuildAndStart();
    ASSERT_TRUE(registrarServer_);

    internalPort_ = freeLoopbackPort();
    trunkPort_ = freeLoopbackPort();
    ASSERT_NE(internalPort_, 0);
    ASSERT_NE(trunkPort_, 0);
    config_.domain = "example.com";
    config_.gatewayId = "gw-test";
    config_.internalListen = {"sip:127.0.0.1:" + std::to_string(internalPort_)};
    config_.trunkListen = {"sip:127.0.0.1:" + std::to_string(trunkPort_)};
    config_.registrarAddress = "127.0.0.1:" + std::to_string(registrarPort_);
    config_.registrarTimeoutMs = 1000;
    config_.retryAfterSeconds = 7;
    config_.userAgent = "Medius-Test/1";

    metrics_ = std::make_unique<GatewayMetrics>(registry_);
    loop_ = std::make_unique<SipLoop>();
    client_ = std::make_unique<GrpcRegistrarClient>(
        config_.registrarAddress, std::chrono::milliseconds(config_.registrarTimeoutMs), *metrics_);
    loop_->invoke([&] {
      gateway_ = std::make_unique<Gateway>(*loop_, config_, *client_, *metrics_, state_);
    });
  }

  void TearDown() override {
    if (loop_) loop_->invoke([&] { gateway_.reset(); });
    client_.reset();
    loop_.reset();
    if (registrarServer_) registrarServer_->Shutdown();
  }

  std::string request(const std::string& method, const std::string& user,
                      const std::string& extra, const std::string& contact = "") {
    static std::atomic<int> seq{0};
    int n = ++seq;
    std::string c = contact.empty()
                        ? "<sip:" + user + "@127.0.0.1:" + std::to_string(sip_.port()) + ">"
                        : contact;
    return method + " sip:example.com SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:" + std::to_string(sip_.port()) +
           ";rport;branch=z9hG4bK-test-" + std::to_string(n) + "\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:" + user + "@example.com>;tag=t" + std::to_string(n) + "\r\n"
           "To: <sip:" + user + "@example.com>\r\n"
           "Call-ID: call-" + std::to_string(n) + "@test\r\n"
           "CSeq: 1 " + method + "\r\n"
           "Contact: " + c + "\r\n" + extra + "Content-Length: 0\r\n\r\n";
  }

  // A metric after the loop finished what it was doing (counters move on the loop,
  // right after the datagram left).
  double m(const std::string& series) {
    loop_->invoke([] {});
    return metric(registry_, series);
  }

  FakeRegistrar fake_;
  int registrarPort_ = 0;
  std::unique_ptr<grpc::Server> registrarServer_;
  std::uint16_t internalPort_ = 0;
  std::uint16_t trunkPort_ = 0;
  GatewayConfig config_;
  prometheus::Registry registry_;
  std::unique_ptr<GatewayMetrics> metrics_;
  GatewayState state_;
  std::unique_ptr<SipLoop> loop_;
  std::unique_ptr<GrpcRegistrarClient> client_;
  std::unique_ptr<Gateway> gateway_;
  UdpClient sip_;
};

TEST_F(GatewayLoopTest, TheFloodGuardDropsBeforeATransactionExists) {
  // This gateway allows 3 requests per minute per source.
  loop_->invoke([&] {
    gateway_.reset();
    config_.flood.windowMs = 60000;
    config_.flood.maxRequests = 3;
    config_.flood.banSeconds = 600;
    gateway_ = std::make_unique<Gateway>(*loop_, config_, *client_, *metrics_, state_);
  });
  auto transactions = [&] {
    std::size_t n = 0;
    loop_->invoke([&] { n = gateway_->serverTransactions(); });
    return n;
  };
  std::size_t before = transactions();
  for (int i = 0; i < 3; ++i) {
    std::string r = sip_.exchange(internalPort_, request("OPTIONS", "bob", ""));
    EXPECT_EQ(statusOf(r), 200) << r;
  }
  EXPECT_EQ(transactions(), before + 3);
  // The fourth starts a ban; it and the next ones get no answer and cost no transaction.
  for (int i = 0; i < 20; ++i) sip_.send(internalPort_, request("OPTIONS", "bob", ""));
  sip_.send(internalPort_, request("OPTIONS", "bob", "User-Agent: friendly-scanner\r\n"));
  EXPECT_EQ(sip_.receiveWithin(300), "");
  EXPECT_EQ(m("medius_gateway_flood_dropped_total{reason=\"banned\"}"), 20);
  EXPECT_EQ(m("medius_gateway_flood_dropped_total{reason=\"scanner\"}"), 1);
  EXPECT_EQ(m("medius_gateway_flood_bans_total"), 1);
  EXPECT_EQ(m("medius_gateway_flood_banned_sources"), 1);
  EXPECT_EQ(m("medius_gateway_flood_sources"), 1);
  EXPECT_EQ(m("medius_gateway_sip_requests_total{method=\"OPTIONS\",side=\"internal\"}"), 24);
  EXPECT_EQ(transactions(), before + 3);
}

TEST_F(GatewayLoopTest, OverTheGlobalRateTheAnswerIsAStateless503) {
  loop_->invoke([&] {
    gateway_.reset();
    config_.flood.maxRequestsPerSecond = 2;
    config_.flood.retryAfterSeconds = 11;
    gateway_ = std::make_unique<Gateway>(*loop_, config_, *client_, *metrics_, state_);
  });
  std::size_t before = 0;
  loop_->invoke([&] { before = gateway_->serverTransactions(); });
  EXPECT_EQ(statusOf(sip_.exchange(internalPort_, request("OPTIONS", "bob", ""))), 200);
  EXPECT_EQ(statusOf(sip_.exchange(internalPort_, request("OPTIONS", "bob", ""))), 200);
  std::string r = sip_.exchange(internalPort_, request("OPTIONS", "bob", ""));
  EXPECT_EQ(statusOf(r), 503) << r;
  EXPECT_EQ(headerValue(r, "Retry-After").value_or(""), "11") << r;
  EXPECT_EQ(headerValue(r, "Server").value_or(""), "Medius-Test/1") << r;
  EXPECT_EQ(m("medius_gateway_flood_rejected_total{reason=\"rate\"}"), 1);
  EXPECT_EQ(m("medius_gateway_sip_responses_total{code_class=\"5xx\",method=\"OPTIONS\","
              "side=\"internal\"}"),
            1);
  std::size_t after = 0;
  loop_->invoke([&] { after = gateway_->serverTransactions(); });
  EXPECT_EQ(after, before + 2);
}

TEST_F(GatewayLoopTest, RegisterIsChallengedThenAccepted) {
  std::string r = sip_.exchange(internalPort_, request("REGISTER", "alice", "Expires: 3600\r\n"));
  EXPECT_EQ(statusOf(r), 401) << r;
  EXPECT_EQ(countHeader(r, "WWW-Authenticate"), 2u) << r;
  EXPECT_EQ(headerValue(r, "Server").value_or(""), "Medius-Test/1");

  r = sip_.exchange(internalPort_,
                    request("REGISTER", "alice",
                            "Expires: 3600\r\nUser-Agent: TestPhone\r\nAuthorization: Digest username=\"alice\", "
                            "realm=\"example.com\", nonce=\"n1\", uri=\"sip:example.com\", "
                            "response=\"0123\", qop=auth, nc=00000001, cnonce=\"c\"\r\n"));
  EXPECT_EQ(statusOf(r), 200) << r;
  EXPECT_EQ(countHeader(r, "Contact"), 2u) << r;
  EXPECT_NE(r.find(";expires=3600"), std::string::npos) << r;
  EXPECT_NE(r.find("<sip:alice@192.0.2.99:5060>;expires=42"), std::string::npos) << r;
  EXPECT_TRUE(headerValue(r, "Date").has_value()) << r;

  v1::RegisterRequest seen = fake_.last();
  EXPECT_EQ(seen.aor(), "sip:alice@example.com");
  EXPECT_EQ(seen.credentials().username(), "alice");
  EXPECT_EQ(seen.user_agent(), "TestPhone");
  EXPECT_EQ(seen.gateway_id(), "gw-test");
  EXPECT_EQ(seen.received().host(), "127.0.0.1");
  EXPECT_EQ(seen.received().port(), sip_.port());
  EXPECT_EQ(seen.received().transport(), v1::TRANSPORT_UDP);

  EXPECT_EQ(m("medius_gateway_sip_requests_total{method=\"REGISTER\",side=\"internal\"}"), 2);
  EXPECT_EQ(m("medius_gateway_sip_responses_total{code_class=\"4xx\",method=\"REGISTER\",side=\"internal\"}"), 1);
  EXPECT_EQ(m("medius_gateway_sip_responses_total{code_class=\"2xx\",method=\"REGISTER\",side=\"internal\"}"), 1);
  EXPECT_EQ(m("medius_gateway_grpc_client_seconds_count{method=\"Register\",service=\"registrar\"}"), 2);
  EXPECT_EQ(m("medius_gateway_register_pending"), 0);
  EXPECT_EQ(state_.pendingRegisters.load(), 0u);
}

TEST_F(GatewayLoopTest, RegisterRetransmissionsAreAnsweredWithoutAnyServerTransaction) {
  std::size_t before = 0;
  loop_->invoke([&] { before = gateway_->serverTransactions(); });
  // The same REGISTER (same branch, Call-ID and CSeq) twice: the second is a retransmission
  // after the answer, answered again with that answer, the registrar not asked again.
  std::string req = request("REGISTER", "alice", "Expires: 3600\r\n");
  std::string first = sip_.exchange(internalPort_, req);
  EXPECT_EQ(statusOf(first), 401) << first;
  EXPECT_EQ(fake_.registers(), 1);
  std::string again = sip_.exchange(internalPort_, req);
  EXPECT_EQ(statusOf(again), 401) << again;
  EXPECT_EQ(countHeader(again, "WWW-Authenticate"), 2u) << again;
  EXPECT_EQ(headerValue(again, "Server").value_or(""), "Medius-Test/1");
  EXPECT_EQ(fake_.registers(), 1);
  EXPECT_EQ(m("medius_gateway_register_retransmissions_total{result=\"answered_again\"}"), 1);

  // A retransmission while the registrar works (it takes 400 ms for "slow") is dropped:
  // one answer, one registrar call.
  std::string slow = request("REGISTER", "slow", "Expires: 3600\r\n");
  sip_.send(internalPort_, slow);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  sip_.send(internalPort_, slow);
  std::string answer = sip_.receiveWithin(2000);
  EXPECT_EQ(statusOf(answer), 404) << answer;
  EXPECT_EQ(sip_.receiveWithin(300), "");
  EXPECT_EQ(fake_.registers(), 2);
  EXPECT_EQ(m("medius_gateway_register_retransmissions_total{result=\"absorbed\"}"), 1);
  EXPECT_EQ(m("medius_gateway_sip_responses_total{code_class=\"4xx\",method=\"REGISTER\","
              "side=\"internal\"}"),
            3);

  // A new REGISTER (new branch, CSeq) is no retransmission. None of them cost nta a server
  // transaction (each held ~8.5 KB for 32 s: docs/performance.md).
  EXPECT_EQ(statusOf(sip_.exchange(internalPort_, request("REGISTER", "alice", "Expires: 3600\r\n"))),
            401);
  EXPECT_EQ(fake_.registers(), 3);
  std::size_t after = 0;
  loop_->invoke([&] { after = gateway_->serverTransactions(); });
  EXPECT_EQ(after, before);
}

TEST_F(GatewayLoopTest, RegistersWithoutCredentialsAreChallengedFromThePool) {
  fake_.issueRegisterSets();
  // The first one goes to the registrar (the pool is empty) and starts filling it.
  std::string first = sip_.exchange(internalPort_, request("REGISTER", "alice", "Expires: 3600\r\n"));
  EXPECT_EQ(statusOf(first), 401) << first;
  EXPECT_EQ(fake_.registers(), 1);
  for (int i = 0; i < 50 && fake_.challenges() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The refill's answer comes back through a gRPC thread and the loop.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  loop_->invoke([] {});
  // Then each gets a set of its own, without a Register call: both algorithms, a nonce
  // no other client got.
  std::set<std::string> nonces;
  for (int i = 0; i < 3; ++i) {
    std::string r = sip_.exchange(internalPort_, request("REGISTER", "alice", "Expires: 3600\r\n"));
    EXPECT_EQ(statusOf(r), 401) << r;
    EXPECT_EQ(countHeader(r, "WWW-Authenticate"), 2u) << r;
    EXPECT_EQ(headerValue(r, "Server").value_or(""), "Medius-Test/1");
    auto header = headerValue(r, "WWW-Authenticate").value_or("");
    auto at = header.find("nonce=\"p");
    ASSERT_NE(at, std::string::npos) << r;
    nonces.insert(header.substr(at, header.find('"', at + 7) - at));
  }
  EXPECT_EQ(nonces.size(), 3u);
  EXPECT_EQ(fake_.registers(), 1);
  EXPECT_EQ(m("medius_gateway_register_local_challenges_total"), 3);
  // Credentials, or an AOR of another domain, still go to the registrar.
  std::string other = sip_.exchange(
      internalPort_, "REGISTER sip:example.com SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:" + std::to_string(sip_.port()) +
                         ";rport;branch=z9hG4bK-other\r\n"
                     "Max-Forwards: 70\r\nFrom: <sip:alice@elsewhere.example>;tag=o\r\n"
                     "To: <sip:alice@elsewhere.example>\r\nCall-ID: other@test\r\n"
                     "CSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1>\r\n"
                     "Content-Length: 0\r\n\r\n");
  EXPECT_EQ(statusOf(other), 404) << other;
  EXPECT_EQ(fake_.registers(), 2);
  std::string authed = sip_.exchange(
      internalPort_,
      request("REGISTER", "alice",
              "Expires: 3600\r\nAuthorization: Digest username=\"alice\", realm=\"example.com\", "
              "nonce=\"p2\", uri=\"sip:example.com\", response=\"0123\", qop=auth, "
              "nc=00000001, cnonce=\"c\"\r\n"));
  EXPECT_EQ(statusOf(authed), 200) << authed;
  EXPECT_EQ(fake_.registers(), 3);
}

TEST_F(GatewayLoopTest, IntervalTooBriefCarriesMinExpires) {
  std::string r = sip_.exchange(internalPort_, request("REGISTER", "brief", "Expires: 5\r\n"));
  EXPECT_EQ(statusOf(r), 423) << r;
  EXPECT_EQ(headerValue(r, "Min-Expires").value_or(""), "60") << r;
}

TEST_F(GatewayLoopTest, RegistrarDownGives503WithRetryAfter) {
  registrarServer_->Shutdown();
  registrarServer_.reset();
  std::string r = sip_.exchange(internalPort_, request("REGISTER", "alice", "Expires: 60\r\n"));
  EXPECT_EQ(statusOf(r), 503) << r;
  EXPECT_EQ(headerValue(r, "Retry-After").value_or(""), "7") << r;
  EXPECT_EQ(m("medius_gateway_sip_responses_total{code_class=\"5xx\",method=\"REGISTER\",side=\"internal\"}"), 1);
  loop_->invoke([] {});
  std::string errors = metrics::serialize(registry_);
  EXPECT_NE(errors.find("medius_gateway_grpc_client_errors_total{code=\""), std::string::npos);
}

TEST_F(GatewayLoopTest, MalformedRegistersGet4xxAndTheGatewayKeepsServing) {
  struct Case {
    std::string extra;
    std::string contact;
  };
  const Case cases[] = {
      {"Expires: abc\r\n", ""},
      {"Expires: 99999999999999999999\r\n", ""},
      {"Expires: 60\r\n", "<sip:alice@>"},
      {"Expires: 60\r\n", "<<<garbage"},
      {"Expires: 60\r\n", "<sip:alice@h>;expires=zz"},
      {"Expires: 10\r\nExpires: 20\r\n", ""},
      {"Authorization: \"\r\n", ""},
  };
  for (const auto& c : cases) {
    std::string r = sip_.exchange(internalPort_, request("REGISTER", "alice", c.extra, c.contact));
    int status = statusOf(r);
    EXPECT_GE(status, 400) << c.extra << c.contact << "\n" << r;
    EXPECT_LT(status, 500) << r;
  }
  // Garbage that is not SIP at all: nothing to answer, nothing may break.
  sip_.send(internalPort_, "\x01\x02 not sip at all\r\n\r\n");
  std::string r = sip_.exchange(internalPort_, request("OPTIONS", "alice", ""));
  EXPECT_EQ(statusOf(r), 200) << r;
}

TEST_F(GatewayLoopTest, OptionsAdvertisesCapabilities) {
  std::string r = sip_.exchange(trunkPort_, request("OPTIONS", "pstn", ""));
  EXPECT_EQ(statusOf(r), 200) << r;
  EXPECT_TRUE(headerValue(r, "Allow").has_value()) << r;
  EXPECT_EQ(headerValue(r, "Accept").value_or(""), "application/sdp") << r;
  EXPECT_TRUE(headerValue(r, "Supported").has_value()) << r;
  EXPECT_EQ(headerValue(r, "Server").value_or(""), "Medius-Test/1") << r;
  EXPECT_EQ(m("medius_gateway_sip_requests_total{method=\"OPTIONS\",side=\"trunk\"}"), 1);
  EXPECT_EQ(m("medius_gateway_sip_responses_total{code_class=\"2xx\",method=\"OPTIONS\",side=\"trunk\"}"), 1);
}

TEST_F(GatewayLoopTest, UnimplementedMethodsGet501AndTrunkRegister403) {
  std::string r = sip_.exchange(trunkPort_, request("INVITE", "bob", ""));
  EXPECT_EQ(statusOf(r), 501) << r;
  EXPECT_TRUE(headerValue(r, "Allow").has_value()) << r;
  // The internal side authenticates first (auth.calls "required"), then says 501.
  r = sip_.exchange(internalPort_, request("FROBNICATE", "bob", ""));
  EXPECT_EQ(statusOf(r), 407) << r;
  r = sip_.exchange(internalPort_, request("FROBNICATE", "bob", proxyAuth("bob", "good")));
  EXPECT_EQ(statusOf(r), 501) << r;
  EXPECT_TRUE(headerValue(r, "Allow").has_value()) << r;
  EXPECT_EQ(m("medius_gateway_sip_requests_total{method=\"other\",side=\"internal\"}"), 2);
  r = sip_.exchange(internalPort_, request("BYE", "bob", proxyAuth("bob", "good")));
  EXPECT_EQ(statusOf(r), 481) << r;
  r = sip_.exchange(trunkPort_, request("REGISTER", "alice", "Expires: 60\r\n"));
  EXPECT_EQ(statusOf(r), 403) << r;
  EXPECT_NE(r.find("Registration not accepted on the trunk side"), std::string::npos);
  // A stray ACK is never answered: the next answer is the OPTIONS'.
  sip_.send(internalPort_, request("ACK", "bob", ""));
  r = sip_.exchange(internalPort_, request("OPTIONS", "bob", ""));
  EXPECT_EQ(statusOf(r), 200) << r;
  EXPECT_NE(r.find("CSeq: 1 OPTIONS"), std::string::npos) << r;
  EXPECT_EQ(m("medius_gateway_sip_requests_total{method=\"ACK\",side=\"internal\"}"), 1);
}

TEST_F(GatewayLoopTest, CallsFromTheInternalSideNeedCredentials) {
  // No credentials: 407 with the registrar's challenge (as Proxy-Authenticate).
  std::string r = sip_.exchange(internalPort_, request("INVITE", "alice", ""));
  EXPECT_EQ(statusOf(r), 407) << r;
  EXPECT_EQ(countHeader(r, "Proxy-Authenticate"), 1u) << r;
  EXPECT_EQ(countHeader(r, "WWW-Authenticate"), 0u) << r;
  EXPECT_NE(r.find("nonce=\"c1\""), std::string::npos) << r;
  EXPECT_EQ(fake_.challengeRealm(), "example.com");
  EXPECT_EQ(m("medius_gateway_auth_failures_total{reason=\"missing\"}"), 1);
  // Credentials for another realm are none of ours.
  r = sip_.exchange(internalPort_,
                    request("MESSAGE", "alice",
                            "Proxy-Authorization: Digest username=\"alice\", realm=\"evil.net\", "
                            "nonce=\"c1\", uri=\"sip:example.com\", response=\"good\"\r\n"));
  EXPECT_EQ(statusOf(r), 407) << r;
  EXPECT_EQ(m("medius_gateway_auth_failures_total{reason=\"missing\"}"), 2);

  // Good credentials: through (no call services here: 501 means "got past auth").
  r = sip_.exchange(internalPort_, request("INVITE", "alice", proxyAuth("alice", "good")));
  EXPECT_EQ(statusOf(r), 501) << r;
  EXPECT_EQ(fake_.verified().method(), "INVITE");
  EXPECT_EQ(fake_.verified().username(), "alice");
  EXPECT_EQ(fake_.verified().realm(), "example.com");

  // Wrong, stale, replayed: challenged again, each counted.
  r = sip_.exchange(internalPort_, request("INVITE", "alice", proxyAuth("alice", "wrong")));
  EXPECT_EQ(statusOf(r), 407) << r;
  EXPECT_EQ(m("medius_gateway_auth_failures_total{reason=\"invalid\"}"), 1);
  r = sip_.exchange(internalPort_, request("INVITE", "alice", proxyAuth("alice", "stale")));
  EXPECT_EQ(statusOf(r), 407) << r;
  EXPECT_NE(r.find("stale=true"), std::string::npos) << r;
  EXPECT_EQ(m("medius_gateway_auth_failures_total{reason=\"stale\"}"), 1);
  r = sip_.exchange(internalPort_, request("INVITE", "alice", proxyAuth("alice", "replay")));
  EXPECT_EQ(statusOf(r), 407) << r;
  EXPECT_EQ(m("medius_gateway_auth_failures_total{reason=\"replayed\"}"), 1);

  // bob's credentials with alice's From: 403, nothing goes further.
  r = sip_.exchange(internalPort_, request("INVITE", "alice", proxyAuth("bob", "good")));
  EXPECT_EQ(statusOf(r), 403) << r;
  EXPECT_EQ(m("medius_gateway_auth_failures_total{reason=\"from_mismatch\"}"), 1);

  // OPTIONS and REGISTER are not challenged by the gateway.
  r = sip_.exchange(internalPort_, request("OPTIONS", "alice", ""));
  EXPECT_EQ(statusOf(r), 200) << r;
  EXPECT_EQ(m("medius_gateway_sip_responses_total{code_class=\"4xx\",method=\"INVITE\",side=\"internal\"}"), 5);
  loop_->invoke([&] { EXPECT_EQ(gateway_->pendingAuth(), 0u); });
}

std::string registerAuth(const std::string& user, const std::string& response) {
  return "Expires: 3600\r\nAuthorization: Digest username=\"" + user +
         "\", realm=\"example.com\", nonce=\"n1\", uri=\"sip:example.com\", response=\"" +
         response + "\", qop=auth, nc=00000001, cnonce=\"c\"\r\n";
}

TEST_F(GatewayLoopTest, FailedAuthenticationsBanTheirSource) {
  loop_->invoke([&] {
    gateway_.reset();
    config_.authLimits.sourceMaxFailures = 3;
    config_.authLimits.sourceBanS = 600;
    gateway_ = std::make_unique<Gateway>(*loop_, config_, *client_, *metrics_, state_);
  });
  // Two wrong REGISTER passwords (the registrar says credentials_rejected), a stale nonce
  // and a request without credentials (not failures), then a wrong MESSAGE password (MESSAGE, not
  // INVITE: no 4xx retransmissions waiting for an ACK in this test's socket).
  std::string r = sip_.exchange(internalPort_, request("REGISTER", "alice", registerAuth("alice", "wrong")));
  EXPECT_EQ(statusOf(r), 401) << r;
  r = sip_.exchange(internalPort_, request("REGISTER", "alice", registerAuth("mallory", "wrong")));
  EXPECT_EQ(statusOf(r), 401) << r;
  r = sip_.exchange(internalPort_, request("REGISTER", "alice", registerAuth("alice", "stale")));
  EXPECT_EQ(statusOf(r), 401) << r;
  r = sip_.exchange(internalPort_, request("MESSAGE", "alice", ""));
  EXPECT_EQ(statusOf(r), 407) << r;
  EXPECT_EQ(m("medius_gateway_auth_bans_total{scope=\"source\"}"), 0);
  r = sip_.exchange(internalPort_, request("MESSAGE", "alice", proxyAuth("alice", "wrong")));
  EXPECT_EQ(statusOf(r), 407) << r;  // the failure that reaches the limit is still answered
  EXPECT_EQ(m("medius_gateway_auth_bans_total{scope=\"source\"}"), 1);
  EXPECT_EQ(m("medius_gateway_flood_banned_sources"), 1);
  EXPECT_EQ(m("medius_gateway_flood_bans_total"), 0);  // that one counts rate bans
  // From now on nothing from that address is answered, not even good credentials.
  sip_.send(internalPort_, request("OPTIONS", "alice", ""));
  sip_.send(internalPort_, request("REGISTER", "alice", registerAuth("alice", "0123")));
  EXPECT_EQ(sip_.receiveWithin(300), "");
  EXPECT_EQ(m("medius_gateway_flood_dropped_total{reason=\"banned\"}"), 2);
  // Another address is served.
  UdpClient other("127.0.0.2");
  r = other.exchange(internalPort_, request("OPTIONS", "bob", ""));
  EXPECT_EQ(statusOf(r), 200) << r;
}

TEST_F(GatewayLoopTest, AUserLockedAfterFailuresIsRefusedExceptFromItsKnownSource) {
  loop_->invoke([&] {
    gateway_.reset();
    config_.authLimits.sourceMaxFailures = 100;
    config_.authLimits.userMaxFailures = 3;
    config_.authLimits.userLockS = 600;
    gateway_ = std::make_unique<Gateway>(*loop_, config_, *client_, *metrics_, state_);
  });
  // carol's phone authenticates from 127.0.0.3 (a known source of carol's from now on).
  UdpClient phone("127.0.0.3");
  std::string r = phone.exchange(internalPort_, request("MESSAGE", "carol", proxyAuth("carol", "good")));
  EXPECT_EQ(statusOf(r), 501) << r;  // past authentication (no call services here)
  // Someone else guesses carol's password from 127.0.0.1: three failures lock carol.
  for (int i = 0; i < 3; ++i) {
    r = sip_.exchange(internalPort_, request("MESSAGE", "carol", proxyAuth("carol", "wrong")));
    EXPECT_EQ(statusOf(r), 407) << r;
  }
  EXPECT_EQ(m("medius_gateway_auth_bans_total{scope=\"user\"}"), 1);
  EXPECT_EQ(m("medius_gateway_auth_bans_total{scope=\"source\"}"), 0);
  // Locked: even right credentials from an address without history get 403, unchecked.
  int verifications = fake_.verifications();
  r = sip_.exchange(internalPort_, request("MESSAGE", "carol", proxyAuth("carol", "good")));
  EXPECT_EQ(statusOf(r), 403) << r;
  EXPECT_NE(r.find("403 Too Many Failed Authentications"), std::string::npos) << r;
  r = sip_.exchange(internalPort_, request("REGISTER", "alice", registerAuth("carol", "0123")));
  EXPECT_EQ(statusOf(r), 403) << r;
  EXPECT_EQ(fake_.verifications(), verifications);
  EXPECT_EQ(m("medius_gateway_requests_refused_total{reason=\"user_locked\"}"), 2);
  // carol's phone still gets in; other users are not locked.
  r = phone.exchange(internalPort_, request("MESSAGE", "carol", proxyAuth("carol", "good")));
  EXPECT_EQ(statusOf(r), 501) << r;
  r = sip_.exchange(internalPort_, request("MESSAGE", "dave", proxyAuth("dave", "good")));
  EXPECT_EQ(statusOf(r), 501) << r;
  // A REGISTER that succeeds makes its source known too.
  UdpClient laptop("127.0.0.4");
  r = laptop.exchange(internalPort_, request("REGISTER", "alice", registerAuth("alice", "0123")));
  EXPECT_EQ(statusOf(r), 200) << r;
  for (int i = 0; i < 3; ++i) {
    r = sip_.exchange(internalPort_, request("REGISTER", "alice", registerAuth("alice", "wrong")));
    EXPECT_EQ(statusOf(r), 401) << r;
  }
  EXPECT_EQ(m("medius_gateway_auth_bans_total{scope=\"user\"}"), 2);
  r = sip_.exchange(internalPort_, request("REGISTER", "alice", registerAuth("alice", "0123")));
  EXPECT_EQ(statusOf(r), 403) << r;
  r = laptop.exchange(internalPort_, request("REGISTER", "alice", registerAuth("alice", "0123")));
  EXPECT_EQ(statusOf(r), 200) << r;
}

TEST_F(GatewayLoopTest, CancelWhileTheRegistrarVerifiesEndsTheInvite) {
  // The caller gives up while VerifyDigest runs (400 ms): CANCEL gets 200, the INVITE
  // 487, and the late verdict only releases the transaction (no call, no second answer).
  std::string head = "sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:" +
                     std::to_string(sip_.port()) +
                     ";rport;branch=z9hG4bK-cancel-auth\r\nMax-Forwards: 70\r\n"
                     "From: <sip:alice@example.com>;tag=ca\r\nTo: <sip:alice@example.com>\r\n"
                     "Call-ID: cancel-auth@test\r\n";
  sip_.send(internalPort_, "INVITE " + head + "CSeq: 1 INVITE\r\n" + proxyAuth("alice", "slow") +
                               "Content-Length: 0\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  sip_.send(internalPort_, "CANCEL " + head + "CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n");
  std::string a = sip_.receive();
  std::string b = sip_.receive();
  std::string cancel = a.find("CSeq: 1 CANCEL") != std::string::npos ? a : b;
  std::string invite = a.find("CSeq: 1 CANCEL") != std::string::npos ? b : a;
  EXPECT_EQ(statusOf(cancel), 200) << cancel;
  EXPECT_EQ(statusOf(invite), 487) << invite;
  loop_->invoke([&] { EXPECT_EQ(gateway_->pendingAuth(), 1u); });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  loop_->invoke([&] { EXPECT_EQ(gateway_->pendingAuth(), 0u); });
  EXPECT_EQ(m("medius_gateway_sip_responses_total{code_class=\"4xx\",method=\"INVITE\",side=\"internal\"}"), 1);
  EXPECT_EQ(m("medius_gateway_sip_responses_total{code_class=\"5xx\",method=\"INVITE\",side=\"internal\"}"), 0);
}

TEST_F(GatewayLoopTest, RegistrarDownMeansNoCallNot407) {
  registrarServer_->Shutdown();
  registrarServer_.reset();
  std::string r = sip_.exchange(internalPort_, request("INVITE", "alice", ""));
  EXPECT_EQ(statusOf(r), 503) << r;
  EXPECT_EQ(headerValue(r, "Retry-After").value_or(""), "7") << r;
  r = sip_.exchange(internalPort_, request("INVITE", "alice", proxyAuth("alice", "good")));
  EXPECT_EQ(statusOf(r), 503) << r;
  EXPECT_EQ(m("medius_gateway_auth_failures_total{reason=\"unavailable\"}"), 2);
}

TEST_F(GatewayLoopTest, AuthOffLetsInternalRequestsThrough) {
  loop_->invoke([&] { gateway_.reset(); });
  config_.authCalls = CallAuthMode::Off;
  loop_->invoke([&] {
    gateway_ = std::make_unique<Gateway>(*loop_, config_, *client_, *metrics_, state_);
  });
  std::string r = sip_.exchange(internalPort_, request("INVITE", "alice", ""));
  EXPECT_EQ(statusOf(r), 501) << r;
}

TEST_F(GatewayLoopTest, TrunkSideRequestsFromUnknownAddressesAre403AndCounted) {
  FakeLocator locator;
  loop_->invoke([&] { gateway_->setTrunkLocator(&locator); });
  for (const char* method : {"OPTIONS", "INVITE", "MESSAGE", "BYE"}) {
    std::string r = sip_.exchange(trunkPort_, request(method, "pstn", ""));
    EXPECT_EQ(statusOf(r), 403) << method << "\n" << r;
    EXPECT_NE(r.find("Not A Configured Trunk"), std::string::npos) << r;
  }
  EXPECT_EQ(m("medius_gateway_requests_refused_total{reason=\"unknown_trunk\"}"), 4);
  // The internal side is not the trunk side.
  std::string r = sip_.exchange(internalPort_, request("OPTIONS", "alice", ""));
  EXPECT_EQ(statusOf(r), 200) << r;
  // From the trunk's own address: served.
  loop_->invoke([&] { locator.allowed = sip_.port(); });
  r = sip_.exchange(trunkPort_, request("OPTIONS", "pstn", ""));
  EXPECT_EQ(statusOf(r), 200) << r;
  EXPECT_EQ(m("medius_gateway_requests_refused_total{reason=\"unknown_trunk\"}"), 4);
  loop_->invoke([&] { gateway_->setTrunkLocator(nullptr); });
}

TEST_F(GatewayLoopTest, ATlsTrunkIsRefusedOverUdp) {
  // Its address is right, but a TLS trunk is its certificate: over UDP it is no one.
  FakeLocator locator;
  locator.tls = "sip.pstn.example.net";
  loop_->invoke([&] {
    locator.allowed = sip_.port();
    gateway_->setTrunkLocator(&locator);
  });
  for (const char* method : {"OPTIONS", "INVITE"}) {
    std::string r = sip_.exchange(trunkPort_, request(method, "pstn", ""));
    EXPECT_EQ(statusOf(r), 403) << method << "\n" << r;
    EXPECT_NE(r.find("Trunk Requires TLS"), std::string::npos) << r;
  }
  EXPECT_EQ(m("medius_gateway_requests_refused_total{reason=\"trunk_tls\"}"), 2);
  loop_->invoke([&] {
    locator.tls.clear();  // the same trunk over UDP: served
  });
  EXPECT_EQ(statusOf(sip_.exchange(trunkPort_, request("OPTIONS", "pstn", ""))), 200);
  loop_->invoke([&] { gateway_->setTrunkLocator(nullptr); });
}

TEST_F(GatewayLoopTest, AdminReportsStateAndDrain) {
  GatewayAdminService admin("gw-test", state_);
  bool drained = false;
  admin.setOnDrain([&](std::uint32_t) { drained = true; });
  v1::GatewayInfo info;
  ASSERT_TRUE(admin.GetInfo(nullptr, nullptr, &info).ok());
  EXPECT_EQ(info.gateway_id(), "gw-test");
  EXPECT_EQ(info.listeners_size(), 4);  // UDP and TCP per side
  EXPECT_FALSE(info.draining());
  v1::GatewayDrainResponse drain;
  ASSERT_TRUE(admin.Drain(nullptr, nullptr, &drain).ok());
  EXPECT_TRUE(drained);
  ASSERT_TRUE(admin.GetInfo(nullptr, nullptr, &info).ok());
  EXPECT_TRUE(info.draining());
  // Draining still relays REGISTERs (documented in admin_service.hpp).
  std::string r = sip_.exchange(internalPort_, request("REGISTER", "alice", "Expires: 60\r\n"));
  EXPECT_EQ(statusOf(r), 401) << r;
}

TEST_F(GatewayLoopTest, DrainingRefusesNewCallsAndProbesButRelaysRegisters) {
  loop_->invoke([&] { gateway_->startDraining(); });
  EXPECT_TRUE(state_.draining.load());
  // OPTIONS: 503, so the load balancer's probes (and a trunk's) take this gateway out.
  for (std::uint16_t port : {internalPort_, trunkPort_}) {
    std::string r = sip_.exchange(port, request("OPTIONS", "pstn", ""));
    EXPECT_EQ(statusOf(r), 503) << r;
    EXPECT_EQ(headerValue(r, "Retry-After").value_or(""), "7") << r;
  }
  // A new INVITE: 503 before any authentication (no 407, no registrar round trip), so
  // Kamailio fails it over to another gateway at once.
  std::string r = sip_.exchange(internalPort_, request("INVITE", "alice", ""));
  EXPECT_EQ(statusOf(r), 503) << r;
  EXPECT_EQ(headerValue(r, "Retry-After").value_or(""), "7") << r;
  EXPECT_EQ(m("medius_gateway_auth_failures_total{reason=\"missing\"}"), 0);
  EXPECT_EQ(m("medius_gateway_calls_total{direction=\"outbound\",outcome=\"rejected\"}"), 1);
  // In-dialog requests still reach the dialog layer (none here: 481, not 503).
  std::string bye = request("BYE", "alice", "");
  bye.replace(bye.find("To: <sip:alice@example.com>"), 27, "To: <sip:alice@example.com>;tag=x");
  r = sip_.exchange(internalPort_, bye);
  EXPECT_EQ(statusOf(r), 481) << r;
  // REGISTERs are still relayed to the registrar.
  r = sip_.exchange(internalPort_, request("REGISTER", "alice", "Expires: 60\r\n"));
  EXPECT_EQ(statusOf(r), 401) << r;
  EXPECT_EQ(m("medius_gateway_sip_responses_total{code_class=\"5xx\",method=\"OPTIONS\","
              "side=\"trunk\"}"), 1);
}

TEST_F(GatewayLoopTest, StoppedGatewayAnswers503) {
  loop_->invoke([&] { gateway_->stopAccepting(); });
  std::string r = sip_.exchange(internalPort_, request("REGISTER", "alice", "Expires: 60\r\n"));
  EXPECT_EQ(statusOf(r), 503) << r;
  EXPECT_EQ(headerValue(r, "Retry-After").value_or(""), "7") << r;
}

TEST(SipLoop, PostRunsOnTheLoopThreadAndInvokeRethrows) {
  SipLoop loop;
  EXPECT_FALSE(loop.isLoopThread());
  bool onLoop = false;
  loop.invoke([&] { onLoop = loop.isLoopThread(); });
  EXPECT_TRUE(onLoop);
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(loop.post([&] { ++ran; }));
  loop.invoke([] {});
  EXPECT_EQ(ran.load(), 1000);
  EXPECT_THROW(loop.invoke([] { throw std::runtime_error("x"); }), std::runtime_error);
  loop.stop();
  EXPECT_FALSE(loop.post([] {}));
}

TEST(GatewayBind, PortInUseIsAClearError) {
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(u, reinterpret_cast<sockaddr*>(&a), &len);
  GatewayConfig cfg;
  cfg.domain = "example.com";
  cfg.internalListen = {"sip:127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + ";transport=udp"};
  cfg.trunkListen = {"sip:127.0.0.1:" + std::to_string(freeLoopbackPort())};
  prometheus::Registry registry;
  GatewayMetrics m(registry);
  GatewayState state;
  SipLoop loop;
  GrpcRegistrarClient client("127.0.0.1:1", std::chrono::milliseconds(100), m);
  std::unique_ptr<Gateway> gw;
  try {
    loop.invoke([&] { gw = std::make_unique<Gateway>(loop, cfg, client, m, state); });
    FAIL() << "bound a port in use";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on sip:127.0.0.1:"), std::string::npos)
        << e.what();
  }
  close(u);
}

}  // namespace
}  // namespace medius::gateway
