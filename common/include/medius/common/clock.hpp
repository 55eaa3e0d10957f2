// Injectable time source, so that expiry, nonces and timers are tested without waiting.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace medius {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, Unix epoch milliseconds.
  virtual std::int64_t nowMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::int64_t nowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static SystemClock& instance() {
    static SystemClock clock;
    return clock;
  }
};

// A clock tests move by hand. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t startMs = 1'700'000'000'000) : now_(startMs) {}
  std::int64_t nowMs() const override { return now_.load(); }
  void advanceMs(std::int64_t ms) { now_ += ms; }
  void setMs(std::int64_t ms) { now_ = ms; }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace medius
