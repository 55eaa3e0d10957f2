# The sources of medius_media_codec, also compiled by the fuzz build (fuzz/media_codec.cmake): one list.
set(MEDIUS_MEDIA_CODEC_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/codec.cpp
  ${CMAKE_CURRENT_LIST_DIR}/opus_codec.cpp
  ${CMAKE_CURRENT_LIST_DIR}/g729_codec.cpp
  ${CMAKE_CURRENT_LIST_DIR}/resampler.cpp
  ${CMAKE_CURRENT_LIST_DIR}/comfort_noise.cpp
  ${CMAKE_CURRENT_LIST_DIR}/silence_suppressor.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dtmf_tones.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dtmf_detector.cpp
  ${CMAKE_CURRENT_LIST_DIR}/transcoder.cpp)
