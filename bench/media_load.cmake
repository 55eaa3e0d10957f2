# Load tool of the media worker (issue 6): N concurrent calls through one media-transcoder
# process, CPU per call. Run by hand (figures in docs/performance.md) and by bench/bench.py
# (./medius bench), never asserted by ctest.
add_executable(media_load media_load.cpp ng_client.cpp)
target_link_libraries(media_load PRIVATE medius_media CLI11::CLI11)
# The tone check uses the codec tests' Goertzel helpers (header only).
target_include_directories(media_load PRIVATE ${PROJECT_SOURCE_DIR}/tests/media/codec)
medius_target_defaults(media_load)
