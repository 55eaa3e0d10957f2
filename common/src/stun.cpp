#include "medius/common/stun.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <zlib.h>

namespace medius::stun {

namespace {

constexpr std::size_t kIntegrityBytes = 20;  // HMAC-SHA1
constexpr std::size_t kFingerprintBytes = 4;

std::uint16_t read16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
std::uint32_t read32(const std::uint8_t* p) {
  return (static_cast<std::uint32_t>(p[0]) << 24) | (static_cast<std::uint32_t>(p[1]) << 16) |
         (static_cast<std::uint32_t>(p[2]) << 8) | p[3];
}
std::uint64_t read64(const std::uint8_t* p) {
  return (static_cast<std::uint64_t>(read32(p)) << 32) | read32(p + 4);
}
void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

// Message type (RFC 5389 6): M11..M0 interleaved with the class bits C1 (bit 8), C0 (bit 4).
std::uint16_t messageType(std::uint16_t method, Class cls) {
  auto c = static_cast<std::uint16_t>(cls);
  return static_cast<std::uint16_t>((method & 0x000F) | ((method & 0x0070) << 1) |
                                    ((method & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7));
}

// MAPPED-ADDRESS / XOR-MAPPED-ADDRESS value (RFC 5389 15.1, 15.2).
std::optional<Address> readAddress(std::span<const std::uint8_t> v, bool xored,
                                   const std::uint8_t* header) {
  if (v.size() < 4) return std::nullopt;
  Address a;
  std::uint8_t family = v[1];
  std::size_t ipBytes = 0;
  if (family == 0x01) {
    a.family = 4;
    ipBytes = 4;
  } else if (family == 0x02) {
    a.family = 6;
    ipBytes = 16;
  } else {
    return std::nullopt;
  }
  if (v.size() != 4 + ipBytes) return std::nullopt;
  a.port = read16(v.data() + 2);
  std::memcpy(a.ip.data(), v.data() + 4, ipBytes);
  if (xored) {
    a.port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
    // The cookie then the transaction id: bytes 4..19 of the header.
    for (std::size_t i = 0; i < ipBytes; ++i) a.ip[i] ^= header[4 + i];
  }
  return a;
}

std::array<std::uint8_t, kIntegrityBytes> hmacSha1(std::string_view key, const std::uint8_t* data,
                                                    std::size_t len) {
  std::array<std::uint8_t, kIntegrityBytes> out{};
  unsigned int outLen = 0;
  // An empty key is still a key: HMAC() wants a non-null pointer for it.
  static const char kEmpty = 0;
  if (::HMAC(EVP_sha1(), key.empty() ? &kEmpty : key.data(), static_cast<int>(key.size()), data, len,
             out.data(), &outLen) == nullptr) {
    out.fill(0);  // never matches a real MAC by chance in practice; OpenSSL failing is not input
  }
  return out;
}

std::uint32_t fingerprintOf(const std::uint8_t* data, std::size_t len) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  crc = ::crc32(crc, data, static_cast<uInt>(len));
  return static_cast<std::uint32_t>(crc) ^ kFingerprintXor;
}

}  // namespace

Address Address::v4(std::uint32_t hostOrderIp, std::uint16_t port) {
  Address a;
  a.family = 4;
  put32(a.ip.data(), hostOrderIp);
  a.port = port;
  return a;
}

std::optional<Address> Address::fromString(std::string_view ip, std::uint16_t port) {
  std::string text(ip);
  Address a;
  a.port = port;
  if (::inet_pton(AF_INET, text.c_str(), a.ip.data()) == 1) {
    a.family = 4;
    return a;
  }
  if (::inet_pton(AF_INET6, text.c_str(), a.ip.data()) == 1) {
    a.family = 6;
    return a;
  }
  return std::nullopt;
}

std::string Address::ipString() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family == 6 ? AF_INET6 : AF_INET, ip.data(), buffer, sizeof buffer);
  return buffer;
}

std::string_view errorName(Error error) {
  switch (error) {
    case Error::TooShort: return "too short";
    case Error::NotStun: return "not STUN";
    case Error::BadLength: return "bad length";
    case Error::BadAttribute: return "bad attribute";
    case Error::AfterFingerprint: return "attribute after FINGERPRINT";
  }
  return "unknown";
}

bool looksLikeStun(std::span<const std::uint8_t> data) {
  return data.size() >= kHeaderBytes && data[0] <= 3 && read32(data.data() + 4) == kMagicCookie;
}

