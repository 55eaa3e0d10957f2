#include "medius/registrar/event_hub.hpp"

namespace medius::registrar {

std::uint64_t EventHub::add(Subscriber callback) {
  std::lock_guard lock(mutex_);
  std::uint64_t id = nextId_++;
  subscribers_.emplace(id, std::move(callback));
  return id;
}

void EventHub::remove(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  subscribers_.erase(id);
}

void EventHub::dispatch(const BindingEvent& event) {
  std::lock_guard lock(mutex_);
  for (auto& [id, callback] : subscribers_) callback(event);
}

bool EventHub::empty() const {
  std::lock_guard lock(mutex_);
  return subscribers_.empty();
}

}  // namespace medius::registrar
