#include "medius/media/port_pool.hpp"

#include <cassert>

namespace medius::media {

namespace {
std::uint16_t firstEven(std::uint16_t min) {
  return static_cast<std::uint16_t>((static_cast<std::uint32_t>(min) + 1u) & ~1u);
}
std::size_t pairsIn(std::uint16_t min, std::uint16_t max) {
  std::uint32_t first = firstEven(min);
  if (first + 1 > max) return 0;
  return (static_cast<std::uint32_t>(max) - first + 1) / 2;
}
}  // namespace

PortPool::PortPool(std::uint16_t min, std::uint16_t max)
    : first_(firstEven(min)), total_(pairsIn(min, max)), inUse_(total_, false) {
  for (std::size_t i = 0; i < total_; ++i) {
    free_.push_back(static_cast<std::uint16_t>(first_ + 2 * i));
  }
}

std::optional<std::uint16_t> PortPool::acquire() {
  std::lock_guard lock(mutex_);
  if (free_.empty()) return std::nullopt;
  std::uint16_t port = free_.front();
  free_.pop_front();
  inUse_[(port - first_) / 2] = true;
  return port;
}

void PortPool::release(std::uint16_t rtpPort) {
  std::lock_guard lock(mutex_);
  assert(rtpPort >= first_ && (rtpPort - first_) % 2 == 0);
  std::size_t index = static_cast<std::size_t>(rtpPort - first_) / 2;
  assert(index < total_ && inUse_[index]);
  if (index >= total_ || !inUse_[index]) return;
  inUse_[index] = false;
  free_.push_back(rtpPort);
}

std::size_t PortPool::freePairs() const {
  std::lock_guard lock(mutex_);
  return free_.size();
}

}  // namespace medius::media
