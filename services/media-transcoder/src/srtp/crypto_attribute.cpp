#include "medius/media/srtp/crypto_attribute.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <charconv>
#include <stdexcept>

namespace medius::media::srtp {
namespace {

constexpr std::uint64_t kMaxLifetime = std::uint64_t{1} << 48;  // RFC 3711 section 9.2
constexpr std::size_t kMaxKeys = 16;                              // SRTP_MAX_NUM_MASTER_KEYS

bool isSpace(char c) { return c == ' ' || c == '\t'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (upper(a[i]) != upper(b[i])) return false;
  }
  return true;
}

// 1*maxDigits DIGIT -> value, or nullopt.
std::optional<std::uint64_t> parseNumber(std::string_view text, std::size_t maxDigits) {
  if (text.empty() || text.size() > maxDigits) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (!isDigit(c)) return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

// Splits on runs of spaces/tabs.
std::vector<std::string_view> fields(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && isSpace(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !isSpace(text[i])) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

std::string quoted(std::string_view text) {
  constexpr std::size_t kMax = 40;  // keep log lines short; never used on key bytes
  std::string out = "\"";
  out += text.substr(0, kMax);
  if (text.size() > kMax) out += "...";
  out += "\"";
  return out;
}

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

struct Failure {
  ParseStatus status;
  std::string error;
};

// One key-param: "inline:" key-salt ["|" lifetime] ["|" mki-value ":" mki-length].
std::optional<Failure> parseKeyParam(std::string_view text, const SuiteInfo& suite,
                                     std::size_t index, KeyParam& out) {
  const std::string which = "key " + std::to_string(index + 1);
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    // Not quoted back: without its "inline:" this may well be a key.
    return Failure{ParseStatus::Malformed, which + ": expected \"inline:<key>\""};
  }
  const std::string_view method = text.substr(0, colon);
  if (!iequals(method, "inline")) {
    // RFC 4568 section 6.1: "inline" is the only key method defined for SRTP.
    return Failure{ParseStatus::Unsupported, which + ": key method " + quoted(method) +
                                                 " is not supported (only inline)"};
  }
  std::string_view info = text.substr(colon + 1);
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t bar = info.find('|', start);
    parts.push_back(info.substr(start, bar == std::string_view::npos ? bar : bar - start));
    if (bar == std::string_view::npos) break;
    start = bar + 1;
  }
  if (parts.size() > 3) {
    return Failure{ParseStatus::Malformed, which + ": too many \"|\" fields"};
  }
  if (parts[0].empty()) return Failure{ParseStatus::Malformed, which + ": missing key"};

  std::array<std::uint8_t, kMaxKeySaltLength + 3> decoded{};
  std::string error;
  const std::optional<std::size_t> length = decodeBase64(parts[0], decoded, error);
  if (!length) {
    OPENSSL_cleanse(decoded.data(), decoded.size());
    return Failure{ParseStatus::Malformed, which + ": " + error};
  }
  if (*length != suite.keySaltLength()) {
    OPENSSL_cleanse(decoded.data(), decoded.size());
    return Failure{ParseStatus::Malformed,
                   which + ": " + std::to_string(*length) + " octets of key and salt, " +
                       std::string(suite.name) + " needs " + std::to_string(suite.keySaltLength())};
  }
  out.keySalt = KeyMaterial(std::span<const std::uint8_t>(decoded.data(), *length));
  OPENSSL_cleanse(decoded.data(), decoded.size());

  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string_view part = parts[i];
    const std::size_t mkiColon = part.find(':');
    if (mkiColon == std::string_view::npos) {
      // lifetime; it must come before the MKI (RFC 4568 section 9.1 order).
      if (out.lifetime || out.mki) {
        return Failure{ParseStatus::Malformed, which + ": unexpected field " + quoted(part)};
      }
      std::uint64_t lifetime = 0;
      if (part.size() > 2 && part[0] == '2' && part[1] == '^') {
        const auto exponent = parseNumber(part.substr(2), 2);
        if (!exponent || *exponent > 48) {
          return Failure{ParseStatus::Malformed,
                         which + ": lifetime " + quoted(part) + " is not 2^0..2^48"};
        }
        lifetime = std::uint64_t{1} << *exponent;
      } else {
        const auto value = parseNumber(part, 15);
        if (!value || *value == 0 || *value > kMaxLifetime) {
          return Failure{ParseStatus::Malformed,
                         which + ": lifetime " + quoted(part) + " is not 1..2^48 packets"};
        }
        lifetime = *value;
      }
      out.lifetime = lifetime;
      continue;
    }
    if (out.mki) return Failure{ParseStatus::Malformed, which + ": two MKI fields"};
    const std::string_view valueText = part.substr(0, mkiColon);
    const auto mkiLength = parseNumber(part.substr(mkiColon + 1), 3);
    if (!mkiLength || *mkiLength < 1 || *mkiLength > 128) {
      return Failure{ParseStatus::Malformed,
                     which + ": MKI length in " + quoted(part) + " is not 1..128"};
    }
    if (valueText.empty() || valueText.find_first_not_of("0123456789") != std::string_view::npos) {
      return Failure{ParseStatus::Malformed, which + ": MKI value in " + quoted(part) + " is not a number"};
    }
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(valueText.data(), valueText.data() + valueText.size(), value);
    if (ec != std::errc() || end != valueText.data() + valueText.size()) {
      return Failure{ParseStatus::Unsupported,
                     which + ": MKI value " + quoted(valueText) + " above 2^64-1 is not supported"};
    }
    if (*mkiLength < 8 && (value >> (8 * *mkiLength)) != 0) {
      return Failure{ParseStatus::Malformed, which + ": MKI value " + quoted(valueText) +
                                                 " does not fit in " + std::to_string(*mkiLength) +
                                                 " octets"};
    }
    out.mki = Mki{value, static_cast<std::uint8_t>(*mkiLength)};
  }
  return std::nullopt;
}

