# medius/certs:0.1.0: the lab's certificate scripts (openssl). docker-compose runs it twice,
# as one-shot services: `certs` runs gen-grpc-certs.sh (the entrypoint: the cluster's gRPC
# CA and certificates into the `grpc-tls` volume), `sip-certs` runs make-certs.sh (a
# throwaway SIP CA and the gateways' SIP over TLS certificate into the `sip-tls` volume).
#
#   docker build -f deploy/docker/certs.Dockerfile -t medius/certs:0.1.0 .
#   docker run --rm -v "$PWD/tls:/tls" medius/certs:0.1.0 /tls NAME=SAN,SAN ...
#   docker run --rm -v "$PWD/sip:/sip" --entrypoint make-certs.sh medius/certs:0.1.0 /sip --san IP:192.0.2.5
#
# It runs as root only to hand the files to the services' user (--owner 10001:10001).
FROM debian:bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssl \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/docker/gen-grpc-certs.sh /usr/local/bin/gen-grpc-certs.sh
COPY deploy/certs/make-certs.sh /usr/local/bin/make-certs.sh

ENTRYPOINT ["gen-grpc-certs.sh", "--owner", "10001:10001"]
CMD ["/tls"]
