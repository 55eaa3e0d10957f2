// STUN messages (RFC 5389): parse, check MESSAGE-INTEGRITY (short-term credentials) and
// FINGERPRINT, build requests and responses. Used by the media worker's ICE-lite (RFC 8445)
// and usable for keepalives on the SIP port.
//
// parse() never throws and never reads past the input: whatever it is given, it returns a
// Message (whose views point into the input, valid while that buffer is) or an Error.
// Attributes the parser does not know are kept in Message::attributes and otherwise
// skipped; comprehension-required ones (type < 0x8000) are listed in
// Message::unknownRequired so that a server can answer 420 if it wants to.
//
// Thread: everything here is thread-safe (no state).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace medius::stun {

inline constexpr std::uint32_t kMagicCookie = 0x2112A442;
inline constexpr std::size_t kHeaderBytes = 20;
// CRC-32 of the message is XORed with this ("STUN") in FINGERPRINT (RFC 5389 15.5).
inline constexpr std::uint32_t kFingerprintXor = 0x5354554e;

enum class Class : std::uint8_t { Request, Indication, SuccessResponse, ErrorResponse };

inline constexpr std::uint16_t kBinding = 0x001;

// Attribute types (RFC 5389 18.2, RFC 8445 16.1).
namespace attr {
inline constexpr std::uint16_t kMappedAddress = 0x0001;
inline constexpr std::uint16_t kUsername = 0x0006;
inline constexpr std::uint16_t kMessageIntegrity = 0x0008;
inline constexpr std::uint16_t kErrorCode = 0x0009;
inline constexpr std::uint16_t kUnknownAttributes = 0x000A;
inline constexpr std::uint16_t kRealm = 0x0014;
inline constexpr std::uint16_t kNonce = 0x0015;
inline constexpr std::uint16_t kXorMappedAddress = 0x0020;
inline constexpr std::uint16_t kPriority = 0x0024;
inline constexpr std::uint16_t kUseCandidate = 0x0025;
inline constexpr std::uint16_t kSoftware = 0x8022;
inline constexpr std::uint16_t kAlternateServer = 0x8023;
inline constexpr std::uint16_t kFingerprint = 0x8028;
inline constexpr std::uint16_t kIceControlled = 0x8029;
inline constexpr std::uint16_t kIceControlling = 0x802A;
}  // namespace attr

using TransactionId = std::array<std::uint8_t, 12>;

// An IPv4 or IPv6 transport address; `ip` in network order (4 or 16 bytes used).
struct Address {
  int family = 4;  // 4 or 6
  std::array<std::uint8_t, 16> ip{};
  std::uint16_t port = 0;

  static Address v4(std::uint32_t hostOrderIp, std::uint16_t port);
  // Dotted quad or IPv6 text; nullopt when it is neither.
  static std::optional<Address> fromString(std::string_view ip, std::uint16_t port);
  std::string ipString() const;
  bool operator==(const Address&) const = default;
};

struct ErrorCode {
  int code = 0;  // 300..699
  std::string_view reason;
};

// One attribute as it is on the wire (value without padding).
struct Attribute {
  std::uint16_t type = 0;
  std::span<const std::uint8_t> value;
};

struct Message {
  std::uint16_t method = 0;
  Class cls = Class::Request;
  TransactionId transactionId{};
  // Every attribute up to MESSAGE-INTEGRITY (included) and FINGERPRINT, in order.
  // Attributes between MESSAGE-INTEGRITY and FINGERPRINT are ignored (RFC 5389 15.4).
  std::vector<Attribute> attributes;
  std::vector<std::uint16_t> unknownRequired;

  // The attributes the parser decodes (the first of each type counts).
  std::optional<std::string_view> username;
  std::optional<std::uint32_t> priority;
  bool useCandidate = false;
  std::optional<std::uint64_t> iceControlling;
  std::optional<std::uint64_t> iceControlled;
  std::optional<Address> mappedAddress;
  std::optional<Address> xorMappedAddress;
  std::optional<ErrorCode> errorCode;
  std::optional<std::string_view> software;

