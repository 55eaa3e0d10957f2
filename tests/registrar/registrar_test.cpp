// Registrar core without sockets: authentication, expiry, keying, ordering, limits, events.
#include <gtest/gtest.h>

#include <prometheus/registry.h>

#include "medius/common/metrics.hpp"
#include "medius/registrar/memory_binding_store.hpp"
#include "medius/registrar/registrar.hpp"
#include "test_support.hpp"

namespace medius::registrar {
namespace {

using medius::v1::RegisterRequest;
using medius::v1::RegisterResponse;

class RegistrarTest : public ::testing::Test {
 protected:
  explicit RegistrarTest(bool auth = true)
      : config_(test::testConfig(auth)), store_(clock_), metrics_(registry_),
        registrar_(config_, store_, clock_, metrics_) {
    store_.subscribe([this](const BindingEvent& e) { events_.push_back(e); });
  }

  // Challenge, then answer with the challenge of `algorithm`.
  RegisterResponse authed(RegisterRequest req, const std::string& user, const std::string& password,
                          const std::string& algorithm = "SHA-256") {
    RegisterResponse first = registrar_.handleRegister(req);
    EXPECT_EQ(first.result(), RegisterResponse::RESULT_UNAUTHORIZED);
    for (const auto& c : first.challenges()) {
      if (c.algorithm() == algorithm) {
        *req.mutable_credentials() = test::answer(c, user, password);
        return registrar_.handleRegister(req);
      }
    }
    ADD_FAILURE() << "no challenge for " << algorithm;
    return first;
  }

  double metric(const std::string& needle) {
    // A sample line, not the "# HELP name ..." line.
    std::string text = "\n" + metrics::serialize(registry_);
    auto pos = text.find("\n" + needle + " ");
    if (pos == std::string::npos) return -1;
    return std::stod(text.substr(pos + needle.size() + 2));
  }

  ManualClock clock_;
  RegistrarConfig config_;
  MemoryBindingStore store_;
  prometheus::Registry registry_;
  RegistrarMetrics metrics_;
  Registrar registrar_;
  std::vector<BindingEvent> events_;
};

class OpenRegistrarTest : public RegistrarTest {
 protected:
  OpenRegistrarTest() : RegistrarTest(false) {}
};

const std::string kAlice = "sip:alice@example.com";

TEST_F(RegistrarTest, ChallengeListsConfiguredAlgorithmsInOrder) {
  auto resp = registrar_.handleRegister(test::registerRequest(kAlice, "sip:alice@192.0.2.10:5070"));
  EXPECT_EQ(resp.result(), RegisterResponse::RESULT_UNAUTHORIZED);
  ASSERT_EQ(resp.challenges_size(), 2);
  EXPECT_EQ(resp.challenges(0).algorithm(), "SHA-256");
  EXPECT_EQ(resp.challenges(1).algorithm(), "MD5");
  for (const auto& c : resp.challenges()) {
    EXPECT_EQ(c.realm(), "example.com");
    EXPECT_EQ(c.qop(), "auth");
    EXPECT_FALSE(c.stale());
    EXPECT_NE(c.header_value().find("nonce=\"" + c.nonce() + "\""), std::string::npos);
    EXPECT_NE(c.header_value().find("algorithm=" + c.algorithm()), std::string::npos);
  }
  EXPECT_EQ(metric("medius_registrar_auth_failures_total{reason=\"missing\"}"), 1);
  EXPECT_EQ(metric("medius_registrar_register_requests_total{result=\"unauthorized\"}"), 1);
  // No credentials: the normal first step, not a failed guess.
  EXPECT_FALSE(resp.credentials_rejected());
  EXPECT_TRUE(store_.lookup(kAlice, clock_.nowMs()).empty());
}

TEST_F(RegistrarTest, Sha256AuthenticationSucceeds) {
  auto resp = authed(test::registerRequest(kAlice, "sip:alice@192.0.2.10:5070"), "alice", "secret-alice");
  ASSERT_EQ(resp.result(), RegisterResponse::RESULT_OK) << resp.reason();
  EXPECT_EQ(resp.authenticated_user(), "alice");
  ASSERT_EQ(resp.bindings_size(), 1);
  const auto& b = resp.bindings(0);
  EXPECT_EQ(b.contact_uri(), "sip:alice@192.0.2.10:5070");
  EXPECT_EQ(b.expires_in(), 3600u);  // default
  EXPECT_EQ(b.user_agent(), "test-ua/1.0");
  EXPECT_EQ(b.received().host(), "192.0.2.10");
  EXPECT_EQ(b.gateway_id(), "gw1");
  EXPECT_EQ(metric("medius_registrar_register_requests_total{result=\"ok\"}"), 1);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].kind(), BindingEvent::KIND_ADDED);
}

