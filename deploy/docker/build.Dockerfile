# medius-build: the one C++ build every service image copies its binary from.
#
#   docker build -f deploy/docker/build.Dockerfile -t medius-build .
#
# Built once; deploy/docker/<service>.Dockerfile start with `FROM medius-build AS build` and
# take /out/bin/<binary> and /out/bin/medctl. The build packages are the ones `./medius deps`
# installs, minus the test tools.
FROM debian:bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto \
      libsofia-sip-ua-dev libsrtp2-dev libopus-dev libspandsp-dev libbcg729-dev libspeexdsp-dev \
      prometheus-cpp-dev nlohmann-json3-dev libhiredis-dev libre2-dev libssl-dev libpugixml-dev zlib1g-dev \
      libspdlog-dev libfmt-dev libcli11-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY CMakeLists.txt ./
COPY proto proto
COPY common common
COPY services services
COPY tools tools

# No tests, no benchmarks: the five binaries, stripped, in /out/bin.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DMEDIUS_BUILD_TESTS=OFF -DMEDIUS_SANITIZE=OFF \
 && cmake --build /build --target registrar routing media-transcoder signaling-gateway medctl \
 && install -d /out/bin \
 && install -m 0755 -s /build/bin/registrar /build/bin/routing /build/bin/media-transcoder \
      /build/bin/signaling-gateway /build/bin/medctl /out/bin/
