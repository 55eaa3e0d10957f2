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
      traffic{packetsFamily.Add({{"direction", "a_to_b"}}), packetsFamily.Add({{"direction", "b_to_a"}}),
              bytesFamily.Add({{"direction", "a_to_b"}}), bytesFamily.Add({{"direction", "b_to_a"}})},
      sessions{sessionsFamily.Add({{"result", "ok"}}),
               sessionsFamily.Add({{"result", "invalid_argument"}}),
               sessionsFamily.Add({{"result", "already_exists"}}),
               sessionsFamily.Add({{"result", "resource_exhausted"}}),
               sessionsFamily.Add({{"result", "unavailable"}})} {}

}  // namespace medius::media
