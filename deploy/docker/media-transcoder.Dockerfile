# medius/media-transcoder:0.1.0: the media worker (gRPC control, RTP/SRTP relay and transcoding)
#
#   docker build -f deploy/docker/build.Dockerfile -t medius-build .     (once, shared)
#   docker build -f deploy/docker/media-transcoder.Dockerfile -t medius/media-transcoder:0.1.0 .
#
# Runs as uid 10001 with --config /etc/medius/media.json (the reference topology's file is the
# default; docker-compose and the Helm chart mount their own). The health check is
# grpc.health.v1 through medctl on the gRPC port; with mutual TLS (service.grpc_tls), set
# MEDIUS_GRPC_TLS_CA/_CERT/_KEY in the environment so medctl presents a certificate.
FROM medius-build AS build

FROM debian:bookworm
# Runtime libraries only: the packages of the binaries' NEEDED entries (ldd + dpkg -S).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libabsl20220623 libfmt9 libgrpc++1.51 libgrpc29 libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 libprotobuf32 libspdlog1.10 libstdc++6 libbcg729-0 libopus0 libspandsp2 libspeexdsp1 libsrtp2-1 libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 medius \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin medius
COPY --from=build /out/bin/media-transcoder /out/bin/medctl /usr/local/bin/
COPY examples/local/media.json /etc/medius/media.json

USER 10001:10001
EXPOSE 50053 9103 20000-29999/udp
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD ["medctl", "--timeout-ms", "2000", "health", "-q", "--target", "localhost:50053"]
ENTRYPOINT ["media-transcoder", "--config", "/etc/medius/media.json"]
