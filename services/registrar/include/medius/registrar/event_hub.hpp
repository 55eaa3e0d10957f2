// Local fan-out of binding events to subscribers; used by both stores.
//
// Thread: thread-safe. dispatch() holds the hub's lock while callbacks run, so that after
// remove() returns no callback of that subscription is running.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>

#include "medius/registrar/binding_store.hpp"

namespace medius::registrar {

class EventHub {
 public:
  std::uint64_t add(Subscriber callback);
  void remove(std::uint64_t id);
  void dispatch(const BindingEvent& event);
  bool empty() const;

 private:
  mutable std::mutex mutex_;
  std::uint64_t nextId_ = 1;
  std::map<std::uint64_t, Subscriber> subscribers_;
};

}  // namespace medius::registrar