TEST_F(RegistrarTest, Md5AuthenticationSucceeds) {
  auto resp = authed(test::registerRequest("sip:bob@example.com", "sip:bob@192.0.2.11"), "bob",
                     "secret-bob", "MD5");
  EXPECT_EQ(resp.result(), RegisterResponse::RESULT_OK) << resp.reason();
}

TEST_F(RegistrarTest, WrongPasswordIsUnauthorized) {
  auto resp = authed(test::registerRequest(kAlice, "sip:alice@192.0.2.10"), "alice", "wrong");
  EXPECT_EQ(resp.result(), RegisterResponse::RESULT_UNAUTHORIZED);
  EXPECT_EQ(resp.challenges_size(), 2);
  EXPECT_FALSE(resp.challenges(0).stale());
  EXPECT_EQ(metric("medius_registrar_auth_failures_total{reason=\"bad_response\"}"), 1);
  EXPECT_TRUE(resp.credentials_rejected());
  EXPECT_TRUE(store_.lookup(kAlice, clock_.nowMs()).empty());
}

TEST_F(RegistrarTest, UnknownUserIsUnauthorized) {
  auto resp = authed(test::registerRequest(kAlice, "sip:alice@192.0.2.10"), "mallory", "x");
  EXPECT_EQ(resp.result(), RegisterResponse::RESULT_UNAUTHORIZED);
  EXPECT_EQ(metric("medius_registrar_auth_failures_total{reason=\"unknown_user\"}"), 1);
  EXPECT_TRUE(resp.credentials_rejected());
}

TEST_F(RegistrarTest, WrongRealmIsUnauthorized) {
  auto req = test::registerRequest(kAlice, "sip:alice@192.0.2.10");
  auto first = registrar_.handleRegister(req);
  auto ch = first.challenges(0);
  ch.set_realm("other.org");
  *req.mutable_credentials() = test::answer(ch, "alice", "secret-alice");
  EXPECT_EQ(registrar_.handleRegister(req).result(), RegisterResponse::RESULT_UNAUTHORIZED);
}

TEST_F(RegistrarTest, MalformedCredentialsAreUnauthorized) {
  auto req = test::registerRequest(kAlice, "sip:alice@192.0.2.10");
  auto ch = registrar_.handleRegister(req).challenges(0);
  auto good = test::answer(ch, "alice", "secret-alice");
  auto tryWith = [&](auto mutate) {
    auto c = good;
    mutate(c);
    *req.mutable_credentials() = c;
    auto resp = registrar_.handleRegister(req);
    EXPECT_EQ(resp.credentials_rejected(), resp.result() == RegisterResponse::RESULT_UNAUTHORIZED);
    return resp.result();
  };
  EXPECT_EQ(tryWith([](auto& c) { c.set_qop(""); }), RegisterResponse::RESULT_UNAUTHORIZED);
  EXPECT_EQ(tryWith([](auto& c) { c.set_nc("1"); }), RegisterResponse::RESULT_UNAUTHORIZED);
  EXPECT_EQ(tryWith([](auto& c) { c.set_opaque("forged"); }), RegisterResponse::RESULT_UNAUTHORIZED);
  EXPECT_EQ(tryWith([](auto& c) { c.set_nonce("garbage"); }), RegisterResponse::RESULT_UNAUTHORIZED);
  EXPECT_EQ(tryWith([](auto& c) { c.set_algorithm("SHA-512"); }), RegisterResponse::RESULT_UNAUTHORIZED);
  EXPECT_EQ(metric("medius_registrar_auth_failures_total{reason=\"malformed\"}"), 5);
  // The untouched credentials still work afterwards.
  EXPECT_EQ(tryWith([](auto&) {}), RegisterResponse::RESULT_OK);
}

