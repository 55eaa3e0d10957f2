// SRTP master keys: a value type that wipes itself, and fresh keys from a CSPRNG.
//
// KeyMaterial holds one master key || master salt (RFC 3711 section 8.1; RFC 4568 section
// 6.1 "inline" key-salt) in a fixed in-object array, so copying it never allocates and
// destroying it wipes it with OPENSSL_cleanse (a store the optimizer may not elide).
// Copies are wiped too; a moved-from KeyMaterial is wiped and empty.
//
// Randomness: generateKeyMaterial() uses OpenSSL's RAND_bytes. We link OpenSSL already;
// its DRBG (OpenSSL 3: CTR-DRBG, NIST SP 800-90A) is seeded from getrandom(2), reseeds
// itself periodically and after fork(), and reports failure instead of returning weak
// bytes, which we turn into an exception. getrandom(2) directly would be as good for 30
// octets; RAND_bytes saves the short-read and EINTR loop and is what the rest of the
// project (digest nonces) uses.
//
// Thread: values; generateKeyMaterial() is thread-safe (RAND_bytes is).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

#include "medius/media/srtp/suite.hpp"

namespace medius::media::srtp {

class KeyMaterial {
 public:
  KeyMaterial() = default;
  // Copies `keySalt`; throws std::invalid_argument when longer than kMaxKeySaltLength.
  explicit KeyMaterial(std::span<const std::uint8_t> keySalt);
  KeyMaterial(const KeyMaterial& other);
  KeyMaterial& operator=(const KeyMaterial& other);
  KeyMaterial(KeyMaterial&& other) noexcept;
  KeyMaterial& operator=(KeyMaterial&& other) noexcept;
  ~KeyMaterial();

  std::span<const std::uint8_t> bytes() const { return {bytes_.data(), size_}; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Constant-time comparison (CRYPTO_memcmp) of equal-length keys.
  bool operator==(const KeyMaterial& other) const;

 private:
  void wipe() noexcept;

  std::array<std::uint8_t, kMaxKeySaltLength> bytes_{};
  std::size_t size_ = 0;
};

// Master Key Identifier (RFC 3711 section 3.1), as SDES writes it: "mki-value:mki-length"
// (RFC 4568 section 6.1), the value sent big-endian in `length` octets (1..128) between
// the payload and the tag of every packet. Values above 2^64-1 are not supported.
struct Mki {
  std::uint64_t value = 0;
  std::uint8_t length = 0;
  bool operator==(const Mki&) const = default;
};

// One master key of a session: key || salt and, when the peer uses one, its MKI.
struct MasterKey {
  KeyMaterial keySalt;
  std::optional<Mki> mki;
  bool operator==(const MasterKey&) const = default;
};

// A fresh master key || salt of the length `suite` needs (RFC 3711 section 8.1: keys
// must be random and never reused). Throws std::runtime_error if the CSPRNG fails.
KeyMaterial generateKeyMaterial(CryptoSuite suite);

}  // namespace medius::media::srtp
