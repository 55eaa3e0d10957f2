#include "medius/media/orphan_sweeper.hpp"

#include <algorithm>

#include "medius/common/logging.hpp"

namespace medius::media {

OrphanSweeper::OrphanSweeper(SessionManager& manager, std::chrono::milliseconds interval)
    : manager_(manager), interval_(interval), thread_([this] { run(); }) {}

OrphanSweeper::~OrphanSweeper() { stop(); }

void OrphanSweeper::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::chrono::milliseconds OrphanSweeper::intervalFor(std::uint32_t orphanGraceMs) {
  return std::clamp(std::chrono::milliseconds(orphanGraceMs / 4), std::chrono::milliseconds(50),
                    std::chrono::milliseconds(1000));
}

void OrphanSweeper::run() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
    lock.unlock();
    try {
      auto reaped = manager_.reapOrphans();
      if (reaped.ownerGone + reaped.timeoutUnhandled > 0) {
        log::get("media")->info("orphans: {} sessions of gone gateways, {} unhandled timeouts deleted",
                                reaped.ownerGone, reaped.timeoutUnhandled);
      }
    } catch (const std::exception& e) {
      // A worker refused the detach (it cannot, short of a broken invariant): try next round.
      log::get("media")->error("orphans: sweep failed: {}", e.what());
    }
    lock.lock();
  }
}

}  // namespace medius::media
