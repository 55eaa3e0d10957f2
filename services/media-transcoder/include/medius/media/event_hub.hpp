// Fan-out of MediaEvents (media timeout, session deleted) to WatchEvents streams.
//
// Thread: thread-safe. publish() is called from the workers (rarely: a timeout) and from
// gRPC threads; each subscriber is a queue drained by its own WatchEvents call.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "medius/v1/media.pb.h"

namespace medius::media {

class EventHub {
 public:
  struct Queue {
    std::string gatewayId;  // "" = every gateway
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<medius::v1::MediaEvent> events;
  };

  std::uint64_t subscribe(const std::shared_ptr<Queue>& queue);
  void unsubscribe(std::uint64_t id);
  // Delivers to the subscribers watching `gatewayId` (and to those watching all).
  void publish(const std::string& gatewayId, const medius::v1::MediaEvent& event);

 private:
  std::mutex mutex_;
  std::uint64_t nextId_ = 1;
  std::map<std::uint64_t, std::shared_ptr<Queue>> queues_;
};

}  // namespace medius::media
