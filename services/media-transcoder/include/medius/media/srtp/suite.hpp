// SRTP crypto suites as SDES (RFC 4568) names them, with the sizes callers need.
//
// The suites are the ones libsrtp2 implements and SDES registers:
//   AES_CM_128_HMAC_SHA1_80 / _32   RFC 4568 section 6.2 (RFC 3711 AES-CM + HMAC-SHA1)
//   AES_256_CM_HMAC_SHA1_80 / _32   RFC 6188 section 7.1
//   AEAD_AES_128_GCM / _256_GCM     RFC 7714 section 14.2 (16-octet tag)
// The AEAD suites need a libsrtp2 built with GCM (Debian's NSS build has it);
// suiteAvailable() checks that at run time by creating a context once per suite.
//
// Thread: everything here is a pure function over constants, except suiteAvailable(),
// which is thread-safe (its answer is computed once per process).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace medius::media::srtp {

enum class CryptoSuite : std::uint8_t {
  AesCm128HmacSha1_80,
  AesCm128HmacSha1_32,
  Aes256CmHmacSha1_80,
  Aes256CmHmacSha1_32,
  AeadAes128Gcm,
  AeadAes256Gcm,
};

inline constexpr std::size_t kSuiteCount = 6;

// Sizes of one suite, in octets.
struct SuiteInfo {
  CryptoSuite suite;
  // The SDES name, e.g. "AES_CM_128_HMAC_SHA1_80".
  std::string_view name;
  // Master key and master salt; the inline key of a=crypto is key || salt.
  std::size_t keyLength;
  std::size_t saltLength;
  // Authentication tag appended to SRTP packets (RFC 3711 section 4.2; RFC 7714 section 7).
  std::size_t rtpTagLength;
  // Tag of SRTCP packets: the _32 suites still use an 80-bit tag for SRTCP
  // (RFC 4568 section 6.2.2; libsrtp: "should only be used for SRTP, not SRTCP").
  std::size_t rtcpTagLength;
  bool aead;

  constexpr std::size_t keySaltLength() const { return keyLength + saltLength; }
  // Octets protectRtp() adds to an RTP packet (without MKI).
  constexpr std::size_t rtpOverhead() const { return rtpTagLength; }
  // Octets protectRtcp() adds: E flag + 31-bit SRTCP index (RFC 3711 section 3.4) + tag.
  constexpr std::size_t rtcpOverhead() const { return 4 + rtcpTagLength; }
};

// The largest key || salt of any suite (AES-256 + 14-octet salt).
inline constexpr std::size_t kMaxKeySaltLength = 46;
// The most any suite adds to an RTP or RTCP packet without MKI (SRTCP with a 16-octet
// GCM tag); add the MKI length (at most 128) when an MKI is used.
inline constexpr std::size_t kMaxOverhead = 20;

// Sizes of `suite`.
const SuiteInfo& suiteInfo(CryptoSuite suite);
// The SDES name of `suite`.
std::string_view suiteName(CryptoSuite suite);
// The suite named `name` (ASCII case-insensitive: RFC 4568's ABNF literals are), or
// nullopt for a name we do not know (an SDP answerer skips that a=crypto line).
std::optional<CryptoSuite> suiteFromName(std::string_view name);

// All suites, strongest first: the order our SDES offers list them in, and the order an
// answerer prefers when the offer leaves it a choice. GCM first (one AES pass gives both
// confidentiality and a 128-bit tag), then 80-bit HMAC before 32-bit (RFC 4568 section
// 6.2: _32 is for links where every octet counts). GCM first is also the cheap choice
// here: with Debian's NSS-backed libsrtp2 an AEAD_AES_128_GCM packet costs about 0.8 us
// against 3 us for AES_CM_128_HMAC_SHA1_80 (bench/media_srtp_bench.cpp). Includes suites
// this libsrtp2 may not have: filter with suiteAvailable().
std::span<const CryptoSuite> suitePreference();

// Whether this process's libsrtp2 can create a context for `suite` (tested once per
// suite by srtp_create(); the AEAD suites need libsrtp2 built with GCM support).
bool suiteAvailable(CryptoSuite suite);

}  // namespace medius::media::srtp
