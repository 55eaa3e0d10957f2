#include "medius/gateway/media_client.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include "medius/common/config.hpp"
#include "medius/common/grpc_tls.hpp"
#include "medius/common/logging.hpp"

namespace medius::gateway {

namespace {

constexpr std::chrono::milliseconds kMinBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

// A worker that says it cannot take the session: try the next one.
bool refused(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

// `tlsName`: the name the worker's certificate must carry when it differs from the
// address (a worker found by name is called at its numeric address).
std::shared_ptr<grpc::Channel> channelTo(const std::string& address,
                                         const std::string& tlsName = {}) {
  grpc::ChannelArguments args;
  if (!tlsName.empty()) args.SetSslTargetNameOverride(tlsName);
  // The channel's own reconnect backoff (default 1 s .. 120 s) would hide a restarted
  // worker from the watch stream's 100 ms .. 5 s backoff: align the two. (Not
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: that is also the connect timeout.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, static_cast<int>(kMinBackoff.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(kMaxBackoff.count()));
  // Plaintext is allowed to loopback only: for a name, the address decides.
  return grpc::CreateCustomChannel(address, clientCredentials(address), args);
}

std::string joinHostPort(const std::string& host, const std::string& port) {
  return host.find(':') != std::string::npos ? "[" + host + "]:" + port : host + ":" + port;
}

}  // namespace

std::optional<std::pair<std::string, std::string>> parseDnsWorker(const std::string& entry) {
  constexpr std::string_view kPrefix = "dns:";
  if (entry.compare(0, kPrefix.size(), kPrefix) != 0) return std::nullopt;
  auto hostPort = config::parseHostPort(std::string_view(entry).substr(kPrefix.size()));
  if (hostPort.host.empty()) throw std::invalid_argument("no host name after \"dns:\"");
  return std::make_pair(hostPort.host, std::to_string(hostPort.port));
}

std::optional<std::vector<std::string>> resolveHost(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &result); rc != 0) {
    // A name with no addresses now (e.g. every pod of a headless Service gone) is an
    // answer, not a failure.
    if (rc == EAI_NONAME || rc == EAI_NODATA) return std::vector<std::string>{};
    log::get("grpc")->warn("media workers: resolving {} failed: {}", host, ::gai_strerror(rc));
    return std::nullopt;
  }
  std::vector<std::string> addresses;
  for (auto* ai = result; ai != nullptr; ai = ai->ai_next) {
    char text[NI_MAXHOST];
    if (::getnameinfo(ai->ai_addr, ai->ai_addrlen, text, sizeof text, nullptr, 0,
                      NI_NUMERICHOST) != 0) {
      continue;
    }
    if (std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
      addresses.emplace_back(text);
    }
  }
  ::freeaddrinfo(result);
  return addresses;
}

struct GrpcMediaClient::Impl {
  struct Worker {
    std::string address;
    std::unique_ptr<v1::MediaTranscoder::Stub> stub;
    // New sessions may go to it (configured, or among its name's addresses now). Guarded
    // by Impl::mutex.
    bool candidate = false;
    // A WatchEvents stream is open or a reconnect is scheduled. Guarded by Impl::mutex.
    bool streaming = false;
    // The last CreateSession on it was refused (UNAVAILABLE / RESOURCE_EXHAUSTED): new
    // sessions try the other workers first.
    std::atomic<bool> refusing{false};
    // Its load over its limit as its last CreateSession answer said (0 = idle or unknown).
    std::atomic<double> loadRatio{0.0};
    // Watch stream reconnect backoff (guarded by Impl::mutex).
    std::chrono::milliseconds backoff{kMinBackoff};
  };

  // One CreateSession across the workers (attempts one after the other).
  struct CreateOp {
    v1::CreateSessionRequest request;
    CreateDone done;
    std::vector<Worker*> order;
    std::size_t next = 0;  // index in `order` of the next attempt
  };