ParseResult parse(std::span<const std::uint8_t> data) {
  ParseResult result;
  if (data.size() < kHeaderBytes) {
    result.error = Error::TooShort;
    return result;
  }
  const std::uint8_t* p = data.data();
  std::uint16_t type = read16(p);
  if ((type & 0xC000) != 0 || read32(p + 4) != kMagicCookie) {
    result.error = Error::NotStun;
    return result;
  }
  std::size_t length = read16(p + 2);
  if (length % 4 != 0 || kHeaderBytes + length != data.size()) {
    result.error = kHeaderBytes + length > data.size() ? Error::TooShort : Error::BadLength;
    return result;
  }
  Message m;
  m.method = static_cast<std::uint16_t>((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
  m.cls = static_cast<Class>(((type >> 4) & 1) | ((type >> 7) & 2));
  std::memcpy(m.transactionId.data(), p + 8, m.transactionId.size());

  auto fail = [&](Error e) {
    result.error = e;
    return result;
  };
  std::size_t offset = kHeaderBytes;
  while (offset < data.size()) {
    if (data.size() - offset < 4) return fail(Error::BadAttribute);
    std::uint16_t atype = read16(p + offset);
    std::size_t alen = read16(p + offset + 2);
    std::size_t padded = (alen + 3) & ~std::size_t{3};
    if (data.size() - offset - 4 < padded) return fail(Error::BadAttribute);
    if (m.fingerprintOffset) return fail(Error::AfterFingerprint);
    std::span<const std::uint8_t> v = data.subspan(offset + 4, alen);
    std::size_t here = offset;
    offset += 4 + padded;

    if (atype == attr::kFingerprint) {
      if (alen != kFingerprintBytes) return fail(Error::BadAttribute);
      m.fingerprintOffset = here;
      m.attributes.push_back({atype, v});
      continue;
    }
    // After MESSAGE-INTEGRITY only FINGERPRINT counts (RFC 5389 15.4).
    if (m.integrityOffset) continue;
    m.attributes.push_back({atype, v});
    switch (atype) {
      case attr::kMessageIntegrity:
        if (alen != kIntegrityBytes) return fail(Error::BadAttribute);
        m.integrityOffset = here;
        break;
      case attr::kUsername:
        if (alen > 513) return fail(Error::BadAttribute);
        if (!m.username) m.username = std::string_view(reinterpret_cast<const char*>(v.data()), v.size());
        break;
      case attr::kSoftware:
        if (!m.software) m.software = std::string_view(reinterpret_cast<const char*>(v.data()), v.size());
        break;
      case attr::kPriority:
        if (alen != 4) return fail(Error::BadAttribute);
        if (!m.priority) m.priority = read32(v.data());
        break;
      case attr::kUseCandidate:
        if (alen != 0) return fail(Error::BadAttribute);
        m.useCandidate = true;
        break;
      case attr::kIceControlling:
        if (alen != 8) return fail(Error::BadAttribute);
        if (!m.iceControlling) m.iceControlling = read64(v.data());
        break;
      case attr::kIceControlled:
        if (alen != 8) return fail(Error::BadAttribute);
        if (!m.iceControlled) m.iceControlled = read64(v.data());
        break;
      case attr::kMappedAddress:
      case attr::kXorMappedAddress: {
        auto a = readAddress(v, atype == attr::kXorMappedAddress, p);
        if (!a) return fail(Error::BadAttribute);
        auto& slot = atype == attr::kXorMappedAddress ? m.xorMappedAddress : m.mappedAddress;
        if (!slot) slot = a;
        break;
      }
      case attr::kErrorCode: {
        if (alen < 4) return fail(Error::BadAttribute);
        int cls = v[2] & 0x07;
        int number = v[3];
        if (cls < 3 || cls > 6 || number > 99) return fail(Error::BadAttribute);
        if (!m.errorCode) {
          m.errorCode = ErrorCode{cls * 100 + number,
                                  std::string_view(reinterpret_cast<const char*>(v.data() + 4), v.size() - 4)};
        }
        break;
      }
      default:
        if (atype < 0x8000) m.unknownRequired.push_back(atype);
        break;
    }
  }
  result.message = std::move(m);
  return result;
}

bool verifyIntegrity(std::span<const std::uint8_t> data, const Message& message, std::string_view key) {
  if (!message.integrityOffset) return false;
  std::size_t at = *message.integrityOffset;
  if (at < kHeaderBytes || at + 4 + kIntegrityBytes > data.size()) return false;
  // The HMAC covers the message up to MESSAGE-INTEGRITY, with the header's length as if
  // MESSAGE-INTEGRITY were the last attribute (a copy: the datagram stays as received).
  std::vector<std::uint8_t> covered(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(at));
  put16(covered.data() + 2, static_cast<std::uint16_t>(at + 4 + kIntegrityBytes - kHeaderBytes));
  auto mac = hmacSha1(key, covered.data(), covered.size());
  return ::CRYPTO_memcmp(mac.data(), data.data() + at + 4, kIntegrityBytes) == 0;
}

bool verifyFingerprint(std::span<const std::uint8_t> data, const Message& message) {
  if (!message.fingerprintOffset) return false;
  std::size_t at = *message.fingerprintOffset;
  if (at < kHeaderBytes || at + 4 + kFingerprintBytes != data.size()) return false;
  return fingerprintOf(data.data(), at) == read32(data.data() + at + 4);
}

TransactionId randomTransactionId() {
  TransactionId id{};
  if (::RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) {
    // No entropy is a broken environment, not bad input: still unique enough per process.
    static std::atomic<std::uint32_t> counter{0};
    put32(id.data(), counter.fetch_add(1) + 1);
  }
  return id;
}

std::string randomIceString(std::size_t chars) {
  static constexpr char kIceChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<std::uint8_t> random(chars);
  if (chars != 0 && ::RAND_bytes(random.data(), static_cast<int>(chars)) != 1) {
    throw std::runtime_error("RAND_bytes failed: no ICE credentials without entropy");
  }
  std::string out(chars, 'A');
  for (std::size_t i = 0; i < chars; ++i) out[i] = kIceChars[random[i] & 0x3f];
  return out;
}

Builder::Builder(std::uint16_t method, Class cls, const TransactionId& transactionId)
    : bytes_(kHeaderBytes) {
  put16(bytes_.data(), messageType(method, cls));
  put32(bytes_.data() + 4, kMagicCookie);
  std::memcpy(bytes_.data() + 8, transactionId.data(), transactionId.size());
}

void Builder::setLength(std::size_t bodyBytes) {
  put16(bytes_.data() + 2, static_cast<std::uint16_t>(bodyBytes));
}

Builder& Builder::add(std::uint16_t type, std::span<const std::uint8_t> value) {
  std::size_t len = std::min<std::size_t>(value.size(), 0xFFFF - 4);
  std::size_t at = bytes_.size();
  bytes_.resize(at + 4 + ((len + 3) & ~std::size_t{3}), 0);
  put16(bytes_.data() + at, type);
  put16(bytes_.data() + at + 2, static_cast<std::uint16_t>(len));
  if (len != 0) std::memcpy(bytes_.data() + at + 4, value.data(), len);
  setLength(bytes_.size() - kHeaderBytes);
  return *this;
}

Builder& Builder::addString(std::uint16_t type, std::string_view value) {
  return add(type, {reinterpret_cast<const std::uint8_t*>(value.data()), value.size()});
}

Builder& Builder::addUint32(std::uint16_t type, std::uint32_t value) {
  std::array<std::uint8_t, 4> v{};
  put32(v.data(), value);
  return add(type, v);
}

Builder& Builder::addUint64(std::uint16_t type, std::uint64_t value) {
  std::array<std::uint8_t, 8> v{};
  put32(v.data(), static_cast<std::uint32_t>(value >> 32));
  put32(v.data() + 4, static_cast<std::uint32_t>(value));
  return add(type, v);
}

Builder& Builder::addFlag(std::uint16_t type) { return add(type, {}); }

Builder& Builder::addAddress(std::uint16_t type, const Address& address) {
  std::array<std::uint8_t, 20> v{};
  std::size_t ipBytes = address.family == 6 ? 16 : 4;
  v[1] = address.family == 6 ? 0x02 : 0x01;
  put16(v.data() + 2, address.port);
  std::memcpy(v.data() + 4, address.ip.data(), ipBytes);
  return add(type, {v.data(), 4 + ipBytes});
}

Builder& Builder::addXorAddress(std::uint16_t type, const Address& address) {
  Address x = address;
  x.port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
  std::size_t ipBytes = address.family == 6 ? 16 : 4;
  for (std::size_t i = 0; i < ipBytes; ++i) x.ip[i] ^= bytes_[4 + i];
  return addAddress(type, x);
}

Builder& Builder::addErrorCode(int code, std::string_view reason) {
  std::vector<std::uint8_t> v(4 + reason.size());
  v[2] = static_cast<std::uint8_t>((code / 100) & 0x07);
  v[3] = static_cast<std::uint8_t>(code % 100);
  if (!reason.empty()) std::memcpy(v.data() + 4, reason.data(), reason.size());
  return add(attr::kErrorCode, v);
}

Builder& Builder::addMessageIntegrity(std::string_view key) {
  std::size_t at = bytes_.size();
  // The length already counts MESSAGE-INTEGRITY when the HMAC is computed.
  setLength(at + 4 + kIntegrityBytes - kHeaderBytes);
  auto mac = hmacSha1(key, bytes_.data(), at);
  return add(attr::kMessageIntegrity, mac);
}

Builder& Builder::addFingerprint() {
  std::size_t at = bytes_.size();
  setLength(at + 4 + kFingerprintBytes - kHeaderBytes);
  std::array<std::uint8_t, 4> v{};
  put32(v.data(), fingerprintOf(bytes_.data(), at));
  return add(attr::kFingerprint, v);
}

std::vector<std::uint8_t> bindingSuccess(const TransactionId& transactionId, const Address& mapped,
                                         std::string_view key) {
  Builder b(kBinding, Class::SuccessResponse, transactionId);
  b.addXorAddress(attr::kXorMappedAddress, mapped);
  if (!key.empty()) b.addMessageIntegrity(key);
  b.addFingerprint();
  return std::move(b).finish();
}

std::vector<std::uint8_t> bindingError(const TransactionId& transactionId, int code,
                                       std::string_view reason, std::string_view key) {
  Builder b(kBinding, Class::ErrorResponse, transactionId);
  b.addErrorCode(code, reason);
  if (!key.empty()) b.addMessageIntegrity(key);
  b.addFingerprint();
  return std::move(b).finish();
}

}  // namespace medius::stun
