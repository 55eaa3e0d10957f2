// The gateway's view of the media workers (media-transcoder): one session per call.
//
// MediaClient is the seam tests may fake; GrpcMediaClient is the real one. It knows every
// configured worker ("host:port"), and the workers found by name ("dns:host:port": every
// address `host` resolves to, re-resolved every discovery interval, so workers scaled out
// or in behind a headless Kubernetes Service or a compose service are picked up; the
// TLS certificate is checked against `host`, not the address). It creates each new
// session on one of them (the least
// loaded first, by the load/limit each worker reported in its last CreateSession answer,
// round robin among equals, workers whose last call failed with UNAVAILABLE or
// RESOURCE_EXHAUSTED last, until a session succeeds on them again or their WatchEvents
// stream (re)connects (a worker restarted after its drain); a worker that refuses is
// skipped and the next one tried, so one full or draining worker does not fail a call),
// and sends Update/Delete to the worker that holds the session (a draining worker serves
// them until its last session is deleted).
// A worker that leaves the name's addresses takes no new sessions; Update/Delete still
// reach it by its address for the sessions it holds, and its events stream stays open
// until it ends (it is not reopened). A failed resolution keeps the last addresses.
// medius_gateway_media_workers counts the workers new sessions may go to.
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
#include <optional>
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

// How "dns:host:port" workers are found.
struct MediaWorkerDiscovery {
  // Numeric addresses of `host` (IPv4 or IPv6, no port); nullopt when the name could not
  // be resolved (the last addresses are kept). Empty: getaddrinfo. Called on the
  // discovery thread (and once in the constructor).
  using Resolver = std::function<std::optional<std::vector<std::string>>(const std::string& host)>;
  std::chrono::milliseconds interval{5000};
  Resolver resolve;
};

// "dns:host:port" -> {"host", "port"}; nullopt for a static "host:port" entry. Throws
// std::invalid_argument for "dns:" without host or port.
std::optional<std::pair<std::string, std::string>> parseDnsWorker(const std::string& entry);

// getaddrinfo(host): its numeric addresses, each once, in the resolver's order.
std::optional<std::vector<std::string>> resolveHost(const std::string& host);

class GrpcMediaClient final : public MediaClient {
 public:
  // `workers` ("host:port" or "dns:host:port") must not be empty; `metrics` must outlive
  // this client. Channels connect lazily; names are resolved once here (a name that does
  // not resolve yet gives no worker until it does).
  GrpcMediaClient(std::vector<std::string> workers, std::chrono::milliseconds timeout,
                  GatewayMetrics& metrics, MediaWorkerDiscovery discovery = {});
  ~GrpcMediaClient() override;

  void createAsync(v1::CreateSessionRequest request, CreateDone done) override;
  void updateAsync(const std::string& worker, v1::UpdateSessionRequest request,
                   UpdateDone done) override;
  void deleteAsync(const std::string& worker, v1::DeleteSessionRequest request,
                   DeleteDone done) override;

  // Starts the WatchEvents streams (once).
  void watch(const std::string& gatewayId, EventHandler onEvent);
  // Waits until no unary call is in flight (the DeleteSessions of the last calls, at
  // shutdown, before the destructor would cancel them), at most `timeout`. True when none.
  bool waitForCalls(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace medius::gateway