  // One unary RPC in flight.
  struct Call {
    grpc::ClientContext context;
    const char* method = "";
    prometheus::Histogram* seconds = nullptr;
    std::chrono::steady_clock::time_point started;
    Worker* worker = nullptr;
    std::unique_ptr<CreateOp> create;
    v1::CreateSessionResponse createResponse;
    v1::UpdateSessionRequest updateRequest;
    v1::UpdateSessionResponse updateResponse;
    UpdateDone updateDone;
    v1::DeleteSessionRequest deleteRequest;
    v1::SessionStats deleteResponse;
    DeleteDone deleteDone;
  };

  // One WatchEvents stream to one worker; a new one per (re)connection. Deletes itself
  // (through Impl::streamDone) in OnDone.
  class Stream final : public grpc::ClientReadReactor<v1::MediaEvent> {
   public:
    Stream(Impl& impl, Worker& worker) : impl_(impl), worker_(worker) {
      request_.set_gateway_id(impl.gatewayId);
    }
    void start() {
      worker_.stub->async()->WatchEvents(&context_, &request_, this);
      StartRead(&event_);
      StartCall();
    }
    void cancel() { context_.TryCancel(); }
    Worker& worker() { return worker_; }
    bool connected() const { return connected_.load(); }

    void OnReadInitialMetadataDone(bool ok) override {
      if (!ok) return;
      connected_ = true;
      // A worker that refused (drained, full) and whose stream (re)connects is a new
      // process (restarted after its drain) or one that came back: worth trying first
      // again. Without this a restarted worker would get no session until the others
      // refuse.
      worker_.refusing = false;
    }
    void OnReadDone(bool ok) override {
      if (!ok) return;  // OnDone follows
      connected_ = true;
      impl_.deliver(worker_, event_);
      event_.Clear();
      StartRead(&event_);
    }
    void OnDone(const grpc::Status& status) override { impl_.streamDone(this, status); }

   private:
    Impl& impl_;
    Worker& worker_;
    grpc::ClientContext context_;
    v1::WatchEventsRequest request_;
    v1::MediaEvent event_;
    std::atomic<bool> connected_{false};
  };

  // A configured "dns:host:port" entry and the addresses it resolved to last.
  struct Name {
    std::string host;
    std::string port;
    std::set<std::string> addresses;  // "ip:port", guarded by mutex
  };

  Impl(std::vector<std::string> entries, std::chrono::milliseconds callTimeout,
       GatewayMetrics& gatewayMetrics, MediaWorkerDiscovery workerDiscovery)
      : timeout(callTimeout),
        metrics(gatewayMetrics),
        discovery(std::move(workerDiscovery)),
        createSeconds(gatewayMetrics.grpcClientSeconds("media", "CreateSession")),
        updateSeconds(gatewayMetrics.grpcClientSeconds("media", "UpdateSession")),
        deleteSeconds(gatewayMetrics.grpcClientSeconds("media", "DeleteSession")) {
    if (entries.empty()) throw std::invalid_argument("GrpcMediaClient: no media workers");
    if (!discovery.resolve) discovery.resolve = resolveHost;
    std::lock_guard lock(mutex);
    for (auto& entry : entries) {
      if (auto name = parseDnsWorker(entry)) {
        names.push_back(Name{name->first, name->second, {}});
      } else {
        Worker& w = workerLocked(entry, {});
        if (!w.stub) {
          throw std::invalid_argument("media worker " + entry +
                                      ": plaintext gRPC only to loopback addresses");
        }
        staticEntries.push_back(entry);
        if (!w.candidate) {
          w.candidate = true;
          candidates.push_back(&w);
        }
      }
    }
    for (auto& name : names) {
      if (auto addresses = discovery.resolve(name.host)) applyLocked(name, *addresses);
    }
    metrics.mediaWorkers().Set(static_cast<double>(candidates.size()));
  }

