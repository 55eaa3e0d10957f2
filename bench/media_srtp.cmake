# Benchmarks of medius_media_srtp (issue 6).
