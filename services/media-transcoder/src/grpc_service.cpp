#include "medius/media/grpc_service.hpp"

#include <chrono>

#include "medius/common/logging.hpp"

namespace medius::media {

namespace {

grpc::StatusCode toGrpc(MediaError::Code code) {
  switch (code) {
    case MediaError::Code::InvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case MediaError::Code::NotFound: return grpc::StatusCode::NOT_FOUND;
    case MediaError::Code::AlreadyExists: return grpc::StatusCode::ALREADY_EXISTS;
    case MediaError::Code::ResourceExhausted: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case MediaError::Code::Unavailable: return grpc::StatusCode::UNAVAILABLE;
    case MediaError::Code::FailedPrecondition: return grpc::StatusCode::FAILED_PRECONDITION;
  }
  return grpc::StatusCode::INTERNAL;
}

template <typename Fn>
grpc::Status guarded(const char* method, Fn&& fn) {
  try {
    fn();
    return grpc::Status::OK;
  } catch (const MediaError& e) {
    log::get("grpc")->debug("{}: {}", method, e.what());
    return grpc::Status(toGrpc(e.code()), e.what());
  } catch (const std::exception& e) {
    log::get("grpc")->error("{}: {}", method, e.what());
    return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
  }
}

}  // namespace

MediaService::MediaService(SessionManager& manager) : manager_(manager) {}

void MediaService::setOnDrain(std::function<void()> onDrain) {
  std::lock_guard lock(hookMutex_);
  onDrain_ = std::move(onDrain);
}

void MediaService::stopWatches() { stopping_ = true; }

grpc::Status MediaService::CreateSession(grpc::ServerContext*,
                                         const medius::v1::CreateSessionRequest* request,
                                         medius::v1::CreateSessionResponse* response) {
  return guarded("CreateSession", [&] { *response = manager_.create(*request); });
}

grpc::Status MediaService::UpdateSession(grpc::ServerContext*,
                                         const medius::v1::UpdateSessionRequest* request,
                                         medius::v1::UpdateSessionResponse* response) {
  return guarded("UpdateSession", [&] { *response = manager_.update(*request); });
}

grpc::Status MediaService::DeleteSession(grpc::ServerContext*,
                                         const medius::v1::DeleteSessionRequest* request,
                                         medius::v1::SessionStats* response) {
  return guarded("DeleteSession", [&] { *response = manager_.remove(request->session_id()); });
}

grpc::Status MediaService::GetSessionStats(grpc::ServerContext*,
                                           const medius::v1::GetSessionStatsRequest* request,
                                           medius::v1::SessionStats* response) {
  return guarded("GetSessionStats", [&] { *response = manager_.stats(request->session_id()); });
}

grpc::Status MediaService::ListSessions(grpc::ServerContext*, const medius::v1::ListSessionsRequest*,
                                        medius::v1::ListSessionsResponse* response) {
  return guarded("ListSessions", [&] { *response = manager_.list(); });
}

grpc::Status MediaService::Drain(grpc::ServerContext*, const medius::v1::DrainRequest*,
                                 medius::v1::DrainResponse* response) {
  return guarded("Drain", [&] {
    bool first = !manager_.draining();
    response->set_sessions_remaining(manager_.drain());
    std::function<void()> hook;
    {
      std::lock_guard lock(hookMutex_);
      hook = onDrain_;
    }
    if (first && hook) hook();
    log::get("media")->info("drain: {} sessions remaining", response->sessions_remaining());
  });
}

grpc::Status MediaService::WatchEvents(grpc::ServerContext* context,
                                       const medius::v1::WatchEventsRequest* request,
                                       grpc::ServerWriter<medius::v1::MediaEvent>* writer) {
  auto queue = std::make_shared<EventHub::Queue>();
  queue->gatewayId = request->gateway_id();
  std::uint64_t id = manager_.events().subscribe(queue);
  struct Unsubscribe {
    EventHub& hub;
    std::uint64_t id;
    ~Unsubscribe() { hub.unsubscribe(id); }
  } unsubscribe{manager_.events(), id};
  // The initial metadata tells the client it is subscribed before any event exists.
  writer->SendInitialMetadata();
  while (!context->IsCancelled() && !stopping_) {
    std::deque<medius::v1::MediaEvent> batch;
    {
      std::unique_lock lock(queue->mutex);
      queue->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return !queue->events.empty(); });
      batch.swap(queue->events);
    }
    for (const auto& event : batch) {
      if (!writer->Write(event)) return grpc::Status::OK;
    }
  }
  return grpc::Status::OK;
}

}  // namespace medius::media
