// Binding store in Redis (hiredis 0.14), shared by registrar replicas.
//
// Keys (P = key_prefix):
//   P aor:<aor>   string: serialized LookupResponse holding the AOR's bindings
//   P expiry      sorted set: member <aor>, score = earliest expires_at_ms of its bindings
//   P nc:<nonce>  string: highest nonce-count seen, with a TTL
//   P nonce_secret  string: the shared nonce secret (SET NX)
//   P events      pub/sub channel: serialized BindingEvent
// update() and sweepExpired() use WATCH/MULTI/EXEC with retries, so each change is atomic
// across replicas; useNonceCount() is one Lua script.
//
// Thread: thread-safe. Commands share one connection behind a mutex (reconnected after any
// error); subscriptions use a second connection owned by a subscriber thread. Redis being
// down never crashes: calls throw StoreUnavailable and the next call reconnects.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "medius/registrar/binding_store.hpp"
#include "medius/registrar/config.hpp"
#include "medius/registrar/event_hub.hpp"

struct redisContext;
struct redisReply;

namespace medius::registrar {

class RedisBindingStore final : public BindingStore {
 public:
  // Does not connect yet (a registrar starts even when Redis is down).
  explicit RedisBindingStore(const StoreConfig& config);
  ~RedisBindingStore() override;
  RedisBindingStore(const RedisBindingStore&) = delete;
  RedisBindingStore& operator=(const RedisBindingStore&) = delete;

  UpdateResult update(const std::string& aor, std::int64_t nowMs, const Mutator& mutator) override;
  Bindings lookup(const std::string& aor, std::int64_t nowMs) override;
  Bindings list(std::int64_t nowMs) override;
  std::size_t count(std::int64_t nowMs) override;
  Bindings sweepExpired(std::int64_t nowMs) override;
  bool useNonceCount(const std::string& nonce, std::uint32_t nc, std::int64_t ttlMs) override;
  std::string sharedNonceSecret(const std::string& candidate) override;
  void publish(const BindingEvent& event) override;
  std::uint64_t subscribe(Subscriber callback) override;
  void unsubscribe(std::uint64_t id) override;

 private:
  struct ContextDeleter {
    void operator()(redisContext* c) const;
  };
  using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;
  struct ReplyDeleter {
    void operator()(redisReply* r) const;
  };
  using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

  ContextPtr connect() const;
  // Connection for commands; caller holds mutex_.
  redisContext& connection();
  // Runs one command (argv form, binary-safe); throws StoreUnavailable on transport errors
  // (and drops the connection) or on an error reply. Caller holds mutex_.
  ReplyPtr command(const std::vector<std::string>& args);
  [[noreturn]] void fail(const std::string& what);
  Bindings readAor(const std::string& aor);  // caller holds mutex_
  void startSubscriber();                    // caller holds subMutex_
  void subscriberLoop();

  StoreConfig config_;
  std::string host_;
  int port_ = 0;
  std::mutex mutex_;
  ContextPtr ctx_;

  EventHub hub_;
  std::mutex subMutex_;
  std::condition_variable subCv_;
  std::thread subThread_;
  bool subscribed_ = false;     // SUBSCRIBE confirmed on the current connection
  bool stopping_ = false;
  int subFd_ = -1;              // socket of the subscriber connection, for shutdown()
};

}  // namespace medius::registrar
