// libFuzzer target: nonce checking and nonce-count parsing see attacker-controlled text
// from Authorization headers.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "medius/common/clock.hpp"
#include "medius/common/digest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static medius::ManualClock clock;
  static medius::digest::NonceManager nonces("fuzz-secret", 300'000, clock);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)nonces.check(text);
  (void)medius::digest::parseNonceCount(text);
  (void)medius::digest::parseAlgorithm(text);
  medius::digest::Response r;
  r.username = std::string(text.substr(0, size / 2));
  r.nonce = std::string(text.substr(size / 2));
  r.qop = size % 2 ? "auth" : "";
  (void)medius::digest::expectedResponse(medius::digest::Algorithm::Sha256Sess, "00", r);
  return 0;
}
