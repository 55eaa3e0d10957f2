# Benchmarks of medius_media_srtp (issue 6): protect/unprotect per 172-octet RTP packet.
add_executable(media_srtp_bench media_srtp_bench.cpp)
target_link_libraries(media_srtp_bench PRIVATE medius_media_srtp benchmark::benchmark)
medius_target_defaults(media_srtp_bench)