  // The worker at `address` (created with a channel on first use). Caller holds mutex.
  Worker& workerLocked(const std::string& address, const std::string& tlsName) {
    auto& w = known[address];
    if (!w) {
      w = std::make_unique<Worker>();
      w->address = address;
      try {
        w->stub = v1::MediaTranscoder::NewStub(channelTo(address, tlsName));
      } catch (const std::invalid_argument& e) {
        // Plaintext to an address that is not loopback: no stub, every call to it fails.
        log::get("grpc")->warn("media worker {}: {}", address, e.what());
      }
    }
    return *w;
  }

  // The worker at `address`; an unknown one (e.g. removed from the config, or gone from
  // its name's addresses, while it still holds sessions) gets a channel on demand. Only
  // candidates take new sessions.
  Worker& workerAt(const std::string& address) {
    std::lock_guard lock(mutex);
    return workerLocked(address, {});
  }

  // `name` resolved to `resolved` (numeric hosts): workers that joined become candidates
  // (and get their events stream), those that left stop taking new sessions. Caller
  // holds mutex. Returns the workers whose stream must be opened (after unlocking).
  std::vector<Worker*> applyLocked(Name& name, const std::vector<std::string>& resolved) {
    std::set<std::string> now;
    for (const auto& host : resolved) now.insert(joinHostPort(host, name.port));
    std::vector<Worker*> open;
    for (const auto& address : now) {
      if (name.addresses.count(address)) continue;
      Worker& w = workerLocked(address, name.host);
      log::get("grpc")->info("media worker {} joined ({} resolves to it)", address, name.host);
      if (!w.candidate && w.stub) {
        w.candidate = true;
        candidates.push_back(&w);
        if (watching && !w.streaming) {
          w.streaming = true;
          open.push_back(&w);
        }
      }
    }
    for (const auto& address : name.addresses) {
      if (now.count(address)) continue;
      log::get("grpc")->info("media worker {} left ({} no longer resolves to it): no new "
                             "sessions on it", address, name.host);
      auto it = known.find(address);
      if (it == known.end() || !it->second->candidate) continue;
      // Still a candidate through a static entry or another name?
      bool kept = std::find(staticEntries.begin(), staticEntries.end(), address) !=
                  staticEntries.end();
      for (const auto& other : names) {
        if (&other != &name && other.addresses.count(address)) kept = true;
      }
      if (kept) continue;
      it->second->candidate = false;
      candidates.erase(std::remove(candidates.begin(), candidates.end(), it->second.get()),
                       candidates.end());
    }
    name.addresses = std::move(now);
    return open;
  }

