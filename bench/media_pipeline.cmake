# Benchmarks of the media data plane (issue 6): MediaPipeline per packet (relay with and
# without SRTP) and per transcoded PCMU<->Opus call frame (see media_pipeline_bench.cpp).
add_executable(media_pipeline_bench media_pipeline_bench.cpp)
target_link_libraries(media_pipeline_bench PRIVATE medius_media benchmark::benchmark)
medius_target_defaults(media_pipeline_bench)
