// The SDES "a=crypto" attribute value (RFC 4568 section 9.1), parsed and formatted.
//
//   <tag> <crypto-suite> <key-params> [<session-param> ...]
//   key-params = key-param *(";" key-param)
//   key-param  = "inline:" <base64(key || salt)> ["|" lifetime] ["|" mki-value ":" mki-length]
//   lifetime   = ["2^"] 1*DIGIT
//
// What the SDP layer does with a result:
//   Ok           usable: build the Inbound SrtpSession from attribute->masterKeys();
//   UnknownSuite skip the line (RFC 4568 section 7.1.1: the answerer picks a line it
//                supports); tag and suiteName are filled; answer 488 if no line is usable;
//   Unsupported  valid, but asks for something we refuse (UNENCRYPTED_SRTP,
//                UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP, KDR, FEC_KEY, an unknown
//                mandatory session parameter, a key method other than inline, more than 16
//                keys, an MKI above 2^64-1): skip the line; `attribute` is filled for logs;
//   Malformed    broken line (bad tag, bad base64, key of the wrong length, bad lifetime or
//                MKI, several keys without MKIs...): skip the line, count it.
// `error` says what is wrong in words fit for a log line (it never contains key bytes).
//
// Strictness: base64 (RFC 4648 section 4) alphabet only, "=" padding only at the end and
// optional, unused bits zero; the decoded key || salt must be exactly the suite's length
// (RFC 4568 section 6.1). Suite names and parameter names are matched case-insensitively
// (ABNF literals are); fields are separated by spaces or tabs.
//
// Thread: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "medius/media/srtp/keys.hpp"
#include "medius/media/srtp/suite.hpp"

namespace medius::media::srtp {

// One "inline:" key-param (RFC 4568 section 6.1).
struct KeyParam {
  KeyMaterial keySalt;
  // Master key lifetime in packets ("2^31" -> 2147483648); at most 2^48 (RFC 3711 section
  // 9.2). Informational: calls never get near it, and libsrtp enforces 2^48 itself.
  std::optional<std::uint64_t> lifetime;
  std::optional<Mki> mki;
};

// Session parameters (RFC 4568 section 6.3). Parsed and exposed; the ones we refuse make
// the parse Unsupported.
struct SessionParams {
  bool unencryptedSrtp = false;      // section 6.3.2
  bool unencryptedSrtcp = false;     // section 6.3.3
  bool unauthenticatedSrtp = false;  // section 6.3.4
  std::optional<unsigned> kdr;       // section 6.3.1, "KDR=n", n in 0..24
  std::optional<std::uint32_t> wsh;  // section 6.3.7, "WSH=n", n >= 64 (a hint: we use 1024)
  std::optional<std::string> fecOrder;  // section 6.3.5, "FEC_SRTP" or "SRTP_FEC" (no FEC here)
  bool fecKey = false;               // section 6.3.6, "FEC_KEY=..."
  // Unknown parameters marked optional with a leading "-" (section 6.3): ignored, kept.
  std::vector<std::string> ignored;
};

struct CryptoAttribute {
  std::uint32_t tag = 1;  // 1*9DIGIT
  CryptoSuite suite = CryptoSuite::AesCm128HmacSha1_80;
  std::vector<KeyParam> keys;  // at least one
  SessionParams params;

  // The keys as SrtpSession takes them.
  std::vector<MasterKey> masterKeys() const;
};

enum class ParseStatus { Ok, UnknownSuite, Unsupported, Malformed };

struct CryptoParseResult {
  ParseStatus status = ParseStatus::Malformed;
  // Filled when status is Ok or Unsupported.
  std::optional<CryptoAttribute> attribute;
  // The tag and suite name as written, when the line got that far (for UnknownSuite).
  std::optional<std::uint32_t> tag;
  std::string suiteName;
  // Empty when Ok.
  std::string error;
};

// Parses the value after "a=crypto:" (a trailing CR/LF is ignored).
CryptoParseResult parseCryptoAttribute(std::string_view value);

// Writes the value after "a=crypto:", e.g.
// "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4".
// Throws std::invalid_argument when `attribute` could not be parsed back (no key, a key
// of the wrong length, several keys without MKIs).
std::string formatCryptoAttribute(const CryptoAttribute& attribute);

// Our offer or answer line for one suite: fresh key from generateKeyMaterial(), no
// lifetime, no MKI, no session parameters (what every SDES endpoint accepts).
CryptoAttribute makeLocalCryptoAttribute(std::uint32_t tag, CryptoSuite suite);

// Base64 (RFC 4648 section 4) with padding, and the strict decoder used for inline keys;
// the decoder writes into `out` (no heap copy of key bytes) and returns the decoded
// length, or nullopt with `error` set on anything non-canonical or too long for `out`.
std::string encodeBase64(std::span<const std::uint8_t> bytes);
std::optional<std::size_t> decodeBase64(std::string_view text, std::span<std::uint8_t> out,
                                        std::string& error);

}  // namespace medius::media::srtp
