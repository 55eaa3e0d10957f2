// A thread that removes expired bindings every interval (Registrar::sweep).
//
// Ownership: borrows the Registrar. Thread: owns one thread; start/stop from one thread.
#pragma once

#include <chrono>

#include "medius/common/periodic_task.hpp"
#include "medius/registrar/registrar.hpp"

namespace medius::registrar {

class Sweeper {
 public:
  Sweeper(Registrar& registrar, std::chrono::milliseconds interval);
  ~Sweeper();
  Sweeper(const Sweeper&) = delete;
  Sweeper& operator=(const Sweeper&) = delete;

  // Stops and joins the thread; idempotent.
  void stop() { task_.stop(); }

 private:
  void round();

  Registrar& registrar_;
  bool failing_ = false;  // the last round's store access failed (the task's thread only)
  PeriodicTask task_;     // last: its thread starts once the members above exist
};

}  // namespace medius::registrar
