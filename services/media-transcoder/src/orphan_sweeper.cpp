#include "medius/media/orphan_sweeper.hpp"

#include <algorithm>

#include "medius/common/logging.hpp"

namespace medius::media {

OrphanSweeper::OrphanSweeper(SessionManager& manager, std::chrono::milliseconds interval)
    : manager_(manager), task_(interval, [this] { round(); }) {}

OrphanSweeper::~OrphanSweeper() { stop(); }

std::chrono::milliseconds OrphanSweeper::intervalFor(std::uint32_t orphanGraceMs) {
  return std::clamp(std::chrono::milliseconds(orphanGraceMs / 4), std::chrono::milliseconds(50),
                    std::chrono::milliseconds(1000));
}

void OrphanSweeper::round() {
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
}

}  // namespace medius::media
