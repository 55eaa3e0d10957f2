# Fuzz targets of medius_media_srtp (issue 6): srtp_fuzz feeds a=crypto values to the
# parser and packets to SrtpSession (unprotect, and protect then unprotect). The library's
# sources are compiled here with the fuzzer's sanitizers; libsrtp2 and OpenSSL are Debian's.
include(${PROJECT_SOURCE_DIR}/services/media-transcoder/src/srtp/sources.cmake)
add_library(medius_fuzz_media_srtp STATIC ${MEDIUS_MEDIA_SRTP_SOURCES})
target_include_directories(medius_fuzz_media_srtp PUBLIC ${PROJECT_SOURCE_DIR}/services/media-transcoder/include)
target_link_libraries(medius_fuzz_media_srtp PUBLIC PkgConfig::SRTP2 OpenSSL::Crypto)
target_compile_options(medius_fuzz_media_srtp PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
medius_fuzzer(srtp_fuzz media_srtp_fuzz.cpp)
target_link_libraries(srtp_fuzz PRIVATE medius_fuzz_media_srtp)
