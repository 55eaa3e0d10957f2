# medius/certs:0.1.0: runs gen-grpc-certs.sh (openssl) once; docker-compose's `certs`
# service writes the cluster's gRPC CA and certificates into a shared volume with it.
#
#   docker build -f deploy/docker/certs.Dockerfile -t medius/certs:0.1.0 .
#   docker run --rm -v "$PWD/tls:/tls" medius/certs:0.1.0 /tls NAME=SAN,SAN ...
#
# It runs as root only to hand the files to the services' user (--owner 10001:10001).
FROM debian:bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssl \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/docker/gen-grpc-certs.sh /usr/local/bin/gen-grpc-certs.sh

ENTRYPOINT ["gen-grpc-certs.sh", "--owner", "10001:10001"]
CMD ["/tls"]
