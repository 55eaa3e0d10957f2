// The gateway's view of the media workers (media-transcoder): one session per call.
//
// MediaClient is the seam tests may fake; GrpcMediaClient is the real one. It knows every
// configured worker ("host:port"), creates each new session on one of them (the least
// loaded first, by the load/limit each worker reported in its last CreateSession answer,
// round robin among equals, workers whose last call failed with UNAVAILABLE or
// RESOURCE_EXHAUSTED last; a worker that refuses is skipped and the next one tried, so one
// full or draining worker does not fail a call), and sends Update/Delete to the worker
// that holds the session.
// Every call has a deadline (media.timeout_ms), a latency histogram
// medius_gateway_grpc_client_seconds{service="media",method} and the error counter.
//
// Events: watch() opens MediaTranscoder.WatchEvents(gateway_id) on every worker and keeps
// it open (reconnects with backoff 100 ms .. 5 s after a failure or a worker restart);
// each event is handed to `onEvent` with the worker's address.
//
// Thread: the *Async() calls may be made from any thread; `done` runs on a gRPC thread
// (never on the caller's stack), exactly once. `onEvent` runs on a gRPC thread. The
// caller posts results back to the SIP loop. The destructor cancels calls in flight and
// the watch streams and waits for their callbacks.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "medius/gateway/metrics.hpp"
#include "medius/v1/media.grpc.pb.h"

namespace medius::gateway {

class MediaClient {
 public:
  // `worker` is the address of the worker that created the session ("" on failure).
  using CreateDone =
      std::function<void(const grpc::Status&, v1::CreateSessionResponse, std::string worker)>;
  using UpdateDone = std::function<void(const grpc::Status&, v1::UpdateSessionResponse)>;
  using DeleteDone = std::function<void(const grpc::Status&, v1::SessionStats)>;
  using EventHandler = std::function<void(const std::string& worker, const v1::MediaEvent&)>;
  virtual ~MediaClient() = default;
  virtual void createAsync(v1::CreateSessionRequest request, CreateDone done) = 0;
  virtual void updateAsync(const std::string& worker, v1::UpdateSessionRequest request,
                           UpdateDone done) = 0;
  virtual void deleteAsync(const std::string& worker, v1::DeleteSessionRequest request,
                           DeleteDone done) = 0;
};

class GrpcMediaClient final : public MediaClient {
 public:
  // `workers` must not be empty; `metrics` must outlive this client. Channels connect
  // lazily.
  GrpcMediaClient(std::vector<std::string> workers, std::chrono::milliseconds timeout,
                  GatewayMetrics& metrics);
  ~GrpcMediaClient() override;

  void createAsync(v1::CreateSessionRequest request, CreateDone done) override;
  void updateAsync(const std::string& worker, v1::UpdateSessionRequest request,
                   UpdateDone done) override;
  void deleteAsync(const std::string& worker, v1::DeleteSessionRequest request,
                   DeleteDone done) override;

  // Starts the WatchEvents streams (once).
  void watch(const std::string& gatewayId, EventHandler onEvent);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace medius::gateway
