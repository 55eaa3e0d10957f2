// Calls SessionManager::reapOrphans() every `interval` on a thread of its own, so that the
// sessions of a crashed gateway and unhandled media timeouts free their ports and load
// within orphan_grace_ms + interval.
//
// Ownership: borrows the manager (it must outlive the sweeper, or stop() first). Thread:
// construct, stop and destroy from one thread; the sweep runs on the sweeper's thread and
// sleeps on a condition variable between rounds (stop() wakes it at once).
#pragma once

#include <chrono>
#include <cstdint>

#include "medius/common/periodic_task.hpp"
#include "medius/media/session_manager.hpp"

namespace medius::media {

class OrphanSweeper {
 public:
  // Starts the thread; the first round is one interval from now.
  OrphanSweeper(SessionManager& manager, std::chrono::milliseconds interval);
  ~OrphanSweeper();  // stop()
  OrphanSweeper(const OrphanSweeper&) = delete;
  OrphanSweeper& operator=(const OrphanSweeper&) = delete;

  // Ends the thread (waits for a round in progress). Idempotent.
  void stop() { task_.stop(); }

  // The interval for a grace: a quarter of it, within 50 ms .. 1 s (a crashed gateway's
  // sessions go within 1.25 x the grace, at most grace + 1 s).
  static std::chrono::milliseconds intervalFor(std::uint32_t orphanGraceMs);

 private:
  void round();

  SessionManager& manager_;
  PeriodicTask task_;  // last: its thread starts once manager_ is set
};

}  // namespace medius::media
