// A thread that runs `round` every `interval` until stopped: the services' background
// sweeps (the registrar's expired bindings, the media worker's orphaned sessions).
//
// Ownership: `round` must stay callable until stop() returns (the destructor stops).
// Thread: construct, stop and destroy from one thread; `round` runs on the task's own
// thread, which sleeps on a condition variable between rounds (stop() wakes it at once and
// waits for a round in progress). An exception from `round` is the caller's to catch:
// `round` must not throw.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace medius {

class PeriodicTask {
 public:
  // Starts the thread; the first round is one interval from now.
  PeriodicTask(std::chrono::milliseconds interval, std::function<void()> round);
  ~PeriodicTask();  // stop()
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  // Ends the thread; idempotent.
  void stop();

 private:
  void run();

  const std::chrono::milliseconds interval_;
  const std::function<void()> round_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace medius