// One session-param (RFC 4568 section 6.3). Returns a failure for what we refuse.
std::optional<Failure> parseSessionParam(std::string_view text, SessionParams& params) {
  const std::size_t equals = text.find('=');
  const std::string_view name = text.substr(0, equals);
  const std::string_view value = equals == std::string_view::npos ? std::string_view{} : text.substr(equals + 1);
  const bool hasValue = equals != std::string_view::npos;
  if (iequals(text, "UNENCRYPTED_SRTP")) {
    params.unencryptedSrtp = true;
    return Failure{ParseStatus::Unsupported, "UNENCRYPTED_SRTP is not supported: SRTP is always encrypted here"};
  }
  if (iequals(text, "UNENCRYPTED_SRTCP")) {
    params.unencryptedSrtcp = true;
    return Failure{ParseStatus::Unsupported, "UNENCRYPTED_SRTCP is not supported: SRTCP is always encrypted here"};
  }
  if (iequals(text, "UNAUTHENTICATED_SRTP")) {
    params.unauthenticatedSrtp = true;
    return Failure{ParseStatus::Unsupported,
                   "UNAUTHENTICATED_SRTP is not supported: SRTP is always authenticated here"};
  }
  if (hasValue && iequals(name, "KDR")) {
    const auto rate = parseNumber(value, 2);
    if (!rate || *rate > 24) return Failure{ParseStatus::Malformed, "KDR=" + std::string(value) + " is not 0..24"};
    params.kdr = static_cast<unsigned>(*rate);
    return Failure{ParseStatus::Unsupported,
                   "KDR is not supported: libsrtp derives session keys once per master key"};
  }
  if (hasValue && iequals(name, "WSH")) {
    const auto window = parseNumber(value, 9);
    if (!window || *window < 64) {
      return Failure{ParseStatus::Malformed, "WSH=" + std::string(value) + " is not a number >= 64"};
    }
    params.wsh = static_cast<std::uint32_t>(*window);
    return std::nullopt;
  }
  if (hasValue && iequals(name, "FEC_ORDER")) {
    if (!iequals(value, "FEC_SRTP") && !iequals(value, "SRTP_FEC")) {
      return Failure{ParseStatus::Malformed, "FEC_ORDER=" + std::string(value) + " is not FEC_SRTP or SRTP_FEC"};
    }
    params.fecOrder = std::string(value);
    return std::nullopt;  // we do no FEC: the order does not matter
  }
  if (hasValue && iequals(name, "FEC_KEY")) {
    params.fecKey = true;
    return Failure{ParseStatus::Unsupported, "FEC_KEY is not supported (no FEC)"};
  }
  if (text.size() > 1 && text[0] == '-') {
    params.ignored.emplace_back(text);
    return std::nullopt;
  }
  return Failure{ParseStatus::Unsupported, "unknown session parameter " + quoted(text)};
}

}  // namespace

