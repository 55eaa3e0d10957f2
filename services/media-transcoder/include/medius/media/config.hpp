// The media-transcoder's configuration (media.json), loaded once, validated, then immutable.
//
//   {
//     "service": {...},                     see medius/common/service.hpp (defaults
//                                           127.0.0.1:50053 and 127.0.0.1:9103)
//     "advertised_address": "127.0.0.1",    the IPv4 address put in SDP (c=, o=) for peers
//                                           to send media to. Env MEDIUS_MEDIA_ADVERTISED_ADDRESS
//     "bind_address": "127.0.0.1",          where the RTP/RTCP sockets bind (IPv4 literal,
//                                           0.0.0.0 for all). Env MEDIUS_MEDIA_BIND_ADDRESS
//     "port_range": {"min": 20000, "max": 29999},
//                                           UDP ports for RTP (even) and RTCP (RTP + 1).
//                                           Env MEDIUS_MEDIA_PORT_MIN, MEDIUS_MEDIA_PORT_MAX
//     "workers": 0,                         relay event loops (threads); 0 = one per core.
//                                           Env MEDIUS_MEDIA_WORKERS
//     "media_timeout_ms": 30000,            no RTP on either leg for this long (counted from
//                                           the final answer) -> a
//                                           KIND_MEDIA_TIMEOUT event (per session override
//                                           in CreateSession). Env MEDIUS_MEDIA_TIMEOUT_MS
//     "strict_source": false,               drop packets from other sources once a leg has
//                                           latched (per leg also in LegParams)
//     "max_sessions": 10000,                CreateSession above it -> RESOURCE_EXHAUSTED
//     "drain": {"timeout_seconds": 600},    after SIGTERM/SIGINT or a Drain RPC: how long the
//                                           sessions in progress may go on (new ones are
//                                           refused) before they are deleted and the process
//                                           exits 0 (1..86400). Env MEDIUS_DRAIN_TIMEOUT_SECONDS
//     "load_limit": 0,                      estimated load (percent of one core, load.hpp)
//                                           above which CreateSession is refused with
//                                           RESOURCE_EXHAUSTED; 0 = 80 x workers.
//                                           Env MEDIUS_MEDIA_LOAD_LIMIT
//     "orphan_grace_ms": 15000              the worker deletes a session itself when nobody
//                                           will: its gateway's last WatchEvents stream
//                                           ended this long ago and none came back, or its
//                                           media timeout fired this long ago
//                                           (100..3600000; keep it above the gateways'
//                                           5 s watch reconnect backoff).
//                                           Env MEDIUS_MEDIA_ORPHAN_GRACE_MS
//   }
//
// Thread: plain values; share a const reference between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "medius/common/service.hpp"

namespace medius::media {

struct PortRange {
  std::uint16_t min = 20000;
  std::uint16_t max = 29999;
};

struct MediaConfig {
  // The file it was loaded from (for logs).
  std::string file;
  ServiceSettings service;
  std::string advertisedAddress = "127.0.0.1";
  std::string bindAddress = "127.0.0.1";
  PortRange portRange;
  // Number of relay event loops; resolved (never 0) after loading.
  std::uint32_t workers = 0;
  std::uint32_t mediaTimeoutMs = 30000;
  bool strictSource = false;
  std::uint32_t maxSessions = 10000;
  // Percent of one core; 0 = 80 x workers (resolved when loaded from a file).
  double loadLimit = 0;
  std::int64_t drainTimeoutSeconds = 600;
  // Orphaned sessions (SessionManager::reapOrphans) are deleted after this long.
  std::uint32_t orphanGraceMs = 15000;

  // One line describing the effective config.
  std::string summary() const;
};

// Reads and validates a media.json; throws config::ConfigError ("FILE: $.path: problem").
MediaConfig load(const std::string& path);
// Same, from text (`name` stands for the file in errors).
MediaConfig parse(std::string_view text, const std::string& name);

}  // namespace medius::media
