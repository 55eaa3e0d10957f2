#include "medius/registrar/redis_binding_store.hpp"

#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <map>

#include <hiredis.h>

#include "medius/common/logging.hpp"

namespace medius::registrar {

namespace {

constexpr int kMaxAttempts = 50;

// One Lua script keeps check-and-set of a nonce-count atomic across replicas.
constexpr const char* kNonceCountScript =
    "local c = redis.call('GET', KEYS[1]) "
    "if c and tonumber(c) >= tonumber(ARGV[1]) then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "return 1";

timeval toTimeval(std::int64_t ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

std::string replyString(const redisReply* r) {
  return std::string(r->str, static_cast<std::size_t>(r->len));
}

Bindings decode(const std::string& data) {
  medius::v1::LookupResponse list;
  Bindings out;
  if (!list.ParseFromString(data)) return out;  // corrupt value: treated as no bindings
  for (auto& b : *list.mutable_bindings()) out.push_back(std::move(b));
  return out;
}

std::string encode(const Bindings& bindings) {
  medius::v1::LookupResponse list;
  for (const auto& b : bindings) *list.add_bindings() = b;
  return list.SerializeAsString();
}

}  // namespace

void RedisBindingStore::ContextDeleter::operator()(redisContext* c) const { redisFree(c); }
void RedisBindingStore::ReplyDeleter::operator()(redisReply* r) const { freeReplyObject(r); }

RedisBindingStore::RedisBindingStore(const StoreConfig& config) : config_(config) {
  auto hp = config::parseHostPort(config_.address);
  host_ = hp.host;
  port_ = hp.port;
}

RedisBindingStore::~RedisBindingStore() {
  {
    std::lock_guard lock(subMutex_);
    stopping_ = true;
    // Wakes the subscriber thread out of its blocking read.
    if (subFd_ >= 0) ::shutdown(subFd_, SHUT_RDWR);
  }
  subCv_.notify_all();
  if (subThread_.joinable()) subThread_.join();
}

RedisBindingStore::ContextPtr RedisBindingStore::connect() const {
  timeval tv = toTimeval(config_.timeoutMs);
  ContextPtr c(redisConnectWithTimeout(host_.c_str(), port_, tv));
  if (!c) throw StoreUnavailable("redis " + config_.address + ": cannot allocate a context");
  if (c->err) throw StoreUnavailable("redis " + config_.address + ": " + c->errstr);
  if (redisSetTimeout(c.get(), tv) != REDIS_OK) {
    throw StoreUnavailable("redis " + config_.address + ": cannot set the timeout");
  }
  return c;
}

redisContext& RedisBindingStore::connection() {
  if (!ctx_) ctx_ = connect();
  return *ctx_;
}

void RedisBindingStore::fail(const std::string& what) {
  // After any error the connection may be mid-transaction or desynchronized: drop it,
  // the next call reconnects.
  ctx_.reset();
  throw StoreUnavailable("redis " + config_.address + ": " + what);
}

RedisBindingStore::ReplyPtr RedisBindingStore::command(const std::vector<std::string>& args) {
  redisContext& c = connection();
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  ReplyPtr reply(static_cast<redisReply*>(
      redisCommandArgv(&c, static_cast<int>(argv.size()), argv.data(), lens.data())));
  if (!reply) fail(args.front() + ": " + (c.err ? c.errstr : "no reply"));
  if (reply->type == REDIS_REPLY_ERROR) fail(args.front() + ": " + replyString(reply.get()));
  return reply;
}

Bindings RedisBindingStore::readAor(const std::string& aor) {
  auto reply = command({"GET", config_.keyPrefix + "aor:" + aor});
  if (reply->type != REDIS_REPLY_STRING) return {};
  return decode(replyString(reply.get()));
}

UpdateResult RedisBindingStore::update(const std::string& aor, std::int64_t nowMs,
                                       const Mutator& mutator) {
  std::lock_guard lock(mutex_);
  const std::string key = config_.keyPrefix + "aor:" + aor;
  const std::string zkey = config_.keyPrefix + "expiry";
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    command({"WATCH", key});
    Bindings live = readAor(aor);
    Bindings expired;
    std::erase_if(live, [&](const Binding& b) {
      if (b.expires_at_ms() > nowMs) return false;
      expired.push_back(b);
      return true;
    });
    Bindings working = live;
    bool commit = false;
    try {
      commit = mutator(working);
    } catch (...) {
      ctx_.reset();  // still WATCHing: drop the connection rather than leak the state
      throw;
    }
    if (!commit) {
      command({"UNWATCH"});
      UpdateResult r;
      r.bindings = std::move(live);
      return r;
    }
    std::vector<std::vector<std::string>> ops;
    ops.push_back({"MULTI"});
    if (working.empty()) {
      ops.push_back({"DEL", key});
      ops.push_back({"ZREM", zkey, aor});
    } else {
      std::int64_t earliest = working.front().expires_at_ms();
      for (const auto& b : working) earliest = std::min(earliest, b.expires_at_ms());
      ops.push_back({"SET", key, encode(working)});
      ops.push_back({"ZADD", zkey, std::to_string(earliest), aor});
    }
    ops.push_back({"EXEC"});
    redisContext& c = connection();
    for (const auto& op : ops) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lens;
      for (const auto& a : op) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      if (redisAppendCommandArgv(&c, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
          REDIS_OK) {
        fail("cannot queue a command");
      }
    }
    ReplyPtr exec;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(&c, &raw) != REDIS_OK || !raw) fail(std::string("EXEC: ") + c.errstr);
      ReplyPtr reply(static_cast<redisReply*>(raw));
      if (reply->type == REDIS_REPLY_ERROR) fail("transaction: " + replyString(reply.get()));
      if (i + 1 == ops.size()) exec = std::move(reply);
    }
    if (!exec) fail("EXEC: no reply");
    if (exec->type == REDIS_REPLY_NIL) continue;  // another replica changed the AOR: retry
    UpdateResult r;
    r.committed = true;
    r.bindings = std::move(working);
    r.expired = std::move(expired);
    return r;
  }
  throw StoreUnavailable("redis " + config_.address + ": too much contention on " + aor);
}