std::string encodeBase64(std::span<const std::uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

// Our own decoder: OpenSSL's EVP_DecodeBlock skips whitespace, needs padding, and does not
// say how much of its output is padding; RFC 4568 keys need none of that leniency.
std::optional<std::size_t> decodeBase64(std::string_view text, std::span<std::uint8_t> out,
                                        std::string& error) {
  std::size_t padding = 0;
  while (!text.empty() && text.back() == '=' && padding < 2) {
    text.remove_suffix(1);
    ++padding;
  }
  if (text.empty()) {
    error = "empty key";
    return std::nullopt;
  }
  const std::size_t tail = text.size() % 4;
  if (tail == 1 || (padding > 0 && tail + padding != 4)) {
    error = "key is not valid base64 (bad length or padding)";
    return std::nullopt;
  }
  const std::size_t length = 3 * (text.size() / 4) + (tail == 0 ? 0 : tail - 1);
  if (length > out.size()) {
    error = "key is too long (" + std::to_string(length) + " octets or more)";
    return std::nullopt;
  }
  std::uint32_t accumulator = 0;
  int bits = 0;
  std::size_t written = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const int value = base64Value(text[i]);
    if (value < 0) {
      error = "key is not valid base64 (character " + std::to_string(i + 1) + ")";
      return std::nullopt;
    }
    accumulator = (accumulator << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[written++] = static_cast<std::uint8_t>((accumulator >> bits) & 0xff);
    }
  }
  // RFC 4648 section 3.5: the pad bits of the last character must be zero (canonical).
  if ((accumulator & ((1u << bits) - 1)) != 0) {
    error = "key is not canonical base64 (non-zero pad bits)";
    return std::nullopt;
  }
  return written;
}

std::vector<MasterKey> CryptoAttribute::masterKeys() const {
  std::vector<MasterKey> out;
  out.reserve(keys.size());
  for (const KeyParam& key : keys) out.push_back(MasterKey{key.keySalt, key.mki});
  return out;
}

CryptoParseResult parseCryptoAttribute(std::string_view value) {
  CryptoParseResult result;
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.remove_suffix(1);
  const std::vector<std::string_view> parts = fields(value);
  auto fail = [&result](ParseStatus status, std::string error) {
    result.status = status;
    result.error = std::move(error);
    return result;
  };
  if (parts.empty()) return fail(ParseStatus::Malformed, "empty a=crypto");
  const auto tag = parseNumber(parts[0], 9);
  if (!tag) return fail(ParseStatus::Malformed, "tag " + quoted(parts[0]) + " is not 1 to 9 digits");
  result.tag = static_cast<std::uint32_t>(*tag);
  if (parts.size() < 2) return fail(ParseStatus::Malformed, "missing crypto suite");
  result.suiteName = std::string(parts[1]);
  if (parts[1].find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
      std::string_view::npos) {
    return fail(ParseStatus::Malformed, "crypto suite " + quoted(parts[1]) + " has invalid characters");
  }
  const std::optional<CryptoSuite> suite = suiteFromName(parts[1]);
  if (!suite) return fail(ParseStatus::UnknownSuite, "unknown crypto suite " + quoted(parts[1]));
  if (parts.size() < 3) return fail(ParseStatus::Malformed, "missing key (no inline: key parameter)");

  CryptoAttribute attribute;
  attribute.tag = result.tag.value();
  attribute.suite = *suite;
  const SuiteInfo& info = suiteInfo(*suite);
  std::optional<Failure> refused;  // first Unsupported reason; parsing goes on for Malformed

  std::string_view keyParams = parts[2];
  for (std::size_t start = 0;;) {
    const std::size_t semicolon = keyParams.find(';', start);
    const std::string_view one =
        keyParams.substr(start, semicolon == std::string_view::npos ? semicolon : semicolon - start);
    const std::size_t index = attribute.keys.size();
    if (index == kMaxKeys) {
      if (!refused) refused = Failure{ParseStatus::Unsupported, "more than 16 keys are not supported"};
      break;
    }
    KeyParam key;
    if (auto failure = parseKeyParam(one, info, index, key)) {
      if (failure->status == ParseStatus::Malformed) return fail(failure->status, failure->error);
      if (!refused) refused = std::move(failure);
    } else {
      attribute.keys.push_back(std::move(key));
    }
    if (semicolon == std::string_view::npos) break;
    start = semicolon + 1;
  }
  // RFC 4568 section 6.1: with several keys each has an MKI, of one length, distinct values.
  if (attribute.keys.size() > 1) {
    for (std::size_t i = 0; i < attribute.keys.size(); ++i) {
      const auto& mki = attribute.keys[i].mki;
      if (!mki) return fail(ParseStatus::Malformed, "several keys, but key " + std::to_string(i + 1) + " has no MKI");
      if (mki->length != attribute.keys[0].mki->length) {
        return fail(ParseStatus::Malformed, "keys have MKIs of different lengths");
      }
      for (std::size_t j = 0; j < i; ++j) {
        if (attribute.keys[j].mki->value == mki->value) {
          return fail(ParseStatus::Malformed, "two keys have the same MKI " + std::to_string(mki->value));
        }
      }
    }
  }
  for (std::size_t i = 3; i < parts.size(); ++i) {
    if (auto failure = parseSessionParam(parts[i], attribute.params)) {
      if (failure->status == ParseStatus::Malformed) return fail(failure->status, failure->error);
      if (!refused) refused = std::move(failure);
    }
  }
  if (refused) {
    result.attribute = std::move(attribute);
    return fail(refused->status, refused->error);
  }
  result.status = ParseStatus::Ok;
  result.attribute = std::move(attribute);
  return result;
}

