# medius/signaling-gateway:0.1.0: the SIP B2BUA (internal and trunk sides; gRPC admin)
#
#   docker build -f deploy/docker/build.Dockerfile -t medius-build .     (once, shared)
#   docker build -f deploy/docker/signaling-gateway.Dockerfile -t medius/signaling-gateway:0.1.0 .
#
# Runs as uid 10001 with --config /etc/medius/gateway.json (the reference topology's file is the
# default; docker-compose and the Helm chart mount their own). That default also listens for
# SIP over TLS on 5061 and needs its certificate files: mount them and set
# MEDIUS_INTERNAL_TLS_CERT/_KEY/_CA (deploy/certs/make-certs.sh makes throwaway ones), or
# mount a config without internal.tls. The health check is
# grpc.health.v1 through medctl on the gRPC port; with mutual TLS (service.grpc_tls), set
# MEDIUS_GRPC_TLS_CA/_CERT/_KEY in the environment so medctl presents a certificate.
FROM medius-build AS build

FROM debian:bookworm
# Runtime libraries only: the packages of the binaries' NEEDED entries (ldd + dpkg -S).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libabsl20220623 libfmt9 libgrpc++1.51 libgrpc29 libprometheus-cpp-core1.0 \
      libprometheus-cpp-pull1.0 libprotobuf32 libspdlog1.10 libstdc++6 libsofia-sip-ua0 libssl3 libpugixml1v5 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 medius \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin medius
COPY --from=build /out/bin/signaling-gateway /out/bin/medctl /usr/local/bin/
COPY examples/local/gateway.json /etc/medius/gateway.json

USER 10001:10001
EXPOSE 50054 9104 5060/udp 5060/tcp 5061/tcp 5062/udp 5062/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD ["medctl", "--timeout-ms", "2000", "health", "-q", "--target", "localhost:50054"]
ENTRYPOINT ["signaling-gateway", "--config", "/etc/medius/gateway.json"]