Bindings RedisBindingStore::lookup(const std::string& aor, std::int64_t nowMs) {
  std::lock_guard lock(mutex_);
  Bindings out = readAor(aor);
  std::erase_if(out, [&](const Binding& b) { return b.expires_at_ms() <= nowMs; });
  return out;
}

Bindings RedisBindingStore::list(std::int64_t nowMs) {
  std::lock_guard lock(mutex_);
  auto members = command({"ZRANGE", config_.keyPrefix + "expiry", "0", "-1"});
  std::vector<std::string> aors;
  for (std::size_t i = 0; i < members->elements; ++i) {
    aors.push_back(replyString(members->element[i]));
  }
  std::sort(aors.begin(), aors.end());
  Bindings out;
  constexpr std::size_t kBatch = 200;
  for (std::size_t start = 0; start < aors.size(); start += kBatch) {
    std::vector<std::string> args{"MGET"};
    for (std::size_t i = start; i < std::min(aors.size(), start + kBatch); ++i) {
      args.push_back(config_.keyPrefix + "aor:" + aors[i]);
    }
    auto values = command(args);
    for (std::size_t i = 0; i < values->elements; ++i) {
      const redisReply* v = values->element[i];
      if (v->type != REDIS_REPLY_STRING) continue;
      for (auto& b : decode(replyString(v))) {
        if (b.expires_at_ms() > nowMs) out.push_back(std::move(b));
      }
    }
  }
  return out;
}

std::size_t RedisBindingStore::count(std::int64_t nowMs) { return list(nowMs).size(); }

