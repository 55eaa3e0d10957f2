// Authentication of calls and the identity headers (call_auth.hpp), on texts parsed by
// Sofia's own parser and on registrar answers built by hand (no sockets, no loop).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su.h>

#include "medius/gateway/call_auth.hpp"

namespace medius::gateway {
namespace {

struct MsgDeleter {
  void operator()(msg_t* m) const { msg_destroy(m); }
};
using MsgPtr = std::unique_ptr<msg_t, MsgDeleter>;

MsgPtr parse(const std::string& text) {
  static const int init = su_init();
  (void)init;
  return MsgPtr(msg_make(sip_default_mclass(), 0, text.data(), static_cast<ssize_t>(text.size())));
}

std::string requestText(const std::string& method, const std::string& headers,
                        const std::string& toTag = "") {
  return method + " sip:+14255550101@example.com SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK1\r\n"
         "From: \"Alice\" <sip:alice@example.com>;tag=1\r\n"
         "To: <sip:+14255550101@example.com>" + (toTag.empty() ? "" : ";tag=" + toTag) + "\r\n"
         "Call-ID: call-1\r\n"
         "CSeq: 1 " + method + "\r\n" + headers + "Content-Length: 0\r\n\r\n";
}

v1::DigestChallenge challenge(const std::string& header) {
  v1::DigestChallenge c;
  c.set_header_value(header);
  return c;
}

TEST(CallAuth, WhichRequestsNeedCredentials) {
  auto needs = [](const std::string& method, Side side, CallAuthMode mode,
                  const std::string& toTag = "") {
    MsgPtr msg = parse(requestText(method, "", toTag));
    EXPECT_TRUE(msg) << method;
    return needsCredentials(sip_object(msg.get()), side, mode);
  };
  for (const char* m : {"INVITE", "MESSAGE", "SUBSCRIBE", "REFER", "BYE", "FROBNICATE"}) {
    EXPECT_TRUE(needs(m, Side::Internal, CallAuthMode::Required)) << m;
    EXPECT_FALSE(needs(m, Side::Internal, CallAuthMode::Off)) << m;
    // The trunk side is checked by address (the trunk ACL), not by digest.
    EXPECT_FALSE(needs(m, Side::Trunk, CallAuthMode::Required)) << m;
  }
  for (const char* m : {"REGISTER", "OPTIONS", "ACK", "CANCEL"}) {
    EXPECT_FALSE(needs(m, Side::Internal, CallAuthMode::Required)) << m;
  }
  // In a dialog the dialog's leg decides (a re-INVITE is not challenged).
  EXPECT_FALSE(needs("INVITE", Side::Internal, CallAuthMode::Required, "abc"));
}

TEST(CallAuth, ATrustedTlsPeerNeedsNoCredentials) {
  for (const char* m : {"INVITE", "MESSAGE", "SUBSCRIBE"}) {
    MsgPtr msg = parse(requestText(m, "", ""));
    ASSERT_TRUE(msg) << m;
    EXPECT_TRUE(needsCredentials(sip_object(msg.get()), Side::Internal, CallAuthMode::Required,
                                 false))
        << m;
    EXPECT_FALSE(needsCredentials(sip_object(msg.get()), Side::Internal, CallAuthMode::Required,
                                  true))
        << m;
  }
}

TEST(CallAuth, ProxyCredentialsForOurRealmOnly) {
  MsgPtr msg = parse(requestText(
      "INVITE",
      "Proxy-Authorization: Digest username=\"mallory\", realm=\"other.net\", nonce=\"x\", "
      "uri=\"sip:x\", response=\"00\"\r\n"
      "Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"n1\", "
      "uri=\"sip:+14255550101@example.com\", response=\"ABCDEF\", algorithm=SHA-256, qop=auth, "
      "nc=00000002, cnonce=\"c1\", opaque=\"op\"\r\n"
      "Authorization: Digest username=\"bob\", realm=\"example.com\", nonce=\"n2\", uri=\"sip:x\", "
      "response=\"11\"\r\n"));
  ASSERT_TRUE(msg);
  const sip_t* sip = sip_object(msg.get());
  auto c = digestCredentials(sip->sip_proxy_authorization, "example.com", "INVITE");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->username(), "alice");
  EXPECT_EQ(c->realm(), "example.com");
  EXPECT_EQ(c->nonce(), "n1");
  EXPECT_EQ(c->uri(), "sip:+14255550101@example.com");
  EXPECT_EQ(c->response(), "abcdef");
  EXPECT_EQ(c->algorithm(), "SHA-256");
  EXPECT_EQ(c->qop(), "auth");
  EXPECT_EQ(c->nc(), "00000002");
  EXPECT_EQ(c->cnonce(), "c1");
  EXPECT_EQ(c->opaque(), "op");
  EXPECT_EQ(c->method(), "INVITE");
  EXPECT_FALSE(digestCredentials(sip->sip_proxy_authorization, "nowhere.org", "INVITE"));
  // The Authorization header (a UAS's challenge) is not what a proxy challenge gets back.
  MsgPtr plain = parse(requestText(
      "INVITE", "Authorization: Digest username=\"bob\", realm=\"example.com\", nonce=\"n2\"\r\n"));
  EXPECT_FALSE(digestCredentials(sip_object(plain.get())->sip_proxy_authorization, "example.com",
                                 "INVITE"));
}

TEST(CallAuth, ChallengeIs407OrUnavailable) {
  v1::ChallengeResponse response;
  *response.add_challenges() = challenge("Digest realm=\"example.com\", nonce=\"a\", algorithm=SHA-256");
  *response.add_challenges() = challenge("Digest realm=\"example.com\", nonce=\"b\", algorithm=MD5");
  SipReply r = challengeReply(grpc::Status::OK, response, 9);
  EXPECT_EQ(r.status, 407);
  EXPECT_EQ(r.count("Proxy-Authenticate"), 2u);
  EXPECT_NE(r.header("Proxy-Authenticate")->find("SHA-256"), std::string::npos);  // order kept
  EXPECT_EQ(r.count("WWW-Authenticate"), 0u);

  r = challengeReply(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), {}, 9);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("Retry-After").value_or(""), "9");
  r = challengeReply(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late"), {}, 9);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.phrase, "Registrar Timeout");
  // A registrar that gives no challenge cannot be answered: never a bare 407.
  r = challengeReply(grpc::Status::OK, v1::ChallengeResponse(), 9);
  EXPECT_EQ(r.status, 503);
}

