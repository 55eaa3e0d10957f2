// The medius.v1.Registrar gRPC service in-process, through the generated stub.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <set>
#include <string>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "medius/common/metrics.hpp"
#include "medius/common/service.hpp"
#include "medius/registrar/grpc_service.hpp"
#include "medius/registrar/memory_binding_store.hpp"
#include "medius/registrar/redis_binding_store.hpp"
#include "test_support.hpp"

namespace medius::registrar {
namespace {

using namespace medius::v1;

class GrpcTest : public ::testing::Test {
 protected:
  explicit GrpcTest(bool auth = false)
      : config_(test::testConfig(auth)), metrics_(registry_),
        registrar_(config_, store_, SystemClock::instance(), metrics_), service_(registrar_, store_),
        server_("127.0.0.1:0", {&service_}, {"medius.v1.Registrar"}),
        channel_(grpc::CreateChannel("127.0.0.1:" + std::to_string(server_.port()),
                                     grpc::InsecureChannelCredentials())),
        stub_(medius::v1::Registrar::NewStub(channel_)) {}

  RegisterResponse doRegister(const RegisterRequest& req, grpc::Status* status = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    RegisterResponse resp;
    grpc::Status st = stub_->Register(&ctx, req, &resp);
    if (status) *status = st;
    else EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  RegistrarConfig config_;
  MemoryBindingStore store_;
  prometheus::Registry registry_;
  RegistrarMetrics metrics_;
  Registrar registrar_;
  RegistrarService service_;
  GrpcServer server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<medius::v1::Registrar::Stub> stub_;
};

TEST_F(GrpcTest, RegisterLookupListRemove) {
  auto resp = doRegister(test::registerRequest("sip:alice@example.com", "sip:alice@192.0.2.1"));
  ASSERT_EQ(resp.result(), RegisterResponse::RESULT_OK);
  doRegister(test::registerRequest("sip:bob@example.com", "sip:bob@192.0.2.2"));

  grpc::ClientContext c1;
  LookupRequest lreq;
  lreq.set_aor("sip:alice@example.com");
  LookupResponse lresp;
  ASSERT_TRUE(stub_->Lookup(&c1, lreq, &lresp).ok());
  ASSERT_EQ(lresp.bindings_size(), 1);
  EXPECT_EQ(lresp.bindings(0).contact_uri(), "sip:alice@192.0.2.1");
  EXPECT_GT(lresp.bindings(0).expires_in(), 3590u);

  grpc::ClientContext c2;
  ListBindingsResponse all;
  ASSERT_TRUE(stub_->ListBindings(&c2, ListBindingsRequest{}, &all).ok());
  ASSERT_EQ(all.bindings_size(), 2);
  EXPECT_EQ(all.bindings(0).aor(), "sip:alice@example.com");
  EXPECT_EQ(all.bindings(1).aor(), "sip:bob@example.com");

  grpc::ClientContext c3;
  RemoveBindingsRequest rreq;
  rreq.set_aor("sip:bob@example.com");
  RemoveBindingsResponse rresp;
  ASSERT_TRUE(stub_->RemoveBindings(&c3, rreq, &rresp).ok());
  EXPECT_EQ(rresp.removed(), 1u);
}

TEST_F(GrpcTest, MalformedRequestsAreInvalidArgument) {
  grpc::Status st;
  doRegister(test::registerRequest("", "sip:a@1"), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("aor"), std::string::npos);
  grpc::ClientContext ctx;
  LookupResponse resp;
  EXPECT_EQ(stub_->Lookup(&ctx, LookupRequest{}, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext ctx2;
  VerifyDigestResponse vresp;
  EXPECT_EQ(stub_->VerifyDigest(&ctx2, VerifyDigestRequest{}, &vresp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(GrpcTest, ChallengeAndVerifyDigest) {
  grpc::ClientContext c1;
  ChallengeResponse ch;
  ASSERT_TRUE(stub_->Challenge(&c1, ChallengeRequest{}, &ch).ok());
  ASSERT_EQ(ch.challenges_size(), 2);
  VerifyDigestRequest vreq;
  *vreq.mutable_credentials() = test::answer(ch.challenges(0), "alice", "secret-alice", 1, "INVITE");
  grpc::ClientContext c2;
  VerifyDigestResponse vresp;
  ASSERT_TRUE(stub_->VerifyDigest(&c2, vreq, &vresp).ok());
  EXPECT_EQ(vresp.result(), VerifyDigestResponse::RESULT_OK);
  EXPECT_EQ(vresp.aor(), "sip:alice@example.com");
}

TEST_F(GrpcTest, NoRegisterSetsWhenRegisterNeedsNoAuthentication) {
  grpc::ClientContext ctx;
  ChallengeRequest req;
  req.set_register_sets(3);
  ChallengeResponse ch;
  ASSERT_TRUE(stub_->Challenge(&ctx, req, &ch).ok());
  EXPECT_EQ(ch.challenges_size(), 2);  // calls are still challenged
  EXPECT_EQ(ch.register_sets_size(), 0);
  EXPECT_EQ(ch.nonce_ttl_seconds(), static_cast<std::uint32_t>(config_.auth.nonceTtlSeconds));
}

class AuthGrpcTest : public GrpcTest {
 protected:
  AuthGrpcTest() : GrpcTest(true) {}
};

TEST_F(AuthGrpcTest, RegisterSetsAreFreshChallengesAClientCanAnswer) {
  grpc::ClientContext ctx;
  ChallengeRequest req;
  req.set_register_sets(3);
  ChallengeResponse ch;
  ASSERT_TRUE(stub_->Challenge(&ctx, req, &ch).ok());
  ASSERT_EQ(ch.register_sets_size(), 3);
  std::set<std::string> nonces;
  for (const auto& set : ch.register_sets()) {
    // As a 401 of handleRegister: every configured algorithm, in order, not stale.
    ASSERT_EQ(set.challenges_size(), 2);
    EXPECT_EQ(set.challenges(0).algorithm(), "SHA-256");
    EXPECT_EQ(set.challenges(1).algorithm(), "MD5");
    for (const auto& c : set.challenges()) {
      EXPECT_EQ(c.realm(), config_.auth.realm);
      EXPECT_FALSE(c.stale());
      EXPECT_NE(c.header_value().find("nonce=\"" + c.nonce() + "\""), std::string::npos);
      nonces.insert(c.nonce());
    }
  }
  EXPECT_EQ(nonces.size(), 6u);  // never one nonce for two clients

  // A REGISTER answering one of them is accepted.
  RegisterRequest reg = test::registerRequest("sip:alice@example.com", "sip:alice@192.0.2.1");
  *reg.mutable_credentials() =
      test::answer(ch.register_sets(2).challenges(1), "alice", "secret-alice", 1, "REGISTER");
  EXPECT_EQ(doRegister(reg).result(), RegisterResponse::RESULT_OK);

  grpc::ClientContext tooMany;
  req.set_register_sets(257);
  EXPECT_EQ(stub_->Challenge(&tooMany, req, &ch).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(GrpcTest, HealthIsServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("medius.v1.Registrar");
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(GrpcTest, WatchStreamsSnapshotThenEvents) {
  doRegister(test::registerRequest("sip:alice@example.com", "sip:alice@192.0.2.1"));
  grpc::ClientContext ctx;
  WatchRequest wreq;
  wreq.set_snapshot(true);
  auto reader = stub_->Watch(&ctx, wreq);
  BindingEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.kind(), BindingEvent::KIND_ADDED);
  EXPECT_EQ(ev.binding().aor(), "sip:alice@example.com");
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.kind(), BindingEvent::KIND_SNAPSHOT_END);

  doRegister(test::registerRequest("sip:bob@example.com", "sip:bob@192.0.2.2"));
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.kind(), BindingEvent::KIND_ADDED);
  EXPECT_EQ(ev.binding().aor(), "sip:bob@example.com");
  auto unreg = test::registerRequest("sip:bob@example.com", "sip:bob@192.0.2.2", 2);
  unreg.set_expires(0);
  doRegister(unreg);
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.kind(), BindingEvent::KIND_REMOVED);
  ctx.TryCancel();
  while (reader->Read(&ev)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(GrpcTest, WatchFiltersByAorAndEndsOnStop) {
  grpc::ClientContext ctx;
  WatchRequest wreq;
  wreq.set_aor("sip:bob@example.com");
  auto reader = stub_->Watch(&ctx, wreq);
  BindingEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.kind(), BindingEvent::KIND_SNAPSHOT_END);
  doRegister(test::registerRequest("sip:alice@example.com", "sip:alice@192.0.2.1"));
  doRegister(test::registerRequest("sip:bob@example.com", "sip:bob@192.0.2.2"));
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.binding().aor(), "sip:bob@example.com");
  service_.stopWatches();  // what main does at shutdown
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST(GrpcUnavailable, StoreDownIsUnavailable) {
  RegistrarConfig config = test::testConfig(false);
  StoreConfig sc;
  sc.type = StoreConfig::Type::Redis;
  sc.address = "127.0.0.1:" + std::to_string(test::freePort());
  sc.timeoutMs = 200;
  RedisBindingStore store(sc);
  prometheus::Registry registry;
  RegistrarMetrics metrics(registry);
  Registrar registrar(config, store, SystemClock::instance(), metrics);
  RegistrarService service(registrar, store);
  GrpcServer server("127.0.0.1:0", {&service}, {"medius.v1.Registrar"});
  auto stub = medius::v1::Registrar::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(server.port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  RegisterResponse resp;
  auto st = stub->Register(&ctx, test::registerRequest("sip:alice@example.com", "sip:a@1"), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  grpc::ClientContext ctx2;
  auto reader = stub->Watch(&ctx2, WatchRequest{});
  BindingEvent ev;
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(medius::metrics::serialize(registry).find("result=\"unavailable\"} 1"), std::string::npos);
}

}  // namespace
}  // namespace medius::registrar
