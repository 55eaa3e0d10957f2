#include "medius/media/srtp/suite.hpp"

#include <cstdlib>

namespace medius::media::srtp {
namespace {

// Indexed by the enum's value (checked below).
constexpr std::array<SuiteInfo, kSuiteCount> kSuites{{
    // RFC 4568 section 6.2.1: 128-bit key, 112-bit salt, 80-bit tag.
    {CryptoSuite::AesCm128HmacSha1_80, "AES_CM_128_HMAC_SHA1_80", 16, 14, 10, 10, false},
    // RFC 4568 section 6.2.2: 32-bit SRTP tag, 80-bit SRTCP tag.
    {CryptoSuite::AesCm128HmacSha1_32, "AES_CM_128_HMAC_SHA1_32", 16, 14, 4, 10, false},
    // RFC 6188 section 7.1.
    {CryptoSuite::Aes256CmHmacSha1_80, "AES_256_CM_HMAC_SHA1_80", 32, 14, 10, 10, false},
    {CryptoSuite::Aes256CmHmacSha1_32, "AES_256_CM_HMAC_SHA1_32", 32, 14, 4, 10, false},
    // RFC 7714 section 14.2: 96-bit salt, 16-octet tag on SRTP and SRTCP.
    {CryptoSuite::AeadAes128Gcm, "AEAD_AES_128_GCM", 16, 12, 16, 16, true},
    {CryptoSuite::AeadAes256Gcm, "AEAD_AES_256_GCM", 32, 12, 16, 16, true},
}};

constexpr bool tableInEnumOrder() {
  for (std::size_t i = 0; i < kSuites.size(); ++i) {
    if (static_cast<std::size_t>(kSuites[i].suite) != i) return false;
    if (kSuites[i].keySaltLength() > kMaxKeySaltLength) return false;
    if (kSuites[i].rtcpOverhead() > kMaxOverhead) return false;
  }
  return true;
}
static_assert(tableInEnumOrder(), "kSuites must follow CryptoSuite's order and the limits");

constexpr std::array<CryptoSuite, kSuiteCount> kPreference{
    CryptoSuite::AeadAes256Gcm,       CryptoSuite::AeadAes128Gcm,
    CryptoSuite::Aes256CmHmacSha1_80, CryptoSuite::AesCm128HmacSha1_80,
    CryptoSuite::Aes256CmHmacSha1_32, CryptoSuite::AesCm128HmacSha1_32,
};

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

const SuiteInfo& suiteInfo(CryptoSuite suite) {
  const auto index = static_cast<std::size_t>(suite);
  if (index >= kSuites.size()) std::abort();  // not a CryptoSuite value: broken invariant
  return kSuites[index];
}

std::string_view suiteName(CryptoSuite suite) { return suiteInfo(suite).name; }

std::optional<CryptoSuite> suiteFromName(std::string_view name) {
  for (const SuiteInfo& info : kSuites) {
    if (equalsIgnoreCase(info.name, name)) return info.suite;
  }
  return std::nullopt;
}

std::span<const CryptoSuite> suitePreference() { return kPreference; }

}  // namespace medius::media::srtp