  // The discovery thread: re-resolves every name each interval.
  void discoveryLoop() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      discoveryCv.wait_for(lock, discovery.interval, [this] { return stopping; });
      if (stopping) break;
      for (auto& name : names) {
        lock.unlock();
        auto resolved = discovery.resolve(name.host);  // may block: not under the lock
        lock.lock();
        if (stopping) break;
        if (!resolved) continue;
        auto open = applyLocked(name, *resolved);
        metrics.mediaWorkers().Set(static_cast<double>(candidates.size()));
        lock.unlock();
        for (auto* w : open) openStream(*w);
        lock.lock();
      }
    }
  }

  // Registers a new call; false (and nothing registered) while stopping.
  bool begin(Call* call) {
    call->started = std::chrono::steady_clock::now();
    call->context.set_deadline(std::chrono::system_clock::now() + timeout);
    std::lock_guard lock(mutex);
    if (stopping) return false;
    inFlight.insert(call);
    return true;
  }

  // Starts the next attempt of `op`, or finishes it with `last` when none is left.
  // Runs on the caller's thread for the first attempt, on a gRPC thread afterwards.
  void attempt(std::unique_ptr<CreateOp> op, const grpc::Status& last) {
    if (op->next >= op->order.size()) {
      complete([&] { op->done(last, {}, ""); }, "CreateSession");
      return;
    }
    auto* call = new Call;
    call->method = "CreateSession";
    call->seconds = &createSeconds;
    call->worker = op->order[op->next++];
    call->create = std::move(op);
    if (!begin(call)) {
      std::unique_ptr<CreateOp> stopped = std::move(call->create);
      delete call;
      complete([&] {
        stopped->done(grpc::Status(grpc::StatusCode::CANCELLED, "media client stopping"), {}, "");
      }, "CreateSession");
      return;
    }
    call->worker->stub->async()->CreateSession(
        &call->context, &call->create->request, &call->createResponse,
        [this, call](grpc::Status status) { finished(call, status); });
  }

  template <typename F>
  static void complete(F&& f, const char* method) {
    try {
      f();
    } catch (const std::exception& e) {
      log::get("grpc")->error("media {} completion threw: {}", method, e.what());
    }
  }

  void finished(Call* call, const grpc::Status& status) {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - call->started).count();
    call->seconds->Observe(seconds);
    if (!status.ok()) {
      metrics.countGrpcError("media", call->method, status.error_code());
      log::get("grpc")->debug("media {} on {} failed: {} {}", call->method,
                              call->worker->address, grpcCodeName(status.error_code()),
                              status.error_message());
    }
    if (call->create) {
      if (status.ok()) {
        call->worker->refusing = false;
        const auto& r = call->createResponse;
        call->worker->loadRatio = r.load_limit() > 0 ? r.load() / r.load_limit() : 0.0;
        std::string address = call->worker->address;
        complete([&] { call->create->done(status, std::move(call->createResponse), address); },
                 call->method);
      } else if (refused(status)) {
        call->worker->refusing = true;
        // The next attempt registers itself before this call leaves the in-flight set, so
        // the destructor cannot miss it.
        attempt(std::move(call->create), status);
      } else {
        complete([&] { call->create->done(status, {}, ""); }, call->method);
      }
    } else if (call->updateDone) {
      complete([&] { call->updateDone(status, std::move(call->updateResponse)); }, call->method);
    } else if (call->deleteDone) {
      complete([&] { call->deleteDone(status, std::move(call->deleteResponse)); }, call->method);
    }
    // Erase last: the destructor waits for this, so `this` stays valid until here.
    std::lock_guard lock(mutex);
    inFlight.erase(call);
    delete call;
    if (inFlight.empty()) callsDone.notify_all();
    if (inFlight.empty() && streams.empty()) idle.notify_all();
  }

  void deliver(Worker& worker, const v1::MediaEvent& event) {
    complete([&] { onEvent(worker.address, event); }, "WatchEvents");
  }

  // Opens a stream to `worker` unless stopping.
  void openStream(Worker& worker) {
    auto* stream = new Stream(*this, worker);
    {
      std::lock_guard lock(mutex);
      if (stopping) {
        delete stream;
        return;
      }
      worker.streaming = true;
      streams.insert(stream);
    }
    stream->start();
  }

  void streamDone(Stream* stream, const grpc::Status& status) {
    Worker& worker = stream->worker();
    bool wasConnected = stream->connected();
    std::lock_guard lock(mutex);
    streams.erase(stream);
    delete stream;
    if (stopping) {
      if (inFlight.empty() && streams.empty()) idle.notify_all();
      return;
    }
    if (!worker.candidate) {
      // Gone from its name's addresses: its sessions' events end with the stream.
      worker.streaming = false;
      log::get("grpc")->info("media WatchEvents on {} ended; the worker left, not reopened",
                             worker.address);
      return;
    }
    if (wasConnected) worker.backoff = kMinBackoff;
    auto delay = worker.backoff;
    worker.backoff = std::min(worker.backoff * 2, kMaxBackoff);
    // Once per loss of a working stream; the retries of a worker that stays away at debug.
    log::get("grpc")->log(wasConnected ? spdlog::level::warn : spdlog::level::debug,
                          "media WatchEvents on {} ended ({} {}): reconnect in {} ms",
                          worker.address, grpcCodeName(status.error_code()),
                          status.error_message(), delay.count());
    reconnects.emplace(std::chrono::steady_clock::now() + delay, &worker);
    timerCv.notify_all();
  }

  // The reconnect timer thread: opens the streams whose backoff has passed.
  void timerLoop() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      if (reconnects.empty()) {
        timerCv.wait(lock);
        continue;
      }
      auto first = reconnects.begin();
      // A copy: the entry may go while the lock is released in the wait.
      const auto due = first->first;
      if (due > std::chrono::steady_clock::now()) {
        timerCv.wait_until(lock, due);
        continue;
      }
      Worker* worker = first->second;
      reconnects.erase(first);
      lock.unlock();
      openStream(*worker);
      lock.lock();
    }
  }

  std::chrono::milliseconds timeout;
  GatewayMetrics& metrics;
  MediaWorkerDiscovery discovery;
  prometheus::Histogram& createSeconds;
  prometheus::Histogram& updateSeconds;
  prometheus::Histogram& deleteSeconds;
  std::atomic<std::size_t> nextWorker{0};

  // Set once by watch() before any stream starts.
  std::string gatewayId;
  EventHandler onEvent;
  bool watching = false;  // guarded by mutex
  std::thread timer;
  std::thread discoverer;  // when there are names

  std::mutex mutex;
  std::condition_variable idle;
  std::condition_variable callsDone;  // inFlight became empty
  std::condition_variable timerCv;
  std::condition_variable discoveryCv;
  bool stopping = false;                                              // guarded by mutex
  // Every worker ever known by address (configured, resolved, or named by a session);
  // never removed before the destructor, so Worker pointers stay valid.
  std::map<std::string, std::unique_ptr<Worker>> known;               // guarded by mutex
  std::vector<Worker*> candidates;  // new sessions go to these; guarded by mutex
  std::vector<std::string> staticEntries;                             // fixed
  std::vector<Name> names;                                            // guarded by mutex
  std::set<Call*> inFlight;                                           // guarded by mutex
  std::set<Stream*> streams;                                          // guarded by mutex
  std::multimap<std::chrono::steady_clock::time_point, Worker*> reconnects;  // guarded
};