  // Offsets in the parsed buffer of the MESSAGE-INTEGRITY / FINGERPRINT attribute headers.
  std::optional<std::size_t> integrityOffset;
  std::optional<std::size_t> fingerprintOffset;
};

enum class Error {
  TooShort,          // under 20 bytes, or the header's length is larger than the data
  NotStun,           // first two bits not 0, or no magic cookie
  BadLength,         // length not a multiple of 4, or not equal to the data after the header
  BadAttribute,      // an attribute runs past the end, or a known one has a bad size/value
  AfterFingerprint,  // an attribute follows FINGERPRINT
};
std::string_view errorName(Error error);

// True when `data` looks like STUN on a multiplexed port (RFC 7983: first byte 0..3) with the
// magic cookie: cheap, for demultiplexing before parse().
bool looksLikeStun(std::span<const std::uint8_t> data);

struct ParseResult {
  std::optional<Message> message;
  Error error = Error::TooShort;  // when !message
};
// `data` is exactly one datagram.
ParseResult parse(std::span<const std::uint8_t> data);

// MESSAGE-INTEGRITY (HMAC-SHA1, RFC 5389 15.4) of the parsed message `data` under `key`
// (short-term credentials: the password as it is). False when the message has none.
bool verifyIntegrity(std::span<const std::uint8_t> data, const Message& message, std::string_view key);
// FINGERPRINT (CRC-32 XOR 0x5354554e, RFC 5389 15.5). False when the message has none.
bool verifyFingerprint(std::span<const std::uint8_t> data, const Message& message);

// A fresh random transaction id (OpenSSL RAND_bytes).
TransactionId randomTransactionId();
// `chars` random ice-chars (ALPHA / DIGIT / "+" / "/", RFC 8839 5.4), 6 bits each from
// OpenSSL RAND_bytes: an ICE ufrag (4 or more) or pwd (22 or more: 132 bits).
std::string randomIceString(std::size_t chars);

// Writes a message attribute by attribute; finish() (or addFingerprint) completes it.
// MESSAGE-INTEGRITY and FINGERPRINT cover what was added before them, so add them last, in
// that order. The header's length is 16 bits: keep a message under 64 KiB (a value longer
// than 65531 bytes is cut there); UDP STUN stays far below (RFC 5389 7.1: under the MTU).
class Builder {
 public:
  Builder(std::uint16_t method, Class cls, const TransactionId& transactionId);

  Builder& add(std::uint16_t type, std::span<const std::uint8_t> value);
  Builder& addString(std::uint16_t type, std::string_view value);
  Builder& addUint32(std::uint16_t type, std::uint32_t value);
  Builder& addUint64(std::uint16_t type, std::uint64_t value);
  Builder& addFlag(std::uint16_t type);  // zero length (USE-CANDIDATE)
  Builder& addXorAddress(std::uint16_t type, const Address& address);
  Builder& addAddress(std::uint16_t type, const Address& address);
  Builder& addErrorCode(int code, std::string_view reason);
  Builder& addMessageIntegrity(std::string_view key);
  Builder& addFingerprint();

  const std::vector<std::uint8_t>& bytes() const { return bytes_; }
  std::vector<std::uint8_t> finish() && { return std::move(bytes_); }

 private:
  void setLength(std::size_t bodyBytes);
  std::vector<std::uint8_t> bytes_;
};

// Binding success response to `request`: XOR-MAPPED-ADDRESS `mapped`, MESSAGE-INTEGRITY
// with `key` (none when empty), FINGERPRINT.
std::vector<std::uint8_t> bindingSuccess(const TransactionId& transactionId, const Address& mapped,
                                         std::string_view key);
// Binding error response: ERROR-CODE (e.g. 400 Bad Request, 487 Role Conflict),
// MESSAGE-INTEGRITY with `key` (none when empty: a request that did not authenticate),
// FINGERPRINT.
std::vector<std::uint8_t> bindingError(const TransactionId& transactionId, int code,
                                       std::string_view reason, std::string_view key);

}  // namespace medius::stun