TEST_F(RegistrarTest, StaleNonceWithCorrectResponseGetsStaleChallenge) {
  auto req = test::registerRequest(kAlice, "sip:alice@192.0.2.10");
  auto ch = registrar_.handleRegister(req).challenges(0);
  clock_.advanceMs(301'000);  // past nonce_ttl_seconds
  *req.mutable_credentials() = test::answer(ch, "alice", "secret-alice");
  auto resp = registrar_.handleRegister(req);
  EXPECT_EQ(resp.result(), RegisterResponse::RESULT_UNAUTHORIZED);
  ASSERT_GT(resp.challenges_size(), 0);
  EXPECT_TRUE(resp.challenges(0).stale());
  EXPECT_NE(resp.challenges(0).header_value().find("stale=true"), std::string::npos);
  EXPECT_FALSE(resp.credentials_rejected());  // the password was right
  EXPECT_EQ(metric("medius_registrar_auth_failures_total{reason=\"stale\"}"), 1);
  // A stale nonce with a wrong password is not "stale": no hint that the password was right.
  *req.mutable_credentials() = test::answer(ch, "alice", "wrong");
  auto wrong = registrar_.handleRegister(req);
  EXPECT_FALSE(wrong.challenges(0).stale());
  EXPECT_TRUE(wrong.credentials_rejected());
}

TEST_F(RegistrarTest, ReplayedNonceCountIsRejected) {
  auto req = test::registerRequest(kAlice, "sip:alice@192.0.2.10");
  auto ch = registrar_.handleRegister(req).challenges(0);
  *req.mutable_credentials() = test::answer(ch, "alice", "secret-alice", 1);
  ASSERT_EQ(registrar_.handleRegister(req).result(), RegisterResponse::RESULT_OK);
  req.set_cseq(2);
  auto replay = registrar_.handleRegister(req);  // same nc=1
  EXPECT_EQ(replay.result(), RegisterResponse::RESULT_UNAUTHORIZED);
  EXPECT_FALSE(replay.challenges(0).stale());
  EXPECT_FALSE(replay.credentials_rejected());
  EXPECT_EQ(metric("medius_registrar_auth_failures_total{reason=\"replayed\"}"), 1);
  // The next count of the same nonce is fine (RFC 7616 nonce reuse).
  req.set_cseq(3);
  *req.mutable_credentials() = test::answer(ch, "alice", "secret-alice", 2);
  EXPECT_EQ(registrar_.handleRegister(req).result(), RegisterResponse::RESULT_OK);
}

TEST_F(RegistrarTest, AnotherUsersAorIsForbidden) {
  auto resp = authed(test::registerRequest("sip:bob@example.com", "sip:x@192.0.2.10"), "alice",
                     "secret-alice");
  EXPECT_EQ(resp.result(), RegisterResponse::RESULT_FORBIDDEN);
  EXPECT_EQ(metric("medius_registrar_register_requests_total{result=\"forbidden\"}"), 1);
}

TEST_F(RegistrarTest, ForeignDomainIsNotFound) {
  auto resp = registrar_.handleRegister(test::registerRequest("sip:alice@other.org", "sip:a@1"));
  EXPECT_EQ(resp.result(), RegisterResponse::RESULT_NOT_FOUND);
}

TEST_F(RegistrarTest, MalformedRequestsThrowInvalidRequest) {
  EXPECT_THROW(registrar_.handleRegister(test::registerRequest("", "sip:a@1")), InvalidRequest);
  EXPECT_THROW(registrar_.handleRegister(test::registerRequest("alice", "sip:a@1")), InvalidRequest);
  EXPECT_THROW(registrar_.handleRegister(test::registerRequest(kAlice, "sip:a@1", 1, "")),
               InvalidRequest);
}

TEST_F(OpenRegistrarTest, ExpiryRulesAndIntervalTooBrief) {
  auto req = test::registerRequest(kAlice, "sip:a@1");
  req.set_expires(30);
  auto brief = registrar_.handleRegister(req);
  EXPECT_EQ(brief.result(), RegisterResponse::RESULT_INTERVAL_TOO_BRIEF);
  EXPECT_EQ(brief.min_expires(), 60u);
  req.set_expires(100000);
  req.set_cseq(2);
  auto clamped = registrar_.handleRegister(req);
  ASSERT_EQ(clamped.result(), RegisterResponse::RESULT_OK);
  EXPECT_EQ(clamped.bindings(0).expires_in(), 7200u);
  req.set_cseq(3);
  req.mutable_contacts(0)->set_expires(120);  // parameter wins over the header
  EXPECT_EQ(registrar_.handleRegister(req).bindings(0).expires_in(), 120u);
  EXPECT_EQ(metric("medius_registrar_register_requests_total{result=\"interval_too_brief\"}"), 1);
}

TEST_F(OpenRegistrarTest, RefreshRemoveAndEvents) {
  auto req = test::registerRequest(kAlice, "sip:a@1");
  req.set_expires(600);
  ASSERT_EQ(registrar_.handleRegister(req).result(), RegisterResponse::RESULT_OK);
  clock_.advanceMs(100'000);
  req.set_cseq(2);
  auto refreshed = registrar_.handleRegister(req);
  ASSERT_EQ(refreshed.bindings_size(), 1);
  EXPECT_EQ(refreshed.bindings(0).expires_in(), 600u);
  EXPECT_EQ(refreshed.bindings(0).cseq(), 2u);
  req.set_cseq(3);
  req.set_expires(0);
  auto removed = registrar_.handleRegister(req);
  EXPECT_EQ(removed.result(), RegisterResponse::RESULT_OK);
  EXPECT_EQ(removed.bindings_size(), 0);
  ASSERT_EQ(events_.size(), 3u);
  EXPECT_EQ(events_[0].kind(), BindingEvent::KIND_ADDED);
  EXPECT_EQ(events_[1].kind(), BindingEvent::KIND_REFRESHED);
  EXPECT_EQ(events_[2].kind(), BindingEvent::KIND_REMOVED);
}

TEST_F(OpenRegistrarTest, ResponseListsAllContactsAndQueryChangesNothing) {
  auto r1 = test::registerRequest(kAlice, "sip:a@1", 1, "c1");
  registrar_.handleRegister(r1);
  auto r2 = test::registerRequest(kAlice, "sip:a@2", 1, "c2");
  r2.set_expires(300);
  auto resp = registrar_.handleRegister(r2);
  ASSERT_EQ(resp.bindings_size(), 2);
  auto query = test::registerRequest(kAlice, "", 1, "c3");
  auto q = registrar_.handleRegister(query);
  EXPECT_EQ(q.result(), RegisterResponse::RESULT_OK);
  EXPECT_EQ(q.bindings_size(), 2);
}

TEST_F(OpenRegistrarTest, WildcardRemovesAllButOnlyWithExpiresZero) {
  registrar_.handleRegister(test::registerRequest(kAlice, "sip:a@1", 1, "c1"));
  registrar_.handleRegister(test::registerRequest(kAlice, "sip:a@2", 1, "c2"));
  auto star = test::registerRequest(kAlice, "", 1, "c3");
  star.set_wildcard(true);
  EXPECT_EQ(registrar_.handleRegister(star).result(), RegisterResponse::RESULT_BAD_REQUEST);
  star.set_expires(0);
  star.add_contacts()->set_uri("sip:a@3");
  EXPECT_EQ(registrar_.handleRegister(star).result(), RegisterResponse::RESULT_BAD_REQUEST);
  star.clear_contacts();
  auto resp = registrar_.handleRegister(star);
  EXPECT_EQ(resp.result(), RegisterResponse::RESULT_OK);
  EXPECT_EQ(resp.bindings_size(), 0);
  EXPECT_TRUE(registrar_.lookup(kAlice).empty());
}

TEST_F(OpenRegistrarTest, OutOfOrderCSeqIsRefused) {
  auto req = test::registerRequest(kAlice, "sip:a@1", 5, "same-call");
  ASSERT_EQ(registrar_.handleRegister(req).result(), RegisterResponse::RESULT_OK);
  req.set_cseq(5);
  EXPECT_EQ(registrar_.handleRegister(req).result(), RegisterResponse::RESULT_OUT_OF_ORDER);
  req.set_cseq(4);
  EXPECT_EQ(registrar_.handleRegister(req).result(), RegisterResponse::RESULT_OUT_OF_ORDER);
  // Another Call-ID (a rebooted UA) may use any CSeq.
  req.set_call_id("new-call");
  req.set_cseq(1);
  EXPECT_EQ(registrar_.handleRegister(req).result(), RegisterResponse::RESULT_OK);
  EXPECT_EQ(metric("medius_registrar_register_requests_total{result=\"out_of_order\"}"), 2);
}

TEST_F(OpenRegistrarTest, InstanceIdAndRegIdKeyTheBinding) {
  auto req = test::registerRequest(kAlice, "sip:alice@192.0.2.1:5060", 1, "c1");
  req.mutable_contacts(0)->set_instance_id("urn:uuid:00000000-0000-1000-8000-000A95A0E128");
  req.mutable_contacts(0)->set_reg_id(1);
  registrar_.handleRegister(req);
  // Same instance and reg-id from a new address (NAT rebinding): replaces, not adds.
  req.mutable_contacts(0)->set_uri("sip:alice@192.0.2.2:5060");
  req.set_cseq(2);
  auto resp = registrar_.handleRegister(req);
  ASSERT_EQ(resp.bindings_size(), 1);
  EXPECT_EQ(resp.bindings(0).contact_uri(), "sip:alice@192.0.2.2:5060");
  EXPECT_EQ(resp.bindings(0).reg_id(), 1u);
  // Another reg-id of the same instance is a second flow.
  req.mutable_contacts(0)->set_reg_id(2);
  req.set_cseq(3);
  EXPECT_EQ(registrar_.handleRegister(req).bindings_size(), 2);
}

TEST_F(OpenRegistrarTest, TooManyContactsIsRefusedAtomically) {
  auto req = test::registerRequest(kAlice, "sip:a@1", 1, "c1");
  req.add_contacts()->set_uri("sip:a@2");
  req.add_contacts()->set_uri("sip:a@3");
  ASSERT_EQ(registrar_.handleRegister(req).result(), RegisterResponse::RESULT_OK);
  auto more = test::registerRequest(kAlice, "sip:a@4", 1, "c2");
  auto resp = registrar_.handleRegister(more);
  EXPECT_EQ(resp.result(), RegisterResponse::RESULT_TOO_MANY_CONTACTS);
  EXPECT_EQ(registrar_.lookup(kAlice).size(), 3u);
  // Refreshing existing contacts is still fine.
  auto refresh = test::registerRequest(kAlice, "sip:a@1", 2, "c1");
  EXPECT_EQ(registrar_.handleRegister(refresh).result(), RegisterResponse::RESULT_OK);
}

TEST_F(OpenRegistrarTest, LookupOrdersByQThenRecency) {
  auto r1 = test::registerRequest(kAlice, "sip:low@1", 1, "c1");
  r1.mutable_contacts(0)->set_q_millis(500);
  registrar_.handleRegister(r1);
  clock_.advanceMs(1000);
  registrar_.handleRegister(test::registerRequest(kAlice, "sip:old@1", 1, "c2"));
  clock_.advanceMs(1000);
  registrar_.handleRegister(test::registerRequest(kAlice, "sip:new@1", 1, "c3"));
  auto b = registrar_.lookup(kAlice);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].contact_uri(), "sip:new@1");
  EXPECT_EQ(b[1].contact_uri(), "sip:old@1");
  EXPECT_EQ(b[2].contact_uri(), "sip:low@1");
}