GrpcMediaClient::GrpcMediaClient(std::vector<std::string> workers,
                                 std::chrono::milliseconds timeout, GatewayMetrics& metrics,
                                 MediaWorkerDiscovery discovery)
    : impl_(std::make_unique<Impl>(std::move(workers), timeout, metrics, std::move(discovery))) {
  if (!impl_->names.empty()) {
    impl_->discoverer = std::thread([impl = impl_.get()] { impl->discoveryLoop(); });
  }
}

GrpcMediaClient::~GrpcMediaClient() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    for (auto* call : impl_->inFlight) call->context.TryCancel();
    for (auto* stream : impl_->streams) stream->cancel();
    impl_->reconnects.clear();
  }
  impl_->timerCv.notify_all();
  impl_->discoveryCv.notify_all();
  if (impl_->timer.joinable()) impl_->timer.join();
  if (impl_->discoverer.joinable()) impl_->discoverer.join();
  std::unique_lock lock(impl_->mutex);
  impl_->idle.wait(lock, [this] { return impl_->inFlight.empty() && impl_->streams.empty(); });
}

bool GrpcMediaClient::waitForCalls(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mutex);
  return impl_->callsDone.wait_for(lock, timeout, [this] { return impl_->inFlight.empty(); });
}

void GrpcMediaClient::createAsync(v1::CreateSessionRequest request, CreateDone done) {
  auto op = std::make_unique<Impl::CreateOp>();
  op->request = std::move(request);
  op->done = std::move(done);
  // The least loaded worker first (by the load over limit its last CreateSession answer
  // reported: a transcoded call weighs ~10 relayed ones), round robin among equals (start
  // one further each call); refusing workers last (they may have come back: a draining
  // worker restarted, a full one freed capacity).
  std::vector<Impl::Worker*> candidates;
  {
    std::lock_guard lock(impl_->mutex);
    candidates = impl_->candidates;
  }
  const std::size_t n = candidates.size();
  const std::size_t start = n == 0 ? 0 : impl_->nextWorker.fetch_add(1) % n;
  for (int pass = 0; pass < 2; ++pass) {
    auto first = op->order.size();
    for (std::size_t i = 0; i < n; ++i) {
      Impl::Worker* w = candidates[(start + i) % n];
      if (w->refusing.load() == (pass == 1)) op->order.push_back(w);
    }
    std::stable_sort(op->order.begin() + static_cast<std::ptrdiff_t>(first), op->order.end(),
                     [](const Impl::Worker* a, const Impl::Worker* b) {
                       return a->loadRatio.load() < b->loadRatio.load();
                     });
  }
  impl_->attempt(std::move(op),
                 grpc::Status(grpc::StatusCode::UNAVAILABLE, "no media worker"));
}

