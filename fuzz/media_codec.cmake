# Fuzz targets of medius_media_codec (issue 6): every decoder, Opus FEC, RFC 3389 CN parsing,
# fmtp parsing and the transcoder fed untrusted payloads, compiled from the sources.
include(${PROJECT_SOURCE_DIR}/services/media-transcoder/src/codec/sources.cmake)
add_library(medius_fuzz_media_codec STATIC ${MEDIUS_MEDIA_CODEC_SOURCES})
target_include_directories(medius_fuzz_media_codec PUBLIC ${PROJECT_SOURCE_DIR}/services/media-transcoder/include)
target_link_libraries(medius_fuzz_media_codec PUBLIC
  PkgConfig::OPUS PkgConfig::SPANDSP PkgConfig::BCG729 PkgConfig::SPEEXDSP)
target_compile_options(medius_fuzz_media_codec PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
medius_fuzzer(codec_decode_fuzz media_codec_decode_fuzz.cpp)
target_link_libraries(codec_decode_fuzz PRIVATE medius_fuzz_media_codec)
