// libFuzzer target: the flood guard's address parsers (security.flood.exempt entries) and
// its check on any source address, User-Agent and clock steps: a value or nullopt, never a
// crash; the source table never exceeds its bound.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "medius/common/clock.hpp"
#include "medius/gateway/flood_guard.hpp"

using medius::gateway::FloodGuard;
using medius::gateway::FloodRequest;
using medius::gateway::FloodSettings;
using medius::gateway::IpAddress;
using medius::gateway::IpPrefix;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto prefix = IpPrefix::parse(text);
  auto address = IpAddress::parse(text);
  if (prefix && address && !prefix->contains(*address)) std::abort();

  medius::ManualClock clock(0);
  FloodSettings settings;
  settings.windowMs = 100;
  settings.maxRequests = 3;
  settings.banSeconds = 1;
  settings.maxSources = 16;
  settings.maxRequestsPerSecond = 5;
  settings.maxDialogs = 2;
  if (prefix) settings.exempt.push_back(*prefix);
  FloodGuard guard(settings, clock);
  // Records of 4 bytes: source (last byte), flags, clock step; the rest is a User-Agent.
  std::size_t i = 0;
  for (; i + 4 <= size && i < 4 * 256; i += 4) {
    FloodRequest r;
    r.source.bytes[10] = r.source.bytes[11] = 0xff;
    r.source.bytes[15] = data[i];
    r.source.bytes[14] = data[i] & 0x30;
    r.trusted = (data[i + 1] & 1) != 0;
    r.inDialog = (data[i + 1] & 2) != 0;
    r.newDialog = (data[i + 1] & 4) != 0;
    r.activeDialogs = data[i + 1] >> 4;
    r.userAgent = text.substr(i + 4, data[i + 2] % 16);
    (void)guard.check(r);
    clock.advanceMs(static_cast<std::int8_t>(data[i + 3]) * 37);
    if (guard.sources() > 16 || guard.bannedSources() > guard.sources()) std::abort();
  }
  return 0;
}
