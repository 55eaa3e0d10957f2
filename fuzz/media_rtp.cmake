# Fuzz targets of medius_media_rtp (issue 6): RTP, RTCP and telephone-event parsing, and the
# receive statistics and jitter buffer fed a packet sequence, compiled from the sources.
include(${PROJECT_SOURCE_DIR}/services/media-transcoder/src/rtp/sources.cmake)
add_library(medius_fuzz_media_rtp STATIC ${MEDIUS_MEDIA_RTP_SOURCES})
target_include_directories(medius_fuzz_media_rtp PUBLIC ${PROJECT_SOURCE_DIR}/services/media-transcoder/include)
target_compile_options(medius_fuzz_media_rtp PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
medius_fuzzer(rtp_rtcp_fuzz media_rtp_rtcp_fuzz.cpp)
target_link_libraries(rtp_rtcp_fuzz PRIVATE medius_fuzz_media_rtp)
