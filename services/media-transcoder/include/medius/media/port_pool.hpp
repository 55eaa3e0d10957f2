// The RTP/RTCP port pairs of the configured range: an even RTP port and RTCP = RTP + 1.
//
// acquire() hands out the least recently released pair (so a port is not reused while
// late packets of its previous call may still arrive); release() gives it back. The pool
// only books numbers: binding the sockets is the caller's job, which may find a port
// taken by another process and then returns it with release() and asks again.
//
// Thread: thread-safe (a mutex; control path only, never per packet).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

namespace medius::media {

class PortPool {
 public:
  // Every even port p with min <= p and p + 1 <= max.
  PortPool(std::uint16_t min, std::uint16_t max);

  // The RTP port of a free pair, or nullopt when none is left.
  std::optional<std::uint16_t> acquire();
  // Returns a pair taken by acquire(); releasing a pair twice is a bug (asserted).
  void release(std::uint16_t rtpPort);

  std::size_t freePairs() const;
  std::size_t totalPairs() const { return total_; }

 private:
  const std::uint16_t first_;
  const std::size_t total_;
  mutable std::mutex mutex_;
  std::deque<std::uint16_t> free_;
  std::vector<bool> inUse_;
};

}  // namespace medius::media