TEST(CallAuth, VerifyVerdicts) {
  using R = v1::VerifyDigestResponse;
  v1::VerifyDigestResponse ok;
  ok.set_result(R::RESULT_OK);
  ok.set_aor("sip:alice@example.com");
  AuthVerdict v = verifyVerdict(grpc::Status::OK, ok, "sip:alice@example.com", true, 5);
  ASSERT_TRUE(v.identity.has_value());
  EXPECT_EQ(v.identity->aor, "sip:alice@example.com");
  EXPECT_FALSE(v.failure.has_value());
  // sips: in the From names the same user.
  EXPECT_TRUE(verifyVerdict(grpc::Status::OK, ok, "sips:alice@example.com", true, 5).identity);

  // alice's credentials, bob's From: refused, or (configured) the call is alice's.
  v = verifyVerdict(grpc::Status::OK, ok, "sip:bob@example.com", true, 5);
  EXPECT_FALSE(v.identity.has_value());
  EXPECT_EQ(v.reply.status, 403);
  EXPECT_EQ(v.failure, AuthFailure::FromMismatch);
  v = verifyVerdict(grpc::Status::OK, ok, "sip:bob@example.com", false, 5);
  ASSERT_TRUE(v.identity.has_value());
  EXPECT_EQ(v.identity->aor, "sip:alice@example.com");

  struct Case {
    R::Result result;
    AuthFailure failure;
  };
  for (Case c : {Case{R::RESULT_INVALID, AuthFailure::Invalid},
                 Case{R::RESULT_STALE, AuthFailure::Stale},
                 Case{R::RESULT_REPLAYED, AuthFailure::Replayed}}) {
    v1::VerifyDigestResponse bad;
    bad.set_result(c.result);
    *bad.add_challenges() = challenge(c.result == R::RESULT_STALE
                                          ? "Digest realm=\"example.com\", nonce=\"f\", stale=true"
                                          : "Digest realm=\"example.com\", nonce=\"f\"");
    v = verifyVerdict(grpc::Status::OK, bad, "sip:alice@example.com", true, 5);
    EXPECT_FALSE(v.identity.has_value()) << c.result;
    EXPECT_EQ(v.reply.status, 407) << c.result;
    EXPECT_EQ(v.reply.count("Proxy-Authenticate"), 1u);
    EXPECT_EQ(v.failure, c.failure);
    if (c.result == R::RESULT_STALE) {
      EXPECT_NE(v.reply.header("Proxy-Authenticate")->find("stale=true"), std::string::npos);
    }
  }
  // Never through when the registrar cannot say: 503, and an OK without an AOR is no OK.
  v = verifyVerdict(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), ok,
                    "sip:alice@example.com", true, 5);
  EXPECT_FALSE(v.identity.has_value());
  EXPECT_EQ(v.reply.status, 503);
  EXPECT_EQ(v.failure, AuthFailure::Unavailable);
  v1::VerifyDigestResponse empty;
  empty.set_result(R::RESULT_OK);
  EXPECT_FALSE(verifyVerdict(grpc::Status::OK, empty, "sip:@example.com", true, 5).identity);
  EXPECT_FALSE(verifyVerdict(grpc::Status::OK, v1::VerifyDigestResponse(), "", true, 5).identity);
}

