#include "medius/media/srtp/keys.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>

namespace medius::media::srtp {

KeyMaterial::KeyMaterial(std::span<const std::uint8_t> keySalt) {
  if (keySalt.size() > bytes_.size()) {
    throw std::invalid_argument("SRTP key material of " + std::to_string(keySalt.size()) +
                                " octets is longer than the largest suite's (" +
                                std::to_string(kMaxKeySaltLength) + ")");
  }
  std::copy(keySalt.begin(), keySalt.end(), bytes_.begin());
  size_ = keySalt.size();
}

KeyMaterial::KeyMaterial(const KeyMaterial& other) : bytes_(other.bytes_), size_(other.size_) {}

KeyMaterial& KeyMaterial::operator=(const KeyMaterial& other) {
  if (this != &other) {
    bytes_ = other.bytes_;
    size_ = other.size_;
  }
  return *this;
}

KeyMaterial::KeyMaterial(KeyMaterial&& other) noexcept : bytes_(other.bytes_), size_(other.size_) {
  other.wipe();
}

KeyMaterial& KeyMaterial::operator=(KeyMaterial&& other) noexcept {
  if (this != &other) {
    bytes_ = other.bytes_;
    size_ = other.size_;
    other.wipe();
  }
  return *this;
}

KeyMaterial::~KeyMaterial() { wipe(); }

void KeyMaterial::wipe() noexcept {
  OPENSSL_cleanse(bytes_.data(), bytes_.size());
  size_ = 0;
}

bool KeyMaterial::operator==(const KeyMaterial& other) const {
  return size_ == other.size_ && CRYPTO_memcmp(bytes_.data(), other.bytes_.data(), size_) == 0;
}

KeyMaterial generateKeyMaterial(CryptoSuite suite) {
  const SuiteInfo& info = suiteInfo(suite);
  std::array<std::uint8_t, kMaxKeySaltLength> buffer{};
  const std::size_t length = info.keySaltLength();
  if (RAND_bytes(buffer.data(), static_cast<int>(length)) != 1) {
    throw std::runtime_error("RAND_bytes failed: no SRTP key generated");
  }
  KeyMaterial key(std::span<const std::uint8_t>(buffer.data(), length));
  OPENSSL_cleanse(buffer.data(), buffer.size());
  return key;
}

}  // namespace medius::media::srtp
