// HTTP digest authentication for SIP (RFC 7616 with the RFC 3261 profile): MD5 and
// SHA-256 (and their -sess variants), qop=auth, HA1 stored instead of passwords, and
// stateless nonces that carry their own issue time under an HMAC.
//
// Thread: everything here is thread-safe (NonceManager is immutable after construction).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "medius/common/clock.hpp"

namespace medius::digest {

enum class Algorithm { Md5, Md5Sess, Sha256, Sha256Sess };

// "MD5", "MD5-sess", "SHA-256", "SHA-256-sess" (case-insensitive); "" means MD5
// (RFC 7616 section 3.3). std::nullopt for anything else.
std::optional<Algorithm> parseAlgorithm(std::string_view name);
std::string_view algorithmName(Algorithm algorithm);
// True for the -sess variants.
bool isSession(Algorithm algorithm);

// Lower-case hex digest of `data` with the algorithm's hash (MD5 or SHA-256).
std::string hashHex(Algorithm algorithm, std::string_view data);

// H(username ":" realm ":" password): what a config stores instead of the password.
std::string ha1(Algorithm algorithm, std::string_view username, std::string_view realm,
                std::string_view password);

// The parameters of an Authorization header that enter the computation.
struct Response {
  std::string username;
  std::string realm;
  std::string nonce;
  std::string uri;
  std::string method;
  std::string qop;     // "auth" or "" (RFC 2069 style, no cnonce/nc)
  std::string nc;      // 8 hex digits
  std::string cnonce;
};

// The expected "response" value given the stored HA1 (of the plain algorithm; for a
// -sess algorithm the session HA1 is derived with the nonce and cnonce).
std::string expectedResponse(Algorithm algorithm, std::string_view storedHa1,
                             const Response& r);

// Constant-time comparison of two strings (lengths may leak).
bool equalConstantTime(std::string_view a, std::string_view b);

// Parses an 8-hex-digit nonce-count. std::nullopt when malformed.
std::optional<std::uint32_t> parseNonceCount(std::string_view nc);

// Issues and checks nonces: base64url(issued_ms[8] | random[8] | HMAC-SHA256(secret, ...)[16]).
// A nonce is valid when its HMAC matches, stale when it is older than `ttlMs`.
class NonceManager {
 public:
  NonceManager(std::string secret, std::int64_t ttlMs, const Clock& clock);

  std::string issue() const;

  enum class Check { Valid, Stale, Invalid };
  Check check(std::string_view nonce) const;

  std::int64_t ttlMs() const { return ttlMs_; }

 private:
  std::string secret_;
  std::int64_t ttlMs_;
  const Clock& clock_;
};

// A random secret for nonces / opaque values: `bytes` random bytes, hex-encoded.
std::string randomHex(std::size_t bytes);

// Builds a WWW-Authenticate value:
//   Digest realm="r", nonce="n", opaque="o", algorithm=SHA-256, qop="auth"[, stale=true]
std::string challengeHeader(std::string_view realm, std::string_view nonce,
                            std::string_view opaque, Algorithm algorithm, bool stale);

}  // namespace medius::digest
