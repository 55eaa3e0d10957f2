// Expiry arithmetic of RFC 3261 section 10.3 steps 6-8, as pure functions.
#pragma once

#include <cstdint>
#include <optional>

#include "medius/registrar/config.hpp"

namespace medius::registrar {

struct ExpiryDecision {
  enum class Kind { Remove, Keep, TooBrief };
  Kind kind = Kind::Keep;
  // Granted seconds for Keep (clamped to max); 0 for Remove.
  std::uint32_t seconds = 0;
};

// The expiry of one contact: its "expires" parameter, else the request's Expires header,
// else the default. 0 removes; 0 < e < min is too brief (423); e > max is clamped to max.
ExpiryDecision decideExpiry(const ExpiryConfig& config, std::optional<std::uint32_t> contactExpires,
                            std::optional<std::uint32_t> requestExpires);

// Whole seconds left until expiresAtMs (rounded up, never negative).
std::uint32_t secondsLeft(std::int64_t expiresAtMs, std::int64_t nowMs);

}  // namespace medius::registrar