void GrpcMediaClient::updateAsync(const std::string& worker, v1::UpdateSessionRequest request,
                                  UpdateDone done) {
  auto* call = new Impl::Call;
  call->method = "UpdateSession";
  call->seconds = &impl_->updateSeconds;
  call->worker = &impl_->workerAt(worker);
  call->updateRequest = std::move(request);
  call->updateDone = std::move(done);
  if (!call->worker->stub) {
    auto refused = std::move(call->updateDone);
    delete call;
    Impl::complete([&] {
      refused(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                           "media worker \"" + worker + "\": plaintext gRPC only to loopback addresses"),
              {});
    }, "UpdateSession");
    return;
  }
  if (!impl_->begin(call)) {
    auto cancelled = std::move(call->updateDone);
    delete call;
    Impl::complete([&] {
      cancelled(grpc::Status(grpc::StatusCode::CANCELLED, "media client stopping"), {});
    }, "UpdateSession");
    return;
  }
  call->worker->stub->async()->UpdateSession(
      &call->context, &call->updateRequest, &call->updateResponse,
      [impl = impl_.get(), call](grpc::Status status) { impl->finished(call, status); });
}

void GrpcMediaClient::deleteAsync(const std::string& worker, v1::DeleteSessionRequest request,
                                  DeleteDone done) {
  auto* call = new Impl::Call;
  call->method = "DeleteSession";
  call->seconds = &impl_->deleteSeconds;
  call->worker = &impl_->workerAt(worker);
  call->deleteRequest = std::move(request);
  call->deleteDone = std::move(done);
  if (!call->worker->stub) {
    auto refused = std::move(call->deleteDone);
    delete call;
    Impl::complete([&] {
      refused(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                           "media worker \"" + worker + "\": plaintext gRPC only to loopback addresses"),
              {});
    }, "DeleteSession");
    return;
  }
  if (!impl_->begin(call)) {
    auto cancelled = std::move(call->deleteDone);
    delete call;
    Impl::complete([&] {
      cancelled(grpc::Status(grpc::StatusCode::CANCELLED, "media client stopping"), {});
    }, "DeleteSession");
    return;
  }
  call->worker->stub->async()->DeleteSession(
      &call->context, &call->deleteRequest, &call->deleteResponse,
      [impl = impl_.get(), call](grpc::Status status) { impl->finished(call, status); });
}

void GrpcMediaClient::watch(const std::string& gatewayId, EventHandler onEvent) {
  std::vector<Impl::Worker*> open;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->watching) return;
    impl_->watching = true;
    impl_->gatewayId = gatewayId;
    impl_->onEvent = std::move(onEvent);
    for (auto* worker : impl_->candidates) {
      worker->streaming = true;
      open.push_back(worker);
    }
  }
  impl_->timer = std::thread([impl = impl_.get()] { impl->timerLoop(); });
  for (auto* worker : open) impl_->openStream(*worker);
}

}  // namespace medius::gateway
