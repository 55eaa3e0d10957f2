// The registrar's configuration (registrar.json), loaded once, validated, then immutable.
//
//   {
//     "service": {...},                       see medius/common/service.hpp
//     "domain": "example.com",                required; AORs must be sip:user@<domain>
//     "store": {"type": "memory"}             or {"type": "redis", "address": "host:port",
//                                             "key_prefix": "medius:", "timeout_ms": 1000}
//                                             env MEDIUS_STORE (memory|redis), MEDIUS_REDIS_ADDRESS
//     "expiry": {"min_seconds": 60, "default_seconds": 3600, "max_seconds": 7200},
//     "max_contacts_per_aor": 10,
//     "sweep_interval_ms": 1000,
//     "auth": {"required": true, "realm": "<domain>", "algorithms": ["SHA-256", "MD5"],
//              "nonce_ttl_seconds": 300, "nonce_secret": "..."},
//     "users": [{"username": "alice", "aor": "sip:alice@example.com",
//                "ha1_md5": "<32 hex>", "ha1_sha256": "<64 hex>"}]
//   }
//
// Thread: plain values; share a const reference between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "medius/common/digest.hpp"
#include "medius/common/service.hpp"

namespace medius::registrar {

struct StoreConfig {
  enum class Type { Memory, Redis };
  // "memory" (default) or "redis". Env MEDIUS_STORE.
  Type type = Type::Memory;
  // Redis "host:port". Env MEDIUS_REDIS_ADDRESS.
  std::string address = "127.0.0.1:6379";
  // Prefix of every Redis key and channel, so several clusters can share one Redis.
  std::string keyPrefix = "medius:";
  // Connect and command timeout, milliseconds.
  std::int64_t timeoutMs = 1000;
};

struct ExpiryConfig {
  // Shortest accepted non-zero expiry (423 Interval Too Brief below it), seconds.
  std::uint32_t minSeconds = 60;
  // Used when neither the Contact nor the request gives an expiry, seconds.
  std::uint32_t defaultSeconds = 3600;
  // Longer requested expiries are reduced to this, seconds.
  std::uint32_t maxSeconds = 7200;
};

struct UserConfig {
  std::string username;
  // "sip:user@domain": the only AOR this user may register.
  std::string aor;
  // H(username:realm:password), lower-case hex; "" when not configured.
  std::string ha1Md5;     // 32 hex digits
  std::string ha1Sha256;  // 64 hex digits
  // The stored HA1 for a plain or -sess algorithm; "" when none.
  const std::string& ha1For(digest::Algorithm algorithm) const;
};

struct AuthConfig {
  // When false every REGISTER in the domain is accepted without credentials.
  bool required = true;
  // Digest realm; defaults to the domain.
  std::string realm;
  // Challenge algorithms in preference order (MD5 and/or SHA-256).
  std::vector<digest::Algorithm> algorithms{digest::Algorithm::Sha256, digest::Algorithm::Md5};
  // Nonces older than this are stale (stale=true), seconds.
  std::int64_t nonceTtlSeconds = 300;
  // HMAC key for nonces; when absent, shared through the store (Redis) or random (memory).
  std::optional<std::string> nonceSecret;
};

struct RegistrarConfig {
  // The file it was loaded from (for logs).
  std::string file;
  ServiceSettings service;
  std::string domain;
  StoreConfig store;
  ExpiryConfig expiry;
  std::uint32_t maxContactsPerAor = 10;
  std::int64_t sweepIntervalMs = 1000;
  AuthConfig auth;
  std::vector<UserConfig> users;

  // nullptr when unknown.
  const UserConfig* findUser(std::string_view username) const;
  // One line describing the effective config, secrets redacted.
  std::string summary() const;
};

// Reads and validates a registrar.json; throws config::ConfigError ("FILE: $.path: problem").
RegistrarConfig load(const std::string& path);
// Same, from text (`name` stands for the file in errors).
RegistrarConfig parse(std::string_view text, const std::string& name);

// An AOR split into user and domain. "sip:user@domain" only (no parameters, no port).
struct Aor {
  std::string user;
  std::string domain;
};
// std::nullopt unless `text` is exactly sip:user@domain with a non-empty user and domain.
std::optional<Aor> parseAor(std::string_view text);

}  // namespace medius::registrar
