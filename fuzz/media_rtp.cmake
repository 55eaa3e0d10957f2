# Fuzz targets of medius_media_rtp (issue 6): RTP, RTCP and telephone-event parsing, and the
# receive statistics and jitter buffer fed a packet sequence, compiled from the sources.
set(MEDIUS_RTP_SRC ${PROJECT_SOURCE_DIR}/services/media-transcoder/src/rtp)
add_library(medius_fuzz_media_rtp STATIC
  ${MEDIUS_RTP_SRC}/packet.cpp
  ${MEDIUS_RTP_SRC}/rtcp.cpp
  ${MEDIUS_RTP_SRC}/stats.cpp
  ${MEDIUS_RTP_SRC}/mos.cpp
  ${MEDIUS_RTP_SRC}/jitter_buffer.cpp
  ${MEDIUS_RTP_SRC}/dtmf.cpp)
target_include_directories(medius_fuzz_media_rtp PUBLIC ${PROJECT_SOURCE_DIR}/services/media-transcoder/include)
target_compile_options(medius_fuzz_media_rtp PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
medius_fuzzer(rtp_rtcp_fuzz media_rtp_rtcp_fuzz.cpp)
target_link_libraries(rtp_rtcp_fuzz PRIVATE medius_fuzz_media_rtp)
