// The medius.v1.MediaTranscoder gRPC service (synchronous API) over a SessionManager.
//
// Errors: MediaError codes map one to one (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
// RESOURCE_EXHAUSTED, UNAVAILABLE). WatchEvents streams the events of the sessions of
// one gateway (all when gateway_id is empty) until the client cancels or stopWatches().
// Drain sets the manager draining and calls the drain hook (main: health NOT_SERVING).
//
// Ownership: borrows the manager. Thread: gRPC's threads; thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>

#include "medius/media/session_manager.hpp"
#include "medius/v1/media.grpc.pb.h"

namespace medius::media {

class MediaService final : public medius::v1::MediaTranscoder::Service {
 public:
  explicit MediaService(SessionManager& manager);

  // Called once by Drain (after the manager refuses new sessions).
  void setOnDrain(std::function<void()> onDrain);
  // Ends every WatchEvents stream (at shutdown, before the server stops).
  void stopWatches();

  grpc::Status CreateSession(grpc::ServerContext* context,
                             const medius::v1::CreateSessionRequest* request,
                             medius::v1::CreateSessionResponse* response) override;
  grpc::Status UpdateSession(grpc::ServerContext* context,
                             const medius::v1::UpdateSessionRequest* request,
                             medius::v1::UpdateSessionResponse* response) override;
  grpc::Status DeleteSession(grpc::ServerContext* context,
                             const medius::v1::DeleteSessionRequest* request,
                             medius::v1::SessionStats* response) override;
  grpc::Status GetSessionStats(grpc::ServerContext* context,
                               const medius::v1::GetSessionStatsRequest* request,
                               medius::v1::SessionStats* response) override;
  grpc::Status ListSessions(grpc::ServerContext* context,
                            const medius::v1::ListSessionsRequest* request,
                            medius::v1::ListSessionsResponse* response) override;
  grpc::Status Drain(grpc::ServerContext* context, const medius::v1::DrainRequest* request,
                     medius::v1::DrainResponse* response) override;
  grpc::Status WatchEvents(grpc::ServerContext* context,
                           const medius::v1::WatchEventsRequest* request,
                           grpc::ServerWriter<medius::v1::MediaEvent>* writer) override;

 private:
  SessionManager& manager_;
  std::mutex hookMutex_;
  std::function<void()> onDrain_;
  std::atomic<bool> stopping_{false};
};

}  // namespace medius::media
