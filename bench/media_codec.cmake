# Benchmarks of medius_media_codec (issue 6).
