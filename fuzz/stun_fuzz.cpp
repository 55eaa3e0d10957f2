// libFuzzer target: the STUN codec (medius/common/stun.hpp) sees every datagram a client
// sends to a media port whose first byte is 0..3, before any authentication.
#include <cstddef>
#include <cstdint>
#include <span>

#include "medius/common/stun.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> bytes(data, size);
  (void)medius::stun::looksLikeStun(bytes);
  auto parsed = medius::stun::parse(bytes);
  if (!parsed.message) return 0;
  const auto& m = *parsed.message;
  (void)medius::stun::verifyIntegrity(bytes, m, "VOkJxbRl1RmTxUk/WvJxBt");
  (void)medius::stun::verifyFingerprint(bytes, m);
  // A response to what was parsed, as the media worker builds it, parsed back.
  medius::stun::Address mapped = m.xorMappedAddress.value_or(medius::stun::Address::v4(0x7f000001, 5004));
  auto reply = medius::stun::bindingSuccess(m.transactionId, mapped, m.username.value_or("pwd"));
  auto back = medius::stun::parse(reply);
  if (!back.message || !medius::stun::verifyFingerprint(reply, *back.message)) __builtin_trap();
  return 0;
}
