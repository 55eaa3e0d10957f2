#include "medius/registrar/expiry.hpp"

namespace medius::registrar {

ExpiryDecision decideExpiry(const ExpiryConfig& config, std::optional<std::uint32_t> contactExpires,
                            std::optional<std::uint32_t> requestExpires) {
  // RFC 3261 10.3 step 6: the contact's "expires" parameter wins over the Expires header,
  // which wins over the registrar's default.
  std::uint32_t e = contactExpires ? *contactExpires
                                   : (requestExpires ? *requestExpires : config.defaultSeconds);
  if (e == 0) return {ExpiryDecision::Kind::Remove, 0};
  if (e < config.minSeconds) return {ExpiryDecision::Kind::TooBrief, 0};
  if (e > config.maxSeconds) e = config.maxSeconds;
  return {ExpiryDecision::Kind::Keep, e};
}

std::uint32_t secondsLeft(std::int64_t expiresAtMs, std::int64_t nowMs) {
  std::int64_t left = expiresAtMs - nowMs;
  if (left <= 0) return 0;
  return static_cast<std::uint32_t>((left + 999) / 1000);
}

}  // namespace medius::registrar
