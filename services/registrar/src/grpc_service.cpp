#include "medius/registrar/grpc_service.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "medius/common/logging.hpp"

namespace medius::registrar {

namespace {

// Challenge: the most challenge sets one call issues in advance (ChallengeRequest).
constexpr std::uint32_t kMaxRegisterSets = 256;

// Runs `body`, mapping the registrar's exceptions to gRPC statuses.
template <typename F>
grpc::Status guarded(const char* method, F&& body) {
  try {
    body();
    return grpc::Status::OK;
  } catch (const InvalidRequest& e) {
    return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
  } catch (const StoreUnavailable& e) {
    log::get("grpc")->warn("{}: {}", method, e.what());
    return {grpc::StatusCode::UNAVAILABLE, e.what()};
  } catch (const std::exception& e) {
    log::get("grpc")->error("{}: {}", method, e.what());
    return {grpc::StatusCode::INTERNAL, e.what()};
  }
}

struct WatchQueue {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<BindingEvent> events;
};

}  // namespace

RegistrarService::RegistrarService(Registrar& registrar, BindingStore& store)
    : registrar_(registrar), store_(store) {}

void RegistrarService::stopWatches() { stopping_ = true; }

grpc::Status RegistrarService::Register(grpc::ServerContext*,
                                        const medius::v1::RegisterRequest* request,
                                        medius::v1::RegisterResponse* response) {
  return guarded("Register", [&] { *response = registrar_.handleRegister(*request); });
}

grpc::Status RegistrarService::Lookup(grpc::ServerContext*, const medius::v1::LookupRequest* request,
                                      medius::v1::LookupResponse* response) {
  return guarded("Lookup", [&] {
    for (auto& b : registrar_.lookup(request->aor(), request->include_unreachable())) {
      *response->add_bindings() = std::move(b);
    }
  });
}

grpc::Status RegistrarService::ReportFlow(grpc::ServerContext*,
                                          const medius::v1::ReportFlowRequest* request,
                                          medius::v1::ReportFlowResponse* response) {
  return guarded("ReportFlow", [&] { response->set_updated(registrar_.reportFlow(*request)); });
}

grpc::Status RegistrarService::ListBindings(grpc::ServerContext*,
                                            const medius::v1::ListBindingsRequest* request,
                                            medius::v1::ListBindingsResponse* response) {
  return guarded("ListBindings", [&] {
    for (auto& b : registrar_.list(request->aor())) *response->add_bindings() = std::move(b);
  });
}

grpc::Status RegistrarService::RemoveBindings(grpc::ServerContext*,
                                              const medius::v1::RemoveBindingsRequest* request,
                                              medius::v1::RemoveBindingsResponse* response) {
  return guarded("RemoveBindings", [&] {
    response->set_removed(registrar_.removeBindings(request->aor(), request->contact_uri()));
  });
}

grpc::Status RegistrarService::Watch(grpc::ServerContext* context,
                                     const medius::v1::WatchRequest* request,
                                     grpc::ServerWriter<medius::v1::BindingEvent>* writer) {
  auto queue = std::make_shared<WatchQueue>();
  const std::string aor = request->aor();
  std::uint64_t id = 0;
  grpc::Status st = guarded("Watch", [&] {
    // Subscribe before the snapshot, so nothing falls between the two.
    id = store_.subscribe([queue, aor](const BindingEvent& ev) {
      if (!aor.empty() && ev.binding().aor() != aor) return;
      std::lock_guard lock(queue->mutex);
      queue->events.push_back(ev);
      queue->cv.notify_one();
    });
  });
  if (!st.ok()) return st;
  struct Unsubscribe {
    BindingStore& store;
    std::uint64_t id;
    ~Unsubscribe() { store.unsubscribe(id); }
  } unsubscribe{store_, id};

  Bindings snapshot;
  if (request->snapshot()) {
    st = guarded("Watch", [&] { snapshot = registrar_.list(aor); });
    if (!st.ok()) return st;
  }
  for (auto& b : snapshot) {
    medius::v1::BindingEvent ev;
    ev.set_kind(medius::v1::BindingEvent::KIND_ADDED);
    *ev.mutable_binding() = std::move(b);
    if (!writer->Write(ev)) return grpc::Status::OK;
  }
  medius::v1::BindingEvent end;
  end.set_kind(medius::v1::BindingEvent::KIND_SNAPSHOT_END);
  if (!writer->Write(end)) return grpc::Status::OK;

  while (!context->IsCancelled() && !stopping_) {
    std::deque<BindingEvent> batch;
    {
      std::unique_lock lock(queue->mutex);
      queue->cv.wait_for(lock, std::chrono::milliseconds(100),
                         [&] { return !queue->events.empty(); });
      batch.swap(queue->events);
    }
    for (const auto& ev : batch) {
      if (!writer->Write(ev)) return grpc::Status::OK;
    }
  }
  return grpc::Status::OK;
}

grpc::Status RegistrarService::Challenge(grpc::ServerContext*,
                                         const medius::v1::ChallengeRequest* request,
                                         medius::v1::ChallengeResponse* response) {
  return guarded("Challenge", [&] {
    if (!request->realm().empty() && request->realm() != registrar_.config().auth.realm) {
      throw InvalidRequest("unknown realm \"" + request->realm() + "\"");
    }
    if (request->register_sets() > kMaxRegisterSets) {
      throw InvalidRequest("register_sets " + std::to_string(request->register_sets()) +
                           " is more than " + std::to_string(kMaxRegisterSets));
    }
    for (auto& c : registrar_.challenges(request->stale())) *response->add_challenges() = std::move(c);
    const auto& auth = registrar_.config().auth;
    response->set_nonce_ttl_seconds(static_cast<std::uint32_t>(auth.nonceTtlSeconds));
    // A REGISTER without credentials is challenged exactly as handleRegister would: the
    // registrar's realm, every algorithm, stale=false.
    if (auth.required) {
      for (std::uint32_t i = 0; i < request->register_sets(); ++i) {
        auto* set = response->add_register_sets();
        for (auto& c : registrar_.challenges(false)) *set->add_challenges() = std::move(c);
      }
    }
  });
}

grpc::Status RegistrarService::VerifyDigest(grpc::ServerContext*,
                                            const medius::v1::VerifyDigestRequest* request,
                                            medius::v1::VerifyDigestResponse* response) {
  return guarded("VerifyDigest", [&] {
    if (!request->has_credentials()) throw InvalidRequest("credentials are missing");
    if (request->credentials().method().empty()) throw InvalidRequest("credentials.method is empty");
    *response = registrar_.verifyDigest(request->credentials());
  });
}

}  // namespace medius::registrar