std::string formatCryptoAttribute(const CryptoAttribute& attribute) {
  const SuiteInfo& info = suiteInfo(attribute.suite);
  if (attribute.keys.empty()) throw std::invalid_argument("a=crypto needs at least one key");
  if (attribute.tag > 999999999) throw std::invalid_argument("a=crypto tag has more than 9 digits");
  std::string out = std::to_string(attribute.tag);
  out += ' ';
  out += info.name;
  out += ' ';
  for (std::size_t i = 0; i < attribute.keys.size(); ++i) {
    const KeyParam& key = attribute.keys[i];
    if (key.keySalt.size() != info.keySaltLength()) {
      throw std::invalid_argument(std::string(info.name) + " needs " + std::to_string(info.keySaltLength()) +
                                  " octets of key and salt, not " + std::to_string(key.keySalt.size()));
    }
    if (attribute.keys.size() > 1 && !key.mki) {
      throw std::invalid_argument("several keys need an MKI each (RFC 4568 section 6.1)");
    }
    if (i > 0) out += ';';
    out += "inline:";
    out += encodeBase64(key.keySalt.bytes());
    if (key.lifetime) {
      const std::uint64_t lifetime = *key.lifetime;
      if (lifetime == 0 || lifetime > kMaxLifetime) {
        throw std::invalid_argument("a=crypto lifetime must be 1..2^48 packets");
      }
      out += '|';
      if ((lifetime & (lifetime - 1)) == 0) {
        int exponent = 0;
        while ((std::uint64_t{1} << exponent) != lifetime) ++exponent;
        out += "2^" + std::to_string(exponent);
      } else {
        out += std::to_string(lifetime);
      }
    }
    if (key.mki) {
      out += '|' + std::to_string(key.mki->value) + ':' + std::to_string(key.mki->length);
    }
  }
  const SessionParams& params = attribute.params;
  if (params.kdr) out += " KDR=" + std::to_string(*params.kdr);
  if (params.unencryptedSrtp) out += " UNENCRYPTED_SRTP";
  if (params.unencryptedSrtcp) out += " UNENCRYPTED_SRTCP";
  if (params.unauthenticatedSrtp) out += " UNAUTHENTICATED_SRTP";
  if (params.fecOrder) out += " FEC_ORDER=" + *params.fecOrder;
  if (params.wsh) out += " WSH=" + std::to_string(*params.wsh);
  for (const std::string& ignored : params.ignored) out += ' ' + ignored;
  return out;
}

CryptoAttribute makeLocalCryptoAttribute(std::uint32_t tag, CryptoSuite suite) {
  CryptoAttribute attribute;
  attribute.tag = tag;
  attribute.suite = suite;
  attribute.keys.push_back(KeyParam{generateKeyMaterial(suite), std::nullopt, std::nullopt});
  return attribute;
}

}  // namespace medius::media::srtp