medius::v1::ReportFlowRequest flowReport(const std::string& host, std::uint32_t port,
                                         medius::v1::Flow::State state,
                                         const std::string& gateway = "gw1") {
  medius::v1::ReportFlowRequest r;
  r.set_aor(kAlice);
  r.mutable_received()->set_host(host);
  r.mutable_received()->set_port(port);
  r.mutable_received()->set_transport(medius::v1::TRANSPORT_UDP);
  r.set_gateway_id(gateway);
  r.set_state(state);
  r.set_reason("keepalive timeout");
  return r;
}

TEST_F(OpenRegistrarTest, ADeadFlowHidesItsBindingsFromLookupUntilTheNextRegister) {
  auto nated = test::registerRequest(kAlice, "sip:alice@10.200.10.5:5060", 1, "c1");
  nated.mutable_flow()->set_nat(true);
  ASSERT_EQ(registrar_.handleRegister(nated).result(), RegisterResponse::RESULT_OK);
  auto other = test::registerRequest(kAlice, "sip:alice@192.0.2.20:5060", 1, "c2");
  other.mutable_received()->set_host("192.0.2.20");
  other.mutable_received()->set_port(5060);
  ASSERT_EQ(registrar_.handleRegister(other).result(), RegisterResponse::RESULT_OK);
  auto both = registrar_.lookup(kAlice);
  ASSERT_EQ(both.size(), 2u);
  for (const auto& b : both) EXPECT_EQ(b.flow().state(), medius::v1::Flow::STATE_ACTIVE);

  // Another gateway's flow with the same address, or another port: nothing changes.
  EXPECT_EQ(registrar_.reportFlow(flowReport("192.0.2.10", 5070, medius::v1::Flow::STATE_UNREACHABLE,
                                             "gw2")),
            0u);
  EXPECT_EQ(registrar_.reportFlow(flowReport("192.0.2.10", 5071, medius::v1::Flow::STATE_UNREACHABLE)),
            0u);
  clock_.advanceMs(5000);
  events_.clear();
  EXPECT_EQ(registrar_.reportFlow(flowReport("192.0.2.10", 5070, medius::v1::Flow::STATE_UNREACHABLE)),
            1u);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].kind(), BindingEvent::KIND_REFRESHED);
  EXPECT_EQ(events_[0].binding().flow().state(), medius::v1::Flow::STATE_UNREACHABLE);
  auto left = registrar_.lookup(kAlice);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].contact_uri(), "sip:alice@192.0.2.20:5060");
  auto all = registrar_.lookup(kAlice, true);
  ASSERT_EQ(all.size(), 2u);
  auto listed = registrar_.list("");
  ASSERT_EQ(listed.size(), 2u);
  const auto& dead = listed[0].contact_uri() == "sip:alice@10.200.10.5:5060" ? listed[0] : listed[1];
  EXPECT_EQ(dead.flow().state(), medius::v1::Flow::STATE_UNREACHABLE);
  EXPECT_EQ(dead.flow().reason(), "keepalive timeout");
  EXPECT_TRUE(dead.flow().nat());
  EXPECT_EQ(dead.flow().state_changed_at_ms(), clock_.nowMs());
  EXPECT_EQ(metric("medius_registrar_flows_unreachable_total"), 1);
  // Reported again: no change, no event.
  events_.clear();
  EXPECT_EQ(registrar_.reportFlow(flowReport("192.0.2.10", 5070, medius::v1::Flow::STATE_UNREACHABLE)),
            0u);
  EXPECT_TRUE(events_.empty());

  // A REGISTER over a live flow makes it reachable again.
  nated.set_cseq(2);
  ASSERT_EQ(registrar_.handleRegister(nated).result(), RegisterResponse::RESULT_OK);
  EXPECT_EQ(registrar_.lookup(kAlice).size(), 2u);
  // So does the gateway's report that the flow is alive.
  registrar_.reportFlow(flowReport("192.0.2.10", 5070, medius::v1::Flow::STATE_UNREACHABLE));
  EXPECT_EQ(registrar_.lookup(kAlice).size(), 1u);
  EXPECT_EQ(registrar_.reportFlow(flowReport("192.0.2.10", 5070, medius::v1::Flow::STATE_ACTIVE)), 1u);
  EXPECT_EQ(registrar_.lookup(kAlice).size(), 2u);
}

