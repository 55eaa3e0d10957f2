#include "test_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <stdexcept>
#include <thread>

#include "medius/common/digest.hpp"
#include "net.hpp"

namespace medius::registrar::test {

namespace {

bool canConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

int freePort() { return medius::testing::freeLoopbackPort(); }

RedisServer::RedisServer() {
  for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) {
    port_ = freePort();
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, STDOUT_FILENO);
      std::string port = std::to_string(port_);
      ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (canConnect(port_)) {
        pid_ = pid;
        break;
      }
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) break;  // exited (port taken?): retry
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (pid_ < 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  if (pid_ < 0) throw std::runtime_error("cannot start redis-server");
}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

RedisServer& RedisServer::shared() {
  static RedisServer server;
  return server;
}

std::string uniquePrefix() {
  static std::atomic<int> counter{0};
  return "test" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ":";
}

std::string configText(bool authRequired) {
  auto user = [](const std::string& name, const std::string& password) {
    return R"({"username": ")" + name + R"(", "aor": "sip:)" + name + R"(@example.com", "ha1_md5": ")" +
           digest::ha1(digest::Algorithm::Md5, name, "example.com", password) +
           R"(", "ha1_sha256": ")" +
           digest::ha1(digest::Algorithm::Sha256, name, "example.com", password) + R"("})";
  };
  return R"({
    "service": {"grpc_listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0"},
    "domain": "example.com",
    "store": {"type": "memory"},
    "expiry": {"min_seconds": 60, "default_seconds": 3600, "max_seconds": 7200},
    "max_contacts_per_aor": 3,
    "sweep_interval_ms": 1000,
    "auth": {"required": )" +
         std::string(authRequired ? "true" : "false") +
         R"(, "realm": "example.com", "algorithms": ["SHA-256", "MD5"], "nonce_ttl_seconds": 300},
    "users": [)" +
         user("alice", "secret-alice") + ", " + user("bob", "secret-bob") + "]}";
}

RegistrarConfig testConfig(bool authRequired) { return parse(configText(authRequired), "test.json"); }

medius::v1::DigestCredentials answer(const medius::v1::DigestChallenge& challenge,
                                     const std::string& username, const std::string& password,
                                     std::uint32_t nc, const std::string& method) {
  auto alg = *digest::parseAlgorithm(challenge.algorithm());
  medius::v1::DigestCredentials c;
  c.set_username(username);
  c.set_realm(challenge.realm());
  c.set_nonce(challenge.nonce());
  c.set_uri("sip:example.com");
  c.set_algorithm(challenge.algorithm());
  c.set_cnonce("0a4f113b");
  c.set_opaque(challenge.opaque());
  c.set_qop("auth");
  char ncText[9];
  std::snprintf(ncText, sizeof ncText, "%08x", nc);
  c.set_nc(ncText);
  c.set_method(method);
  digest::Response r{username, challenge.realm(), challenge.nonce(), c.uri(),
                     method,   "auth",            c.nc(),            c.cnonce()};
  c.set_response(
      digest::expectedResponse(alg, digest::ha1(alg, username, challenge.realm(), password), r));
  return c;
}

medius::v1::RegisterRequest registerRequest(const std::string& aor, const std::string& contactUri,
                                            std::uint32_t cseq, const std::string& callId) {
  medius::v1::RegisterRequest req;
  req.set_aor(aor);
  if (!contactUri.empty()) req.add_contacts()->set_uri(contactUri);
  req.set_call_id(callId);
  req.set_cseq(cseq);
  req.set_user_agent("test-ua/1.0");
  req.mutable_received()->set_host("192.0.2.10");
  req.mutable_received()->set_port(5070);
  req.mutable_received()->set_transport(medius::v1::TRANSPORT_UDP);
  req.set_gateway_id("gw1");
  return req;
}

}  // namespace medius::registrar::test