Bindings RedisBindingStore::sweepExpired(std::int64_t nowMs) {
  std::vector<std::string> aors;
  {
    std::lock_guard lock(mutex_);
    auto due = command(
        {"ZRANGEBYSCORE", config_.keyPrefix + "expiry", "-inf", std::to_string(nowMs)});
    for (std::size_t i = 0; i < due->elements; ++i) aors.push_back(replyString(due->element[i]));
  }
  Bindings removed;
  for (const auto& aor : aors) {
    // The transaction of update() makes the removal atomic: when two replicas sweep the
    // same AOR, one EXEC fails, retries and finds nothing expired any more.
    auto r = update(aor, nowMs, [](Bindings&) { return true; });
    for (auto& b : r.expired) removed.push_back(std::move(b));
  }
  return removed;
}

bool RedisBindingStore::useNonceCount(const std::string& nonce, std::uint32_t nc,
                                      std::int64_t ttlMs) {
  std::lock_guard lock(mutex_);
  auto reply = command({"EVAL", kNonceCountScript, "1", config_.keyPrefix + "nc:" + nonce,
                        std::to_string(nc), std::to_string(std::max<std::int64_t>(ttlMs, 1))});
  return reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
}

std::string RedisBindingStore::sharedNonceSecret(const std::string& candidate) {
  std::lock_guard lock(mutex_);
  const std::string key = config_.keyPrefix + "nonce_secret";
  command({"SET", key, candidate, "NX"});
  auto reply = command({"GET", key});
  if (reply->type != REDIS_REPLY_STRING) fail("nonce secret vanished");
  return replyString(reply.get());
}

void RedisBindingStore::publish(const BindingEvent& event) {
  std::lock_guard lock(mutex_);
  command({"PUBLISH", config_.keyPrefix + "events", event.SerializeAsString()});
}

std::uint64_t RedisBindingStore::subscribe(Subscriber callback) {
  std::unique_lock lock(subMutex_);
  startSubscriber();
  bool ok = subCv_.wait_for(lock, std::chrono::milliseconds(config_.timeoutMs),
                            [&] { return subscribed_ || stopping_; });
  if (!ok || !subscribed_) {
    throw StoreUnavailable("redis " + config_.address + ": cannot subscribe to binding events");
  }
  return hub_.add(std::move(callback));
}

void RedisBindingStore::unsubscribe(std::uint64_t id) { hub_.remove(id); }

void RedisBindingStore::startSubscriber() {
  if (subThread_.joinable()) return;
  subThread_ = std::thread([this] { subscriberLoop(); });
}

void RedisBindingStore::subscriberLoop() {
  auto logger = log::get("registrar");
  const std::string channel = config_.keyPrefix + "events";
  bool warned = false;
  while (true) {
    {
      std::lock_guard lock(subMutex_);
      if (stopping_) return;
    }
    ContextPtr c;
    try {
      c = connect();
      redisReply* raw = static_cast<redisReply*>(
          redisCommand(c.get(), "SUBSCRIBE %b", channel.data(), channel.size()));
      ReplyPtr reply(raw);
      if (!reply || reply->type == REDIS_REPLY_ERROR) {
        throw StoreUnavailable("SUBSCRIBE failed: " + std::string(c->err ? c->errstr : "error reply"));
      }
      // Block without a timeout from now on: stop() wakes us with shutdown(2).
      timeval none{};
      redisSetTimeout(c.get(), none);
    } catch (const StoreUnavailable& e) {
      if (!warned) logger->warn("binding events: {} (retrying)", e.what());
      warned = true;
      std::unique_lock lock(subMutex_);
      subCv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; });
      continue;
    }
    {
      std::lock_guard lock(subMutex_);
      if (stopping_) return;
      subFd_ = c->fd;
      subscribed_ = true;
    }
    if (warned) logger->info("binding events: subscribed again");
    warned = false;
    subCv_.notify_all();
    while (true) {
      void* raw = nullptr;
      if (redisGetReply(c.get(), &raw) != REDIS_OK || !raw) break;
      ReplyPtr reply(static_cast<redisReply*>(raw));
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) continue;
      if (replyString(reply->element[0]) != "message") continue;
      BindingEvent event;
      if (event.ParseFromString(replyString(reply->element[2]))) hub_.dispatch(event);
    }
    {
      std::lock_guard lock(subMutex_);
      subscribed_ = false;
      subFd_ = -1;
    }
  }
}

}  // namespace medius::registrar
