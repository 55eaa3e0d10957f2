// Draining a service that carries long-lived work (the gateway's calls, a media worker's
// sessions): the first SIGTERM/SIGINT, or a Drain RPC, stops new work (health NOT_SERVING,
// the caller refuses new calls/sessions) while the work in progress goes on; the process
// exits 0 when the last piece of work has ended, or at the drain limit, whichever comes
// first; at the limit, or on a second SIGTERM/SIGINT during the drain, what is left is ended
// now (the gateway sends BYE) and the process exits 0 just the same.
//
// DrainState is the decision, a value with an injected clock (unit-tested); runDrain() is
// the loop main() runs with it: it waits for signals (SIGHUP still calls `onHangup`) and
// polls `remaining` until the verdict is final.
//
// A Drain RPC is not a signal: after `medctl drain`, the SIGTERM that Kubernetes sends when
// it deletes the pod is the *first* signal and does not cut the calls short.
//
// Thread: DrainState is thread-safe (the RPC's thread requests, main's thread decides).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "medius/common/service.hpp"

namespace medius {

class DrainState {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Verdict {
    Serving,       // not draining
    Draining,      // work remains, the limit is ahead
    Drained,       // nothing remains: exit
    LimitReached,  // the limit passed with work remaining: end it, exit
    EndNow,        // a second signal during the drain: end it, exit
  };

  // `limit`: how long work may continue once draining started (> 0).
  explicit DrainState(std::chrono::seconds limit);

  // Starts draining at `now` (the first request only; later ones change nothing, except that
  // a shorter `limit` (> 0) brings the deadline forward). Returns true for the first request.
  bool request(Clock::time_point now, std::optional<std::chrono::seconds> limit = std::nullopt);
  // A SIGTERM/SIGINT: starts draining, or, when it is the second signal, ends now.
  // Returns the verdict right after it (Draining or EndNow).
  Verdict signal(Clock::time_point now);
  bool draining() const;
  // Time left before the limit (zero when passed or not draining).
  std::chrono::milliseconds remaining(Clock::time_point now) const;
  Verdict verdict(Clock::time_point now, std::size_t workRemaining) const;

 private:
  const std::chrono::seconds limit_;
  mutable std::mutex mutex_;
  bool draining_ = false;
  int signals_ = 0;
  Clock::time_point deadline_{};
};

std::string verdictName(DrainState::Verdict verdict);

struct DrainHooks {
  // SIGHUP (a reload or log reopen); empty: logged and ignored.
  std::function<void()> onHangup;
  // Called once on the first request or signal, on main's thread: refuse new work, health
  // NOT_SERVING. (The Drain RPC may already have done so from its thread; it must be
  // idempotent.)
  std::function<void()> startDraining;
  // Work still in progress (calls, sessions).
  std::function<std::size_t()> remaining;
  // What the work is called in logs ("calls", "sessions").
  std::string what = "calls";
};

// Waits (on main's thread) for the first SIGTERM/SIGINT or a request from another thread
// (DrainState::request), then drains until a final verdict, which it returns (Drained,
// LimitReached or EndNow) after logging it. `poll` is how often `remaining` is asked.
DrainState::Verdict runDrain(ShutdownSignals& signals, DrainState& state, const DrainHooks& hooks,
                             std::chrono::milliseconds poll = std::chrono::milliseconds(50));

}  // namespace medius
