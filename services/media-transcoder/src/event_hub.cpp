#include "medius/media/event_hub.hpp"

namespace medius::media {

std::uint64_t EventHub::subscribe(const std::shared_ptr<Queue>& queue) {
  std::lock_guard lock(mutex_);
  std::uint64_t id = nextId_++;
  queues_.emplace(id, queue);
  return id;
}

void EventHub::unsubscribe(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  queues_.erase(id);
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

}  // namespace medius::media
