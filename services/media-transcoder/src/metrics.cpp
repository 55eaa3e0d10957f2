#include "medius/media/metrics.hpp"

namespace medius::media {

MediaMetrics::MediaMetrics(prometheus::Registry& registry)
    : packetsFamily(prometheus::BuildCounter()
                        .Name("medius_media_packets_total")
                        .Help("RTP and RTCP packets relayed, by direction (a_to_b, b_to_a)")
                        .Register(registry)),
      bytesFamily(prometheus::BuildCounter()
                      .Name("medius_media_bytes_total")
                      .Help("UDP payload bytes relayed, by direction (a_to_b, b_to_a)")
                      .Register(registry)),
      sessionsFamily(prometheus::BuildCounter()
                         .Name("medius_media_sessions_total")
                         .Help("CreateSession requests, by result")
                         .Register(registry)),
      sessionsActive(prometheus::BuildGauge()
                         .Name("medius_media_sessions_active")
                         .Help("Media sessions created and not yet deleted")
                         .Register(registry)
                         .Add({})),
      portPoolFree(prometheus::BuildGauge()
                       .Name("medius_media_port_pool_free")
                       .Help("Free RTP/RTCP port pairs in the configured range")
                       .Register(registry)
                       .Add({})),
      timeouts(prometheus::BuildCounter()
                   .Name("medius_media_timeouts_total")
                   .Help("Sessions that went media_timeout_ms without RTP on either leg")
                   .Register(registry)
                   .Add({})),
      load(prometheus::BuildGauge()
               .Name("medius_media_load")
               .Help("Estimated load of the sessions, in percent of one core")
               .Register(registry)
               .Add({})),
      loadLimit(prometheus::BuildGauge()
                    .Name("medius_media_load_limit")
                    .Help("Load above which new sessions are refused, in percent of one core")
                    .Register(registry)
                    .Add({})),
      transcodingSessions(prometheus::BuildGauge()
                              .Name("medius_media_transcoding_sessions")
                              .Help("Sessions with at least one transcoded direction")
                              .Register(registry)
                              .Add({})),
      sessionMos(prometheus::BuildHistogram()
                     .Name("medius_media_session_mos")
                     .Help("Estimated MOS (E-model) of each deleted session that carried audio")
                     .Register(registry)
                     .Add({}, prometheus::Histogram::BucketBoundaries{1.5, 2.0, 2.5, 3.0, 3.5, 3.8,
                                                                      4.0, 4.2, 4.4})),
      legLossRatio(prometheus::BuildHistogram()
                       .Name("medius_media_leg_loss_ratio")
                       .Help("Packet loss of what each leg received, per deleted session")
                       .Register(registry)
                       .Add({}, prometheus::Histogram::BucketBoundaries{0.0001, 0.001, 0.005, 0.01,
                                                                        0.02, 0.05, 0.1, 0.2})),
      legJitterSeconds(prometheus::BuildHistogram()
                           .Name("medius_media_leg_jitter_seconds")
                           .Help("Interarrival jitter of what each leg received, at the end")
                           .Register(registry)
                           .Add({}, prometheus::Histogram::BucketBoundaries{
                                        0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1})),
      legRttSeconds(prometheus::BuildHistogram()
                        .Name("medius_media_leg_rtt_seconds")
                        .Help("Round-trip time to each leg's peer from RTCP, at the end")
                        .Register(registry)
                        .Add({}, prometheus::Histogram::BucketBoundaries{
                                     0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0})),
      droppedFamily(prometheus::BuildCounter()
                        .Name("medius_media_dropped_packets_total")
                        .Help("Received packets dropped, never forwarded, by reason")
                        .Register(registry)),
      droppedSrtpAuth(droppedFamily.Add({{"reason", "srtp_auth"}})),
      droppedSrtpReplay(droppedFamily.Add({{"reason", "srtp_replay"}})),
      droppedMalformed(droppedFamily.Add({{"reason", "malformed"}})),
      droppedPayloadType(droppedFamily.Add({{"reason", "payload_type"}})),
      orphanedFamily(prometheus::BuildCounter()
                         .Name("medius_media_sessions_orphaned_total")
                         .Help("Sessions the worker deleted itself because nobody else would, by reason")
                         .Register(registry)),
      orphanedOwnerGone(orphanedFamily.Add({{"reason", "owner_gone"}})),
      orphanedTimeoutUnhandled(orphanedFamily.Add({{"reason", "timeout_unhandled"}})),
      iceChecksFamily(prometheus::BuildCounter()
                          .Name("medius_media_ice_checks_total")
                          .Help("STUN connectivity checks received on ICE legs, by result")
                          .Register(registry)),
      iceChecksOk(iceChecksFamily.Add({{"result", "ok"}})),
      iceChecksBadIntegrity(iceChecksFamily.Add({{"result", "bad_integrity"}})),
      iceChecksUnknownUser(iceChecksFamily.Add({{"result", "unknown_user"}})),
      iceChecksMalformed(iceChecksFamily.Add({{"result", "malformed"}})),
      iceChecksRoleConflict(iceChecksFamily.Add({{"result", "role_conflict"}})),
      iceNominations(prometheus::BuildCounter()
                         .Name("medius_media_ice_nominations_total")
                         .Help("ICE nominations (USE-CANDIDATE) that set or moved a leg's remote")
                         .Register(registry)
                         .Add({})),
      traffic{packetsFamily.Add({{"direction", "a_to_b"}}), packetsFamily.Add({{"direction", "b_to_a"}}),
              bytesFamily.Add({{"direction", "a_to_b"}}), bytesFamily.Add({{"direction", "b_to_a"}}),
              {&droppedSrtpAuth, &droppedSrtpReplay, &droppedMalformed, &droppedPayloadType},
              {&iceChecksOk, &iceChecksBadIntegrity, &iceChecksUnknownUser, &iceChecksMalformed,
               &iceChecksRoleConflict},
              &iceNominations},
      sessions{sessionsFamily.Add({{"result", "ok"}}),
               sessionsFamily.Add({{"result", "invalid_argument"}}),
               sessionsFamily.Add({{"result", "already_exists"}}),
               sessionsFamily.Add({{"result", "resource_exhausted"}}),
               sessionsFamily.Add({{"result", "unavailable"}})} {}

void MediaMetrics::observeSession(const medius::v1::SessionStats& stats) {
  if (stats.mos() > 0) sessionMos.Observe(stats.mos());
  for (const auto* leg : {&stats.leg_a(), &stats.leg_b()}) {
    if (leg->packets_in() == 0) continue;
    legLossRatio.Observe(leg->loss_percent() / 100.0);
    legJitterSeconds.Observe(leg->jitter_ms() / 1000.0);
    if (leg->rtt_ms() > 0) legRttSeconds.Observe(leg->rtt_ms() / 1000.0);
  }
}

}  // namespace medius::media
