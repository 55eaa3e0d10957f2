#include "medius/media/event_hub.hpp"

#include "medius/common/logging.hpp"

namespace medius::media {

std::uint64_t EventHub::subscribe(const std::shared_ptr<Queue>& queue) {
  std::lock_guard lock(mutex_);
  std::uint64_t id = nextId_++;
  queues_.emplace(id, queue);
  if (!queue->gatewayId.empty()) {
    Owner& owner = owners_[queue->gatewayId];
    if (owner.streams++ == 0 && owner.goneSinceMs != 0) {
      log::get("media")->info("gateway {}: watching again after {} ms", queue->gatewayId,
                              clock_.nowMs() - owner.goneSinceMs);
    }
    owner.goneSinceMs = 0;
  }
  return id;
}

void EventHub::unsubscribe(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = queues_.find(id);
  if (it == queues_.end()) return;
  const std::string& gatewayId = it->second->gatewayId;
  if (!gatewayId.empty()) {
    auto owner = owners_.find(gatewayId);
    if (owner != owners_.end() && --owner->second.streams == 0) {
      owner->second.goneSinceMs = clock_.nowMs();
      log::get("media")->info("gateway {}: its last WatchEvents stream ended", gatewayId);
    }
  }
  queues_.erase(it);
}

void EventHub::publish(const std::string& gatewayId, const medius::v1::MediaEvent& event) {
  std::lock_guard lock(mutex_);
  for (auto& [id, queue] : queues_) {
    if (!queue->gatewayId.empty() && queue->gatewayId != gatewayId) continue;
    std::lock_guard queueLock(queue->mutex);
    queue->events.push_back(event);
    queue->cv.notify_one();
  }
}

std::map<std::string, std::int64_t> EventHub::goneOwners() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, std::int64_t> gone;
  for (const auto& [gatewayId, owner] : owners_) {
    if (owner.streams == 0) gone.emplace(gatewayId, owner.goneSinceMs);
  }
  return gone;
}

void EventHub::forget(const std::string& gatewayId, std::int64_t goneSinceMs) {
  std::lock_guard lock(mutex_);
  auto it = owners_.find(gatewayId);
  if (it != owners_.end() && it->second.streams == 0 && it->second.goneSinceMs == goneSinceMs) {
    owners_.erase(it);
  }
}

}  // namespace medius::media
