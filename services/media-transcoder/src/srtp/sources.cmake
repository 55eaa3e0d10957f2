# The sources of medius_media_srtp, also compiled by the fuzz build (fuzz/media_srtp.cmake): one list.
set(MEDIUS_MEDIA_SRTP_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/suite.cpp
  ${CMAKE_CURRENT_LIST_DIR}/keys.cpp
  ${CMAKE_CURRENT_LIST_DIR}/crypto_attribute.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sdes.cpp
  ${CMAKE_CURRENT_LIST_DIR}/openssl_crypto.cpp
  ${CMAKE_CURRENT_LIST_DIR}/session.cpp)
