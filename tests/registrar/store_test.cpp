// BindingStore behaviour, one suite run against both stores: MemoryBindingStore and
// RedisBindingStore on a real redis-server started by the test on a free port.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "medius/registrar/memory_binding_store.hpp"
#include "medius/registrar/redis_binding_store.hpp"
#include "test_support.hpp"

namespace medius::registrar {
namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;

Binding binding(const std::string& aor, const std::string& uri, std::int64_t expiresAt) {
  Binding b;
  b.set_aor(aor);
  b.set_contact_uri(uri);
  b.set_expires_at_ms(expiresAt);
  b.set_updated_at_ms(kNow);
  return b;
}

Mutator add(Binding b) {
  return [b](Bindings& bs) {
    bs.push_back(b);
    return true;
  };
}

struct MemoryStoreFactory {
  static std::unique_ptr<BindingStore> make(const std::string&) {
    return std::make_unique<MemoryBindingStore>();
  }
};

struct RedisStoreFactory {
  static std::unique_ptr<BindingStore> make(const std::string& prefix) {
    StoreConfig c;
    c.type = StoreConfig::Type::Redis;
    c.address = test::RedisServer::shared().address();
    c.keyPrefix = prefix;
    c.timeoutMs = 2000;
    return std::make_unique<RedisBindingStore>(c);
  }
};

// Collects events delivered to a subscriber.
struct EventSink {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<BindingEvent> events;
  Subscriber callback() {
    return [this](const BindingEvent& e) {
      std::lock_guard lock(mutex);
      events.push_back(e);
      cv.notify_all();
    };
  }
  bool waitFor(std::size_t n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(5), [&] { return events.size() >= n; });
  }
};

template <typename Factory>
class StoreTest : public ::testing::Test {
 protected:
  std::string prefix_ = test::uniquePrefix();
  std::unique_ptr<BindingStore> store_ = Factory::make(prefix_);
};

class FactoryNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, MemoryStoreFactory> ? "Memory" : "Redis";
  }
};

using Factories = ::testing::Types<MemoryStoreFactory, RedisStoreFactory>;
TYPED_TEST_SUITE(StoreTest, Factories, FactoryNames);