TEST_F(OpenRegistrarTest, ReportFlowRefusesIncompleteReports) {
  auto r = flowReport("192.0.2.10", 5070, medius::v1::Flow::STATE_UNSPECIFIED);
  EXPECT_THROW(registrar_.reportFlow(r), InvalidRequest);
  r.set_state(medius::v1::Flow::STATE_UNREACHABLE);
  r.clear_gateway_id();
  EXPECT_THROW(registrar_.reportFlow(r), InvalidRequest);
  r.set_gateway_id("gw1");
  r.clear_aor();
  EXPECT_THROW(registrar_.reportFlow(r), InvalidRequest);
}

TEST_F(OpenRegistrarTest, SweepExpiresBindingsAndUpdatesGauge) {
  auto req = test::registerRequest(kAlice, "sip:a@1");
  req.set_expires(60);
  registrar_.handleRegister(req);
  registrar_.handleRegister(test::registerRequest("sip:bob@example.com", "sip:b@1"));
  EXPECT_EQ(registrar_.sweep(), 0u);
  EXPECT_EQ(metric("medius_registrar_bindings"), 2);
  clock_.advanceMs(60'000);
  EXPECT_TRUE(registrar_.lookup(kAlice).empty());  // gone at its expiry, before the sweep
  EXPECT_EQ(registrar_.sweep(), 1u);
  EXPECT_EQ(metric("medius_registrar_bindings"), 1);
  EXPECT_EQ(events_.back().kind(), BindingEvent::KIND_EXPIRED);
  EXPECT_EQ(events_.back().binding().contact_uri(), "sip:a@1");
  clock_.advanceMs(3600'000);
  registrar_.sweep();
  EXPECT_EQ(metric("medius_registrar_bindings"), 0);
}

TEST_F(OpenRegistrarTest, RemoveBindingsAdministratively) {
  auto req = test::registerRequest(kAlice, "sip:a@1");
  req.add_contacts()->set_uri("sip:a@2");
  registrar_.handleRegister(req);
  EXPECT_EQ(registrar_.removeBindings(kAlice, "sip:a@2"), 1u);
  EXPECT_EQ(registrar_.removeBindings(kAlice, ""), 1u);
  EXPECT_EQ(registrar_.removeBindings(kAlice, ""), 0u);
}

TEST_F(RegistrarTest, VerifyDigestForOtherMethods) {
  auto ch = registrar_.challenges(false);
  ASSERT_EQ(ch.size(), 2u);
  auto creds = test::answer(ch[1], "bob", "secret-bob", 1, "INVITE");
  auto ok = registrar_.verifyDigest(creds);
  EXPECT_EQ(ok.result(), medius::v1::VerifyDigestResponse::RESULT_OK);
  EXPECT_EQ(ok.aor(), "sip:bob@example.com");
  EXPECT_EQ(registrar_.verifyDigest(creds).result(), medius::v1::VerifyDigestResponse::RESULT_REPLAYED);
  auto bad = test::answer(ch[0], "bob", "nope", 1, "INVITE");
  auto invalid = registrar_.verifyDigest(bad);
  EXPECT_EQ(invalid.result(), medius::v1::VerifyDigestResponse::RESULT_INVALID);
  EXPECT_EQ(invalid.challenges_size(), 2);
  clock_.advanceMs(400'000);
  auto stale = registrar_.verifyDigest(test::answer(ch[0], "bob", "secret-bob", 5, "INVITE"));
  EXPECT_EQ(stale.result(), medius::v1::VerifyDigestResponse::RESULT_STALE);
  EXPECT_TRUE(stale.challenges(0).stale());
}

}  // namespace
}  // namespace medius::registrar
