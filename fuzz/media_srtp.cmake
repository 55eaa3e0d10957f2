# Fuzz targets of medius_media_srtp (issue 6): srtp_fuzz feeds a=crypto values to the
# parser and packets to SrtpSession (unprotect, and protect then unprotect). The library's
# sources are compiled here with the fuzzer's sanitizers; libsrtp2 and OpenSSL are Debian's.
add_library(medius_fuzz_media_srtp STATIC
  ${PROJECT_SOURCE_DIR}/services/media-transcoder/src/srtp/suite.cpp
  ${PROJECT_SOURCE_DIR}/services/media-transcoder/src/srtp/keys.cpp
  ${PROJECT_SOURCE_DIR}/services/media-transcoder/src/srtp/crypto_attribute.cpp
  ${PROJECT_SOURCE_DIR}/services/media-transcoder/src/srtp/sdes.cpp
  ${PROJECT_SOURCE_DIR}/services/media-transcoder/src/srtp/openssl_crypto.cpp
  ${PROJECT_SOURCE_DIR}/services/media-transcoder/src/srtp/session.cpp)
target_include_directories(medius_fuzz_media_srtp PUBLIC ${PROJECT_SOURCE_DIR}/services/media-transcoder/include)
target_link_libraries(medius_fuzz_media_srtp PUBLIC PkgConfig::SRTP2 OpenSSL::Crypto)
target_compile_options(medius_fuzz_media_srtp PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
medius_fuzzer(srtp_fuzz media_srtp_fuzz.cpp)
target_link_libraries(srtp_fuzz PRIVATE medius_fuzz_media_srtp)