TYPED_TEST(StoreTest, AddAndLookup) {
  auto& s = *this->store_;
  auto r = s.update("sip:alice@example.com", kNow, add(binding("sip:alice@example.com", "sip:a@1.2.3.4", kNow + 60'000)));
  EXPECT_TRUE(r.committed);
  ASSERT_EQ(r.bindings.size(), 1u);
  auto found = s.lookup("sip:alice@example.com", kNow);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].contact_uri(), "sip:a@1.2.3.4");
  EXPECT_EQ(found[0].expires_at_ms(), kNow + 60'000);
  EXPECT_EQ(s.count(kNow), 1u);
  EXPECT_TRUE(s.lookup("sip:bob@example.com", kNow).empty());
}

TYPED_TEST(StoreTest, RefreshChangesExpiry) {
  auto& s = *this->store_;
  const std::string aor = "sip:alice@example.com";
  s.update(aor, kNow, add(binding(aor, "sip:a@1.2.3.4", kNow + 60'000)));
  auto r = s.update(aor, kNow + 30'000, [](Bindings& bs) {
    EXPECT_EQ(bs.size(), 1u);
    bs[0].set_expires_at_ms(kNow + 120'000);
    return true;
  });
  EXPECT_TRUE(r.committed);
  auto found = s.lookup(aor, kNow + 90'000);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].expires_at_ms(), kNow + 120'000);
}

TYPED_TEST(StoreTest, SeveralContactsAndAors) {
  auto& s = *this->store_;
  s.update("sip:bob@example.com", kNow, add(binding("sip:bob@example.com", "sip:b@1", kNow + 60'000)));
  s.update("sip:alice@example.com", kNow, add(binding("sip:alice@example.com", "sip:a@1", kNow + 60'000)));
  s.update("sip:alice@example.com", kNow, add(binding("sip:alice@example.com", "sip:a@2", kNow + 90'000)));
  EXPECT_EQ(s.lookup("sip:alice@example.com", kNow).size(), 2u);
  auto all = s.list(kNow);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].aor(), "sip:alice@example.com");
  EXPECT_EQ(all[1].aor(), "sip:alice@example.com");
  EXPECT_EQ(all[2].aor(), "sip:bob@example.com");
  EXPECT_EQ(s.count(kNow), 3u);
}

TYPED_TEST(StoreTest, RemovalAndWildcardRemoval) {
  auto& s = *this->store_;
  const std::string aor = "sip:alice@example.com";
  s.update(aor, kNow, add(binding(aor, "sip:a@1", kNow + 60'000)));
  s.update(aor, kNow, add(binding(aor, "sip:a@2", kNow + 60'000)));
  s.update(aor, kNow, [](Bindings& bs) {
    std::erase_if(bs, [](const Binding& b) { return b.contact_uri() == "sip:a@1"; });
    return true;
  });
  auto left = s.lookup(aor, kNow);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].contact_uri(), "sip:a@2");
  // "Contact: *": everything goes, and the AOR disappears from list().
  s.update(aor, kNow, [](Bindings& bs) {
    bs.clear();
    return true;
  });
  EXPECT_TRUE(s.lookup(aor, kNow).empty());
  EXPECT_TRUE(s.list(kNow).empty());
  EXPECT_EQ(s.count(kNow), 0u);
}

TYPED_TEST(StoreTest, AbortedUpdateWritesNothing) {
  auto& s = *this->store_;
  const std::string aor = "sip:alice@example.com";
  s.update(aor, kNow, add(binding(aor, "sip:a@1", kNow + 60'000)));
  auto r = s.update(aor, kNow, [](Bindings& bs) {
    bs.clear();
    return false;
  });
  EXPECT_FALSE(r.committed);
  EXPECT_EQ(r.bindings.size(), 1u);
  EXPECT_EQ(s.lookup(aor, kNow).size(), 1u);
}

TYPED_TEST(StoreTest, ExpiredBindingsDisappearAndAreSweptOnce) {
  auto& s = *this->store_;
  const std::string aor = "sip:alice@example.com";
  s.update(aor, kNow, add(binding(aor, "sip:short@1", kNow + 1'000)));
  s.update(aor, kNow, add(binding(aor, "sip:long@1", kNow + 10'000)));
  s.update("sip:bob@example.com", kNow, add(binding("sip:bob@example.com", "sip:b@1", kNow + 2'000)));
  EXPECT_EQ(s.count(kNow + 999), 3u);
  // At its expiry instant a binding is gone from reads, before any sweep.
  EXPECT_EQ(s.lookup(aor, kNow + 1'000).size(), 1u);
  EXPECT_EQ(s.count(kNow + 1'000), 2u);
  auto swept = s.sweepExpired(kNow + 5'000);
  ASSERT_EQ(swept.size(), 2u);
  EXPECT_TRUE(s.sweepExpired(kNow + 5'000).empty());  // exactly once
  EXPECT_EQ(s.list(kNow + 5'000).size(), 1u);
  EXPECT_TRUE(s.sweepExpired(kNow + 9'999).empty());
  EXPECT_EQ(s.sweepExpired(kNow + 10'000).size(), 1u);
  EXPECT_EQ(s.count(kNow + 10'000), 0u);
}

TYPED_TEST(StoreTest, UpdateHidesAndReturnsExpiredBindings) {
  auto& s = *this->store_;
  const std::string aor = "sip:alice@example.com";
  s.update(aor, kNow, add(binding(aor, "sip:old@1", kNow + 1'000)));
  auto r = s.update(aor, kNow + 2'000, [](Bindings& bs) {
    EXPECT_TRUE(bs.empty());
    bs.push_back(binding("sip:alice@example.com", "sip:new@1", kNow + 60'000));
    return true;
  });
  ASSERT_EQ(r.expired.size(), 1u);
  EXPECT_EQ(r.expired[0].contact_uri(), "sip:old@1");
  EXPECT_TRUE(s.sweepExpired(kNow + 3'000).empty());  // already reported by the update
  EXPECT_EQ(s.lookup(aor, kNow + 3'000).size(), 1u);
}

TYPED_TEST(StoreTest, NonceCountsMustGrow) {
  auto& s = *this->store_;
  EXPECT_TRUE(s.useNonceCount("n1", 1, 60'000));
  EXPECT_FALSE(s.useNonceCount("n1", 1, 60'000));
  EXPECT_TRUE(s.useNonceCount("n1", 2, 60'000));
  EXPECT_FALSE(s.useNonceCount("n1", 1, 60'000));
  EXPECT_TRUE(s.useNonceCount("n1", 10, 60'000));
  EXPECT_TRUE(s.useNonceCount("n2", 1, 60'000));
}

TYPED_TEST(StoreTest, FirstNonceSecretWins) {
  auto& s = *this->store_;
  EXPECT_EQ(s.sharedNonceSecret("first-secret-0123456789"), "first-secret-0123456789");
  EXPECT_EQ(s.sharedNonceSecret("second-secret-0123456789"), "first-secret-0123456789");
}

TYPED_TEST(StoreTest, EventsReachSubscribersUntilUnsubscribed) {
  auto& s = *this->store_;
  EventSink first, second;
  auto id1 = s.subscribe(first.callback());
  auto id2 = s.subscribe(second.callback());
  BindingEvent ev;
  ev.set_kind(BindingEvent::KIND_ADDED);
  *ev.mutable_binding() = binding("sip:alice@example.com", "sip:a@1", kNow + 1);
  s.publish(ev);
  ASSERT_TRUE(first.waitFor(1));
  ASSERT_TRUE(second.waitFor(1));
  EXPECT_EQ(first.events[0].kind(), BindingEvent::KIND_ADDED);
  EXPECT_EQ(first.events[0].binding().contact_uri(), "sip:a@1");
  s.unsubscribe(id1);
  ev.set_kind(BindingEvent::KIND_REMOVED);
  s.publish(ev);
  ASSERT_TRUE(second.waitFor(2));  // delivered in order, so `first` would have it by now
  EXPECT_EQ(second.events[1].kind(), BindingEvent::KIND_REMOVED);
  std::lock_guard lock(first.mutex);
  EXPECT_EQ(first.events.size(), 1u);
  s.unsubscribe(id2);
}

TYPED_TEST(StoreTest, ConcurrentUpdatesOfOneAorAreAtomic) {
  auto& s = *this->store_;
  const std::string aor = "sip:alice@example.com";
  auto other = TypeParam::make(this->prefix_);  // a second replica (same process for memory)
  BindingStore& s2 = std::is_same_v<TypeParam, MemoryStoreFactory> ? s : *other;
  constexpr int kPerThread = 25;
  auto worker = [&](BindingStore& store, const std::string& tag) {
    for (int i = 0; i < kPerThread; ++i) {
      store.update(aor, kNow, add(binding(aor, "sip:" + tag + std::to_string(i) + "@h", kNow + 60'000)));
    }
  };
  std::thread t1(worker, std::ref(s), "x");
  std::thread t2(worker, std::ref(s2), "y");
  t1.join();
  t2.join();
  EXPECT_EQ(s.lookup(aor, kNow).size(), 2u * kPerThread);
}

// Redis only: two replicas sweeping the same expired bindings report each once.
TEST(RedisStore, TwoReplicasSweepEachBindingOnce) {
  std::string prefix = test::uniquePrefix();
  auto a = RedisStoreFactory::make(prefix);
  auto b = RedisStoreFactory::make(prefix);
  for (int i = 0; i < 40; ++i) {
    std::string aor = "sip:u" + std::to_string(i) + "@example.com";
    a->update(aor, kNow, add(binding(aor, "sip:c@1", kNow + 1'000)));
  }
  Bindings fromA, fromB;
  std::thread ta([&] { fromA = a->sweepExpired(kNow + 2'000); });
  std::thread tb([&] { fromB = b->sweepExpired(kNow + 2'000); });
  ta.join();
  tb.join();
  EXPECT_EQ(fromA.size() + fromB.size(), 40u);
  EXPECT_EQ(a->count(kNow), 0u);
}

TEST(RedisStore, EventsCrossReplicas) {
  std::string prefix = test::uniquePrefix();
  auto a = RedisStoreFactory::make(prefix);
  auto b = RedisStoreFactory::make(prefix);
  EventSink sink;
  auto id = b->subscribe(sink.callback());
  BindingEvent ev;
  ev.set_kind(BindingEvent::KIND_EXPIRED);
  a->publish(ev);
  ASSERT_TRUE(sink.waitFor(1));
  EXPECT_EQ(sink.events[0].kind(), BindingEvent::KIND_EXPIRED);
  b->unsubscribe(id);
}

TEST(RedisStore, UnreachableRedisThrowsStoreUnavailable) {
  StoreConfig c;
  c.type = StoreConfig::Type::Redis;
  c.address = "127.0.0.1:" + std::to_string(test::freePort());
  c.timeoutMs = 200;
  RedisBindingStore s(c);
  EXPECT_THROW(s.lookup("sip:alice@example.com", kNow), StoreUnavailable);
  EXPECT_THROW(s.update("sip:alice@example.com", kNow, [](Bindings&) { return true; }),
               StoreUnavailable);
  EXPECT_THROW(s.useNonceCount("n", 1, 1000), StoreUnavailable);
  EXPECT_THROW(s.subscribe([](const BindingEvent&) {}), StoreUnavailable);
  // It keeps failing cleanly (reconnect attempts), never crashes.
  EXPECT_THROW(s.list(kNow), StoreUnavailable);
}

TEST(RedisStore, RedisStoppingUnderneathFailsCleanly) {
  StoreConfig c;
  c.type = StoreConfig::Type::Redis;
  c.keyPrefix = test::uniquePrefix();
  c.timeoutMs = 1000;
  auto redis = std::make_unique<test::RedisServer>();
  c.address = redis->address();
  RedisBindingStore s(c);
  s.update("sip:alice@example.com", kNow, add(binding("sip:alice@example.com", "sip:a@1", kNow + 60'000)));
  redis.reset();  // stop it
  EXPECT_THROW(s.lookup("sip:alice@example.com", kNow), StoreUnavailable);
  EXPECT_THROW(s.publish(BindingEvent{}), StoreUnavailable);
}

}  // namespace
}  // namespace medius::registrar
