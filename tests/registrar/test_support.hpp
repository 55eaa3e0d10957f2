// Helpers for the registrar tests: a real redis-server on a free port, a test config,
// and a digest client that answers challenges like a SIP UA would.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "medius/registrar/config.hpp"
#include "medius/v1/registrar.pb.h"

namespace medius::registrar::test {

// A redis-server child process on 127.0.0.1:<free port>, no persistence. Stopped by PID.
class RedisServer {
 public:
  RedisServer();
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // The instance shared by the tests of this process (started on first use).
  static RedisServer& shared();

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

// A port nobody listens on (bound then released).
int freePort();

// A key prefix no other test of this process uses.
std::string uniquePrefix();

// The test config: domain example.com, users alice/bob (passwords secret-alice/secret-bob,
// both HA1s), expiry 60/3600/7200, 3 contacts per AOR, auth required, algorithms SHA-256, MD5.
std::string configText(bool authRequired = true);
RegistrarConfig testConfig(bool authRequired = true);

// Answers `challenge` as `username` with `password`, for a REGISTER to sip:example.com.
medius::v1::DigestCredentials answer(const medius::v1::DigestChallenge& challenge,
                                     const std::string& username, const std::string& password,
                                     std::uint32_t nc = 1, const std::string& method = "REGISTER");

// A REGISTER for `aor` with one contact (none when contactUri is empty).
medius::v1::RegisterRequest registerRequest(const std::string& aor, const std::string& contactUri,
                                            std::uint32_t cseq = 1,
                                            const std::string& callId = "call-1");

}  // namespace medius::registrar::test
