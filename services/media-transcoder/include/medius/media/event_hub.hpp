// Fan-out of MediaEvents (media timeout, session deleted) to WatchEvents streams, and the
// record of which gateways are watching (to find the sessions of a gateway that is gone).
//
// A gateway watches each worker with one WatchEvents stream per gateway_id, re-opened
// after a break (services/signaling-gateway/src/media_client.cpp). When the last stream of
// a gateway_id ends, the hub notes the time: goneOwners() lists those gateways until a
// stream of theirs comes back or forget(). A gateway_id that never subscribed is never
// listed (sessions made by tests or medctl without WatchEvents); neither is "" (a stream
// watching every gateway, e.g. an operator's).
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

#include "medius/common/clock.hpp"
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

  // `clock` (borrowed, outlives the hub) stamps the moment a gateway's last stream ends.
  explicit EventHub(const Clock& clock = SystemClock::instance()) : clock_(clock) {}

  std::uint64_t subscribe(const std::shared_ptr<Queue>& queue);
  void unsubscribe(std::uint64_t id);
  // Delivers to the subscribers watching `gatewayId` (and to those watching all).
  void publish(const std::string& gatewayId, const medius::v1::MediaEvent& event);

  // The gateway_ids that subscribed once and have no stream now, with the time (clock
  // ms) their last stream ended.
  std::map<std::string, std::int64_t> goneOwners() const;
  // Drops a gone gateway's record (its sessions are all deleted) if it is still gone
  // since `goneSinceMs`; a gateway_id watching again, or gone again later, is kept.
  void forget(const std::string& gatewayId, std::int64_t goneSinceMs);

 private:
  struct Owner {
    int streams = 0;
    std::int64_t goneSinceMs = 0;  // when streams fell to 0
  };

  const Clock& clock_;
  mutable std::mutex mutex_;
  std::uint64_t nextId_ = 1;
  std::map<std::uint64_t, std::shared_ptr<Queue>> queues_;
  std::map<std::string, Owner, std::less<>> owners_;
};

}  // namespace medius::media
