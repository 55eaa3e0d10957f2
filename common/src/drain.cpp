#include "medius/common/drain.hpp"

#include <csignal>

#include "medius/common/logging.hpp"

namespace medius {

DrainState::DrainState(std::chrono::seconds limit) : limit_(limit) {}

bool DrainState::request(Clock::time_point now, std::optional<std::chrono::seconds> limit) {
  std::lock_guard lock(mutex_);
  const auto wanted = now + (limit && limit->count() > 0 ? *limit : limit_);
  if (!draining_) {
    draining_ = true;
    deadline_ = wanted;
    return true;
  }
  if (limit && limit->count() > 0 && wanted < deadline_) deadline_ = wanted;
  return false;
}

DrainState::Verdict DrainState::signal(Clock::time_point now) {
  {
    std::lock_guard lock(mutex_);
    if (++signals_ > 1) return Verdict::EndNow;
  }
  request(now);
  return Verdict::Draining;
}

bool DrainState::draining() const {
  std::lock_guard lock(mutex_);
  return draining_;
}

std::chrono::milliseconds DrainState::remaining(Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  if (!draining_ || now >= deadline_) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now);
}

DrainState::Verdict DrainState::verdict(Clock::time_point now, std::size_t workRemaining) const {
  std::lock_guard lock(mutex_);
  if (!draining_) return Verdict::Serving;
  if (signals_ > 1) return Verdict::EndNow;
  if (workRemaining == 0) return Verdict::Drained;
  if (now >= deadline_) return Verdict::LimitReached;
  return Verdict::Draining;
}

std::string verdictName(DrainState::Verdict verdict) {
  switch (verdict) {
    case DrainState::Verdict::Serving: return "serving";
    case DrainState::Verdict::Draining: return "draining";
    case DrainState::Verdict::Drained: return "drained";
    case DrainState::Verdict::LimitReached: return "limit reached";
    case DrainState::Verdict::EndNow: return "second signal";
  }
  return "?";
}

DrainState::Verdict runDrain(ShutdownSignals& signals, DrainState& state, const DrainHooks& hooks,
                             std::chrono::milliseconds poll) {
  auto logger = log::get("main");
  auto hangup = [&] {
    if (hooks.onHangup) {
      hooks.onHangup();
    } else {
      logger->info("SIGHUP: this service has nothing to reload; ignored");
    }
  };
  // Serving: until the first SIGTERM/SIGINT or a Drain request.
  while (!state.draining()) {
    int sig = signals.waitFor(poll);
    if (sig == SIGHUP) {
      hangup();
    } else if (sig != 0) {
      state.signal(DrainState::Clock::now());
      logger->info("signal {}: draining (a second SIGTERM/SIGINT ends what is left now)", sig);
    }
  }
  if (hooks.startDraining) hooks.startDraining();
  const auto now = DrainState::Clock::now();
  logger->info("draining: {} {} in progress, limit in {} s", hooks.remaining(), hooks.what,
               std::chrono::duration_cast<std::chrono::seconds>(state.remaining(now)).count());
  while (true) {
    const std::size_t left = hooks.remaining();
    const auto verdict = state.verdict(DrainState::Clock::now(), left);
    if (verdict != DrainState::Verdict::Draining) {
      if (verdict == DrainState::Verdict::Drained) {
        logger->info("drained: no {} left", hooks.what);
      } else {
        logger->warn("drain ended ({}): {} {} left are ended now", verdictName(verdict), left,
                     hooks.what);
      }
      return verdict;
    }
    int sig = signals.waitFor(poll);
    if (sig == SIGHUP) {
      hangup();
    } else if (sig != 0) {
      if (state.signal(DrainState::Clock::now()) == DrainState::Verdict::Draining) {
        // The drain was requested over gRPC; this is the first signal (the pod's deletion).
        logger->info("signal {}: already draining (a second SIGTERM/SIGINT ends what is left "
                     "now)", sig);
      }
    }
  }
}

}  // namespace medius
