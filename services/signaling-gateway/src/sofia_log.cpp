// Sofia's logs (su_log) into the "sofia" spdlog logger (SOFIA.md section 8).
#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <string>

#include <sofia-sip/su_log.h>

#include "medius/common/logging.hpp"
#include "medius/gateway/sip_loop.hpp"

// Exported by libsofia-sip-ua but not declared in its public headers.
extern "C" {
extern su_log_t nta_log[];
extern su_log_t tport_log[];
}

namespace medius::gateway {

namespace {

// Sofia calls this with a printf format; lines end with '\n'. Must not throw.
void sofiaLogHook(void*, char const* fmt, va_list ap) noexcept {
  try {
    char buffer[2048];
    va_list copy;
    va_copy(copy, ap);
    int n = std::vsnprintf(buffer, sizeof buffer, fmt, copy);
    va_end(copy);
    if (n <= 0) return;
    std::string line(buffer, static_cast<std::size_t>(n) < sizeof buffer
                                 ? static_cast<std::size_t>(n)
                                 : sizeof buffer - 1);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.empty()) return;
    log::get("sofia")->info("{}", line);
  } catch (...) {
  }
}

// spdlog level -> Sofia level (0 = nothing, 1 = critical errors, 3 = Sofia's default,
// 5 = per-message debug, 9 = everything).
unsigned sofiaLevel(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return 9;
    case spdlog::level::debug: return 5;
    case spdlog::level::info: return 3;
    case spdlog::level::warn: return 2;
    case spdlog::level::err: return 1;
    case spdlog::level::critical: return 1;
    case spdlog::level::off: return 0;
    case spdlog::level::n_levels: break;
  }
  return 3;
}

}  // namespace

void redirectSofiaLogs() {
  static std::once_flag once;
  std::call_once(once, [] {
    unsigned level = sofiaLevel(log::get("sofia")->level());
    for (su_log_t* l : {static_cast<su_log_t*>(nullptr), nta_log, tport_log}) {
      su_log_redirect(l, &sofiaLogHook, nullptr);
      // Soft: an explicit SOFIA_DEBUG/NTA_DEBUG/TPORT_DEBUG in the environment wins.
      su_log_soft_set_level(l, level);
    }
  });
}

}  // namespace medius::gateway
