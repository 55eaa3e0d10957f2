# Benchmarks of medius_media_rtp (issue 6): per-packet costs of the RTP path.
add_executable(media_rtp_bench media_rtp_bench.cpp)
target_link_libraries(media_rtp_bench PRIVATE medius_media_rtp benchmark::benchmark)
medius_target_defaults(media_rtp_bench)
