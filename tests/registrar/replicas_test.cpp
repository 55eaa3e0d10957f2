// Two registrar replicas (service + core + RedisBindingStore each) on one redis-server.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include "medius/common/service.hpp"
#include "medius/registrar/grpc_service.hpp"
#include "medius/registrar/redis_binding_store.hpp"
#include "test_support.hpp"

namespace medius::registrar {
namespace {

using namespace medius::v1;

struct Replica {
  Replica(const RegistrarConfig& config, const StoreConfig& storeConfig)
      : store(storeConfig), metrics(registry),
        registrar(config, store, SystemClock::instance(), metrics), service(registrar, store),
        server("127.0.0.1:0", {&service}, {"medius.v1.Registrar"}),
        stub(medius::v1::Registrar::NewStub(grpc::CreateChannel(
            "127.0.0.1:" + std::to_string(server.port()), grpc::InsecureChannelCredentials()))) {}

  RegisterResponse doRegister(const RegisterRequest& req) {
    grpc::ClientContext ctx;
    RegisterResponse resp;
    grpc::Status st = stub->Register(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  RedisBindingStore store;
  prometheus::Registry registry;
  RegistrarMetrics metrics;
  Registrar registrar;
  RegistrarService service;
  GrpcServer server;
  std::unique_ptr<medius::v1::Registrar::Stub> stub;
};

class ReplicasTest : public ::testing::Test {
 protected:
  ReplicasTest() : config_(test::testConfig(true)) {
    storeConfig_.type = StoreConfig::Type::Redis;
    storeConfig_.address = test::RedisServer::shared().address();
    storeConfig_.keyPrefix = test::uniquePrefix();
    first_ = std::make_unique<Replica>(config_, storeConfig_);
    second_ = std::make_unique<Replica>(config_, storeConfig_);
  }
  RegistrarConfig config_;
  StoreConfig storeConfig_;
  std::unique_ptr<Replica> first_;
  std::unique_ptr<Replica> second_;
};

TEST_F(ReplicasTest, BindingMadeThroughFirstIsSeenThroughSecond) {
  // Challenged by the first replica, answered to the second: the nonce secret is shared.
  auto req = test::registerRequest("sip:alice@example.com", "sip:alice@192.0.2.1:5070");
  auto challenge = first_->doRegister(req);
  ASSERT_EQ(challenge.result(), RegisterResponse::RESULT_UNAUTHORIZED);
  *req.mutable_credentials() = test::answer(challenge.challenges(0), "alice", "secret-alice");
  auto ok = second_->doRegister(req);
  ASSERT_EQ(ok.result(), RegisterResponse::RESULT_OK) << ok.reason();
  // The nonce-count is shared too: replaying to the first replica fails.
  req.set_cseq(2);
  EXPECT_EQ(first_->doRegister(req).result(), RegisterResponse::RESULT_UNAUTHORIZED);

  grpc::ClientContext ctx;
  LookupRequest lreq;
  lreq.set_aor("sip:alice@example.com");
  LookupResponse lresp;
  ASSERT_TRUE(first_->stub->Lookup(&ctx, lreq, &lresp).ok());
  ASSERT_EQ(lresp.bindings_size(), 1);
  EXPECT_EQ(lresp.bindings(0).contact_uri(), "sip:alice@192.0.2.1:5070");
}

TEST_F(ReplicasTest, WatchOnSecondSeesEventCausedByFirst) {
  grpc::ClientContext ctx;
  auto reader = second_->stub->Watch(&ctx, WatchRequest{});
  BindingEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  ASSERT_EQ(ev.kind(), BindingEvent::KIND_SNAPSHOT_END);  // subscribed from here on

  auto req = test::registerRequest("sip:bob@example.com", "sip:bob@192.0.2.2");
  auto challenge = first_->doRegister(req);
  *req.mutable_credentials() = test::answer(challenge.challenges(1), "bob", "secret-bob");
  ASSERT_EQ(first_->doRegister(req).result(), RegisterResponse::RESULT_OK);

  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.kind(), BindingEvent::KIND_ADDED);
  EXPECT_EQ(ev.binding().aor(), "sip:bob@example.com");
  EXPECT_EQ(ev.binding().contact_uri(), "sip:bob@192.0.2.2");
  ctx.TryCancel();
  while (reader->Read(&ev)) {
  }
  reader->Finish();
}

}  // namespace
}  // namespace medius::registrar
