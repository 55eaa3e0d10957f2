# Fuzz targets of medius_media_rtp (issue 6).