TEST(CallAuth, AssertedIdentityHeaders) {
  MsgPtr msg = parse(requestText(
      "INVITE", "P-Asserted-Identity: \"Boss\" <sip:+14255550199@example.com;user=phone>\r\n"
                "P-Asserted-Identity: <tel:+14255550199>\r\n"));
  ASSERT_TRUE(msg);
  EXPECT_EQ(assertedIdentity(sip_object(msg.get())), "sip:+14255550199@example.com;user=phone");
  MsgPtr bare = parse(requestText("INVITE", "p-asserted-identity: sip:4255550199@pstn.example;x=1\r\n"));
  EXPECT_EQ(assertedIdentity(sip_object(bare.get())), "sip:4255550199@pstn.example");
  MsgPtr none = parse(requestText("INVITE", "P-Preferred-Identity: <sip:boss@example.com>\r\n"));
  EXPECT_EQ(assertedIdentity(sip_object(none.get())), "");
  MsgPtr broken = parse(requestText("INVITE", "P-Asserted-Identity: <sip:unterminated\r\n"));
  EXPECT_EQ(assertedIdentity(sip_object(broken.get())), "");

  EXPECT_EQ(assertedIdentityValue("", "4255550100", "127.0.0.1"), "<sip:4255550100@127.0.0.1>");
  EXPECT_EQ(assertedIdentityValue("Alice \"A\"", "+14255550100", "gw.example.com"),
            "\"Alice \\\"A\\\"\" <sip:+14255550100@gw.example.com>");
}

TEST(CallAuth, PrivacyIdIsAmongThePrivacyValues) {
  auto privacy = [](const std::string& header) {
    MsgPtr msg = parse(requestText("INVITE", header));
    return privacyId(sip_object(msg.get()));
  };
  EXPECT_TRUE(privacy("Privacy: id\r\n"));
  EXPECT_TRUE(privacy("Privacy: header;ID\r\n"));
  EXPECT_TRUE(privacy("Privacy: id; critical\r\n"));
  EXPECT_FALSE(privacy("Privacy: none\r\n"));
  EXPECT_FALSE(privacy("Privacy: header;user\r\n"));
  EXPECT_FALSE(privacy("Privacy: identity\r\n"));
  EXPECT_FALSE(privacy(""));
  EXPECT_FALSE(privacyId(nullptr));
}

TEST(CallAuth, UserLockedReplyIsTheSameForEveryone) {
  SipReply r = userLockedReply();
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.phrase, "Too Many Failed Authentications");
  EXPECT_TRUE(r.headers.empty());
}

TEST(CallAuth, UnknownTrunkReply) {
  SipReply r = unknownTrunkReply();
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.phrase, "Not A Configured Trunk");
}

}  // namespace
}  // namespace medius::gateway
