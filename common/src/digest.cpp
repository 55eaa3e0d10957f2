#include "medius/common/digest.hpp"

#include <array>
#include <cctype>
#include <cstring>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace medius::digest {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string toHex(const unsigned char* data, std::size_t len) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.resize(len * 2);
  for (std::size_t i = 0; i < len; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 0xf];
  }
  return out;
}

constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(const unsigned char* data, std::size_t len) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < len; ++i) {
    acc = (acc << 8) | data[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kB64Url[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kB64Url[(acc << (6 - bits)) & 0x3f];
  return out;
}

std::optional<std::string> unbase64url(std::string_view text) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const char* p = std::strchr(kB64Url, c);
    if (c == '\0' || !p) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(p - kB64Url);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

constexpr std::size_t kNonceTimeBytes = 8;
constexpr std::size_t kNonceRandomBytes = 8;
constexpr std::size_t kNonceMacBytes = 16;
constexpr std::size_t kNonceBytes = kNonceTimeBytes + kNonceRandomBytes + kNonceMacBytes;

std::array<unsigned char, 32> hmacSha256(std::string_view key, const unsigned char* data,
                                         std::size_t len) {
  std::array<unsigned char, 32> mac{};
  unsigned int macLen = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, len, mac.data(),
            &macLen)) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return mac;
}

}  // namespace

std::optional<Algorithm> parseAlgorithm(std::string_view name) {
  if (name.empty() || iequals(name, "MD5")) return Algorithm::Md5;
  if (iequals(name, "MD5-sess")) return Algorithm::Md5Sess;
  if (iequals(name, "SHA-256")) return Algorithm::Sha256;
  if (iequals(name, "SHA-256-sess")) return Algorithm::Sha256Sess;
  return std::nullopt;
}

std::string_view algorithmName(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::Md5: return "MD5";
    case Algorithm::Md5Sess: return "MD5-sess";
    case Algorithm::Sha256: return "SHA-256";
    case Algorithm::Sha256Sess: return "SHA-256-sess";
  }
  return "MD5";
}

bool isSession(Algorithm algorithm) {
  return algorithm == Algorithm::Md5Sess || algorithm == Algorithm::Sha256Sess;
}

std::string hashHex(Algorithm algorithm, std::string_view data) {
  const EVP_MD* md =
      (algorithm == Algorithm::Md5 || algorithm == Algorithm::Md5Sess) ? EVP_md5() : EVP_sha256();
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!EVP_Digest(data.data(), data.size(), out, &len, md, nullptr)) {
    throw std::runtime_error("EVP_Digest failed");
  }
  return toHex(out, len);
}

std::string ha1(Algorithm algorithm, std::string_view username, std::string_view realm,
                std::string_view password) {
  std::string a1;
  a1.reserve(username.size() + realm.size() + password.size() + 2);
  a1.append(username).append(":").append(realm).append(":").append(password);
  return hashHex(algorithm, a1);
}

std::string expectedResponse(Algorithm algorithm, std::string_view storedHa1, const Response& r) {
  std::string h1(storedHa1);
  if (isSession(algorithm)) {
    // RFC 7616 3.4.2: A1 = H(user:realm:pass) ":" nonce ":" cnonce for -sess.
    h1 = hashHex(algorithm, h1 + ":" + r.nonce + ":" + r.cnonce);
  }
  std::string h2 = hashHex(algorithm, r.method + ":" + r.uri);
  std::string kd = h1 + ":" + r.nonce + ":";
  if (!r.qop.empty()) kd += r.nc + ":" + r.cnonce + ":" + r.qop + ":";
  kd += h2;
  return hashHex(algorithm, kd);
}

bool equalConstantTime(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<std::uint32_t> parseNonceCount(std::string_view nc) {
  if (nc.size() != 8) return std::nullopt;
  std::uint32_t value = 0;
  for (char c : nc) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    value = (value << 4) | static_cast<std::uint32_t>(d);
  }
  return value;
}

std::string randomHex(std::size_t bytes) {
  std::string buf(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(buf.data()), static_cast<int>(bytes)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return toHex(reinterpret_cast<const unsigned char*>(buf.data()), bytes);
}

NonceManager::NonceManager(std::string secret, std::int64_t ttlMs, const Clock& clock)
    : secret_(std::move(secret)), ttlMs_(ttlMs), clock_(clock) {
  if (secret_.empty()) throw std::invalid_argument("nonce secret must not be empty");
}

std::string NonceManager::issue() const {
  std::array<unsigned char, kNonceBytes> raw{};
  auto issued = static_cast<std::uint64_t>(clock_.nowMs());
  for (std::size_t i = 0; i < kNonceTimeBytes; ++i) {
    raw[i] = static_cast<unsigned char>(issued >> (8 * (kNonceTimeBytes - 1 - i)));
  }
  if (RAND_bytes(raw.data() + kNonceTimeBytes, kNonceRandomBytes) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  auto mac = hmacSha256(secret_, raw.data(), kNonceTimeBytes + kNonceRandomBytes);
  std::memcpy(raw.data() + kNonceTimeBytes + kNonceRandomBytes, mac.data(), kNonceMacBytes);
  return base64url(raw.data(), raw.size());
}

NonceManager::Check NonceManager::check(std::string_view nonce) const {
  if (nonce.size() > 64) return Check::Invalid;
  auto raw = unbase64url(nonce);
  if (!raw || raw->size() != kNonceBytes) return Check::Invalid;
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw->data());
  auto mac = hmacSha256(secret_, bytes, kNonceTimeBytes + kNonceRandomBytes);
  if (CRYPTO_memcmp(mac.data(), bytes + kNonceTimeBytes + kNonceRandomBytes, kNonceMacBytes) != 0) {
    return Check::Invalid;
  }
  std::uint64_t issued = 0;
  for (std::size_t i = 0; i < kNonceTimeBytes; ++i) issued = (issued << 8) | bytes[i];
  std::int64_t age = clock_.nowMs() - static_cast<std::int64_t>(issued);
  // A nonce from the future (clock skew between replicas beyond 5 s) is not trusted.
  if (age < -5000) return Check::Invalid;
  if (age > ttlMs_) return Check::Stale;
  return Check::Valid;
}

std::string challengeHeader(std::string_view realm, std::string_view nonce,
                            std::string_view opaque, Algorithm algorithm, bool stale) {
  std::string v = "Digest realm=\"";
  v.append(realm).append("\", nonce=\"").append(nonce).append("\"");
  if (!opaque.empty()) v.append(", opaque=\"").append(opaque).append("\"");
  v.append(", algorithm=").append(algorithmName(algorithm));
  v.append(", qop=\"auth\"");
  if (stale) v.append(", stale=true");
  return v;
}

}  // namespace medius::digest
