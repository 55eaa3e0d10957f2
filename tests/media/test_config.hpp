// The MediaConfig of the in-process session tests: two workers, a random window of 100
// ports below the ephemeral range and away from the 20000-31999 of the other tests' free
// ports (a port held by someone else is skipped by the manager), a long media timeout.
#pragma once

#include <cstdint>
#include <random>

#include "medius/media/config.hpp"

namespace medius::media::test {

inline MediaConfig sessionTestConfig() {
  MediaConfig c;
  static std::mt19937 rng{std::random_device{}()};
  auto base = static_cast<std::uint16_t>(10000 + 100 * std::uniform_int_distribution<int>(0, 98)(rng));
  c.portRange = {base, static_cast<std::uint16_t>(base + 99)};
  c.workers = 2;
  c.mediaTimeoutMs = 60000;
  c.maxSessions = 100;
  return c;
}

}  // namespace medius::media::test
