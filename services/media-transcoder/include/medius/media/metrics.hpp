// The media-transcoder's Prometheus metrics, declared once and passed by reference.
// No label ever names a session: traffic is aggregated by direction, in batches from
// the workers (TrafficCounters).
//
// Thread: prometheus-cpp metrics are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "medius/media/relay.hpp"
#include "medius/v1/media.pb.h"

namespace medius::media {

struct MediaMetrics {
  explicit MediaMetrics(prometheus::Registry& registry);

  prometheus::Family<prometheus::Counter>& packetsFamily;
  prometheus::Family<prometheus::Counter>& bytesFamily;
  prometheus::Family<prometheus::Counter>& sessionsFamily;

  // medius_media_sessions_active: sessions created and not yet deleted.
  prometheus::Gauge& sessionsActive;
  // medius_media_port_pool_free: free RTP/RTCP port pairs.
  prometheus::Gauge& portPoolFree;
  // medius_media_timeouts_total: sessions that crossed their media timeout.
  prometheus::Counter& timeouts;
  // medius_media_load / medius_media_load_limit: estimated load of all sessions and the
  // limit above which CreateSession is refused, in percent of one core (load.hpp).
  prometheus::Gauge& load;
  prometheus::Gauge& loadLimit;
  // medius_media_transcoding_sessions: sessions with at least one transcoded flow.
  prometheus::Gauge& transcodingSessions;

  // Call quality, observed once per session when it is deleted (histograms across
  // calls; never a label per call): the call's MOS, and per leg that received audio its
  // loss ratio, jitter and round-trip time (when RTCP gave one).
  prometheus::Histogram& sessionMos;
  prometheus::Histogram& legLossRatio;
  prometheus::Histogram& legJitterSeconds;
  prometheus::Histogram& legRttSeconds;
  // Received packets dropped, by reason "srtp_auth", "srtp_replay", "malformed",
  // "payload_type": added by the workers as they happen (every 50 ms tick), so that an
  // attack or a key mix-up shows while the calls last (TrafficCounters::dropped).
  prometheus::Family<prometheus::Counter>& droppedFamily;
  prometheus::Counter& droppedSrtpAuth;
  prometheus::Counter& droppedSrtpReplay;
  prometheus::Counter& droppedMalformed;
  prometheus::Counter& droppedPayloadType;

  // medius_media_sessions_orphaned_total{reason}: sessions the worker deleted itself
  // because nobody else would (SessionManager::reapOrphans): "owner_gone" (the owning
  // gateway's WatchEvents streams ended and none came back within orphan_grace_ms),
  // "timeout_unhandled" (still there orphan_grace_ms after its media timeout fired).
  prometheus::Family<prometheus::Counter>& orphanedFamily;
  prometheus::Counter& orphanedOwnerGone;
  prometheus::Counter& orphanedTimeoutUnhandled;

  // medius_media_ice_checks_total{result}: STUN Binding requests (and undecodable STUN) on
  // ICE-lite legs: "ok" (answered), "bad_integrity", "unknown_user", "malformed" (ignored;
  // an authenticated request without PRIORITY is answered 400), "role_conflict" (answered
  // 487). medius_media_ice_nominations_total: USE-CANDIDATE checks that set or moved a
  // leg's remote (relay.hpp).
  prometheus::Family<prometheus::Counter>& iceChecksFamily;
  prometheus::Counter& iceChecksOk;
  prometheus::Counter& iceChecksBadIntegrity;
  prometheus::Counter& iceChecksUnknownUser;
  prometheus::Counter& iceChecksMalformed;
  prometheus::Counter& iceChecksRoleConflict;
  prometheus::Counter& iceNominations;

  void observeSession(const medius::v1::SessionStats& stats);
  // medius_media_packets_total / medius_media_bytes_total {direction="a_to_b"|"b_to_a"}.
  TrafficCounters traffic;

  // medius_media_sessions_total{result}: CreateSession outcomes.
  struct Results {
    prometheus::Counter& ok;
    prometheus::Counter& invalidArgument;
    prometheus::Counter& alreadyExists;
    prometheus::Counter& resourceExhausted;
    prometheus::Counter& unavailable;
  } sessions;
};

}  // namespace medius::media
