// A thread that removes expired bindings every interval (Registrar::sweep).
//
// Ownership: borrows the Registrar. Thread: owns one thread; start/stop from one thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "medius/registrar/registrar.hpp"

namespace medius::registrar {

class Sweeper {
 public:
  Sweeper(Registrar& registrar, std::chrono::milliseconds interval);
  ~Sweeper();
  Sweeper(const Sweeper&) = delete;
  Sweeper& operator=(const Sweeper&) = delete;

  // Stops and joins the thread; idempotent.
  void stop();

 private:
  void run();

  Registrar& registrar_;
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace medius::registrar
