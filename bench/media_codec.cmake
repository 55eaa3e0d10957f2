# Benchmarks of medius_media_codec (issue 6): per-frame codec costs and transcoded calls per
# core (see media_codec_bench.cpp).
add_executable(media_codec_bench media_codec_bench.cpp)
target_link_libraries(media_codec_bench PRIVATE medius_media_codec benchmark::benchmark)
medius_target_defaults(media_codec_bench)
