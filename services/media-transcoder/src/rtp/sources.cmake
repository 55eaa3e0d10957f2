# The sources of medius_media_rtp, also compiled by the fuzz build (fuzz/media_rtp.cmake): one list.
set(MEDIUS_MEDIA_RTP_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/packet.cpp
  ${CMAKE_CURRENT_LIST_DIR}/rtcp.cpp
  ${CMAKE_CURRENT_LIST_DIR}/stats.cpp
  ${CMAKE_CURRENT_LIST_DIR}/mos.cpp
  ${CMAKE_CURRENT_LIST_DIR}/jitter_buffer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dtmf.cpp)
