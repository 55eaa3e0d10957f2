// REGISTER validation/conversion and reply building, on texts parsed by Sofia's own
// parser (no sockets, no loop).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su.h>

#include "medius/gateway/config.hpp"
#include "medius/gateway/register_request.hpp"

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

std::string registerText(const std::string& headers, const std::string& contact = "<sip:alice@192.0.2.5:5070;transport=tcp>",
                         const std::string& to = "<sip:alice@Example.COM>",
                         const std::string& cseq = "7 REGISTER") {
  std::string t = "REGISTER sip:example.com SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK1\r\n"
                  "From: <sip:alice@example.com>;tag=1\r\n"
                  "To: " + to + "\r\n"
                  "Call-ID: call-1\r\n"
                  "CSeq: " + cseq + "\r\n";
  if (!contact.empty()) t += "Contact: " + contact + "\r\n";
  return t + headers + "Content-Length: 0\r\n\r\n";
}

RegisterContext context() {
  RegisterContext ctx;
  ctx.source = {"192.0.2.7", 40000, v1::TRANSPORT_UDP};
  ctx.gatewayId = "gw1";
  ctx.domain = "example.com";
  return ctx;
}

std::variant<v1::RegisterRequest, SipReply> build(const std::string& text) {
  MsgPtr msg = parse(text);
  EXPECT_TRUE(msg);
  return buildRegisterRequest(sip_object(msg.get()), context());
}

SipReply rejected(const std::string& text) {
  auto r = build(text);
  EXPECT_TRUE(std::holds_alternative<SipReply>(r)) << text;
  if (auto* reply = std::get_if<SipReply>(&r)) return *reply;
  return {};
}

TEST(RegisterRequest, ConvertsAValidRegister) {
  auto r = build(registerText(
      "Expires: 3600\r\nUser-Agent: Phone/1.0\r\nPath: <sip:edge.example.com;lr>\r\n"
      "Authorization: Digest username=\"alice\", realm=\"other.net\", nonce=\"x\", uri=\"sip:example.com\", response=\"00\"\r\n"
      "Authorization: Digest username=\"ali\\\"ce\", realm=\"example.com\", nonce=\"n1\", "
      "uri=\"sip:example.com\", response=\"ABCDEF\", algorithm=SHA-256, qop=auth, nc=00000001, "
      "cnonce=\"c1\", opaque=\"op\"\r\n",
      "<sip:alice@192.0.2.5:5070;transport=tcp>;expires=120;q=0.5;+sip.instance=\"<urn:uuid:1234>\";reg-id=2, "
      "<sip:alice@192.0.2.6>"));
  ASSERT_TRUE(std::holds_alternative<v1::RegisterRequest>(r));
  const auto& req = std::get<v1::RegisterRequest>(r);
  EXPECT_EQ(req.aor(), "sip:alice@example.com");
  ASSERT_EQ(req.contacts_size(), 2);
  EXPECT_EQ(req.contacts(0).uri(), "sip:alice@192.0.2.5:5070;transport=tcp");
  EXPECT_EQ(req.contacts(0).expires(), 120u);
  EXPECT_EQ(req.contacts(0).q_millis(), 500u);
  EXPECT_EQ(req.contacts(0).instance_id(), "urn:uuid:1234");
  EXPECT_EQ(req.contacts(0).reg_id(), 2u);
  EXPECT_EQ(req.contacts(1).uri(), "sip:alice@192.0.2.6");
  EXPECT_FALSE(req.contacts(1).has_expires());
  EXPECT_FALSE(req.contacts(1).has_q_millis());
  EXPECT_FALSE(req.wildcard());
  ASSERT_TRUE(req.has_expires());
  EXPECT_EQ(req.expires(), 3600u);
  EXPECT_EQ(req.call_id(), "call-1");
  EXPECT_EQ(req.cseq(), 7u);
  EXPECT_EQ(req.user_agent(), "Phone/1.0");
  ASSERT_EQ(req.path_size(), 1);
  EXPECT_EQ(req.path(0), "<sip:edge.example.com;lr>");
  EXPECT_EQ(req.received().host(), "192.0.2.7");
  EXPECT_EQ(req.received().port(), 40000u);
  EXPECT_EQ(req.received().transport(), v1::TRANSPORT_UDP);
  EXPECT_EQ(req.gateway_id(), "gw1");
  ASSERT_TRUE(req.has_credentials());
  const auto& c = req.credentials();
  EXPECT_EQ(c.username(), "ali\"ce");  // quotes and the backslash escape removed
  EXPECT_EQ(c.realm(), "example.com");
  EXPECT_EQ(c.nonce(), "n1");
  EXPECT_EQ(c.uri(), "sip:example.com");
  EXPECT_EQ(c.response(), "abcdef");
  EXPECT_EQ(c.algorithm(), "SHA-256");
  EXPECT_EQ(c.qop(), "auth");
  EXPECT_EQ(c.nc(), "00000001");
  EXPECT_EQ(c.cnonce(), "c1");
  EXPECT_EQ(c.opaque(), "op");
  EXPECT_EQ(c.method(), "REGISTER");
}

v1::RegisterRequest builtWith(const std::string& text, const RegisterContext& ctx) {
  MsgPtr msg = parse(text);
  EXPECT_TRUE(msg);
  auto r = buildRegisterRequest(sip_object(msg.get()), ctx);
  EXPECT_TRUE(std::holds_alternative<v1::RegisterRequest>(r)) << text;
  if (auto* req = std::get_if<v1::RegisterRequest>(&r)) return *req;
  return {};
}

TEST(RegisterRequest, FlowIsNatWhenTheContactIsNotTheSource) {
  RegisterContext ctx = context();  // from 192.0.2.7:40000 over UDP
  ctx.flowTimerSeconds = 120;
  // The Contact's private address: NAT.
  auto req = builtWith(registerText("", "<sip:alice@10.200.10.5:5060>"), ctx);
  EXPECT_TRUE(req.flow().nat());
  EXPECT_FALSE(req.flow().outbound());
  // The source itself in the Contact, but the Via names another host (192.0.2.5): NAT.
  EXPECT_TRUE(builtWith(registerText("", "<sip:alice@192.0.2.7:40000>"), ctx).flow().nat());
  // The source itself in both: no NAT.
  ctx.source.host = "192.0.2.5";
  ctx.source.port = 5070;
  EXPECT_FALSE(builtWith(registerText("", "<sip:alice@192.0.2.5:5070>"), ctx).flow().nat());
  // (registerText's Via says 192.0.2.5 from here on, as the source does.)
  // Same address, another port over UDP (a port-translating NAT): NAT; 5060 is the default.
  EXPECT_TRUE(builtWith(registerText("", "<sip:alice@192.0.2.5>"), ctx).flow().nat());
  ctx.source.port = 5060;
  EXPECT_FALSE(builtWith(registerText("", "<sip:alice@192.0.2.5>"), ctx).flow().nat());
  // Over TCP the source port is ephemeral: only the address counts.
  ctx.source = {"192.0.2.5", 51234, v1::TRANSPORT_TCP};
  EXPECT_FALSE(builtWith(registerText("", "<sip:alice@192.0.2.5:5060;transport=tcp>"), ctx)
                   .flow()
                   .nat());
  EXPECT_TRUE(builtWith(registerText("", "<sip:alice@10.200.10.5:5060;transport=tcp>"), ctx)
                  .flow()
                  .nat());
  // Behind an edge proxy (Path) the proxy deals with the NAT.
  EXPECT_FALSE(builtWith(registerText("Path: <sip:edge.example.com;lr>\r\n",
                                      "<sip:alice@10.200.10.5:5060>"),
                         ctx)
                   .flow()
                   .nat());
}

TEST(RegisterRequest, FlowIsOutboundOnlyWhenAskedForCompletely) {
  RegisterContext ctx = context();
  ctx.flowTimerSeconds = 120;
  const std::string rfc5626 = "<sip:alice@10.200.10.5:5060>;+sip.instance=\"<urn:uuid:1>\";reg-id=1";
  auto req = builtWith(registerText("Supported: path, outbound\r\n", rfc5626), ctx);
  EXPECT_TRUE(req.flow().outbound());
  EXPECT_EQ(req.flow().flow_timer_seconds(), 120u);
  SipReply ok = SipReply::of(200, "OK");
  addOutboundHeaders(ok, req.flow());
  EXPECT_EQ(ok.header("Require"), "outbound");
  EXPECT_EQ(ok.header("Flow-Timer"), "120");
  SipReply unauthorized = SipReply::of(401, "Unauthorized");
  addOutboundHeaders(unauthorized, req.flow());
  EXPECT_TRUE(unauthorized.headers.empty());
  // No Supported: outbound, no reg-id, outbound off, or through a proxy: not outbound.
  EXPECT_FALSE(builtWith(registerText("", rfc5626), ctx).flow().outbound());
  EXPECT_FALSE(builtWith(registerText("Supported: outbound\r\n",
                                      "<sip:alice@10.200.10.5:5060>;+sip.instance=\"<urn:uuid:1>\""),
                         ctx)
                   .flow()
                   .outbound());
  EXPECT_FALSE(builtWith(registerText("Supported: outbound\r\nPath: <sip:lb;lr>\r\n", rfc5626), ctx)
                   .flow()
                   .outbound());
  ctx.flowTimerSeconds = 0;
  auto off = builtWith(registerText("Supported: outbound\r\n", rfc5626), ctx);
  EXPECT_FALSE(off.flow().outbound());
  SipReply plain = SipReply::of(200, "OK");
  addOutboundHeaders(plain, off.flow());
  EXPECT_TRUE(plain.headers.empty());
}

TEST(RegisterRequest, NoExpiresNoContactIsAQuery) {
  auto r = build(registerText("", ""));
  ASSERT_TRUE(std::holds_alternative<v1::RegisterRequest>(r));
  const auto& req = std::get<v1::RegisterRequest>(r);
  EXPECT_FALSE(req.has_expires());
  EXPECT_EQ(req.contacts_size(), 0);
  EXPECT_FALSE(req.has_credentials());
}

TEST(RegisterRequest, CredentialsForAnotherRealmAreIgnored) {
  auto r = build(registerText(
      "Authorization: Digest username=\"alice\", realm=\"other.net\", nonce=\"x\", uri=\"u\", response=\"00\"\r\n"));
  ASSERT_TRUE(std::holds_alternative<v1::RegisterRequest>(r));
  EXPECT_FALSE(std::get<v1::RegisterRequest>(r).has_credentials());
}

TEST(RegisterRequest, WildcardWithExpiresZero) {
  auto r = build(registerText("Expires: 0\r\n", "*"));
  ASSERT_TRUE(std::holds_alternative<v1::RegisterRequest>(r));
  EXPECT_TRUE(std::get<v1::RegisterRequest>(r).wildcard());
  EXPECT_EQ(std::get<v1::RegisterRequest>(r).contacts_size(), 0);
}

TEST(RegisterRequest, WildcardMisuseIs400) {
  EXPECT_EQ(rejected(registerText("Expires: 60\r\n", "*")).status, 400);
  EXPECT_EQ(rejected(registerText("", "*")).status, 400);
  EXPECT_EQ(rejected(registerText("Expires: 0\r\n", "*, <sip:a@b>")).status, 400);
}

TEST(RegisterRequest, ContactWithoutHostIs400) {
  SipReply r = rejected(registerText("", "<sip:alice@>"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.phrase, "Malformed Contact header");
}

TEST(RegisterRequest, ExpiresNotANumberIs400NamingTheHeader) {
  // Sofia puts "abc" on sip_error with er_name "Expires"; msg_has_error() stays 0.
  SipReply r = rejected(registerText("Expires: abc\r\n"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.phrase, "Malformed Expires header");
  EXPECT_EQ(rejected(registerText("Expires: -5\r\n")).phrase, "Malformed Expires header");
}

TEST(RegisterRequest, HugeExpiresIs400) {
  // Sofia parses this without error as ULONG_MAX: the 32-bit limit is checked by us.
  SipReply r = rejected(registerText("Expires: 99999999999999999999\r\n"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.phrase, "Expires out of range");
  EXPECT_EQ(rejected(registerText("Expires: 4294967296\r\n")).status, 400);
  auto ok = build(registerText("Expires: 4294967295\r\n"));
  ASSERT_TRUE(std::holds_alternative<v1::RegisterRequest>(ok));
  EXPECT_EQ(std::get<v1::RegisterRequest>(ok).expires(), 4294967295u);
}

TEST(RegisterRequest, DateFormExpiresIs400) {
  EXPECT_EQ(rejected(registerText("Expires: Thu, 01 Dec 2044 16:00:00 GMT\r\n")).status, 400);
}

TEST(RegisterRequest, DuplicateExpiresIs400) {
  EXPECT_EQ(rejected(registerText("Expires: 10\r\nExpires: 20\r\n")).phrase,
            "Duplicate Expires header");
}

TEST(RegisterRequest, BadContactParametersAre400) {
  EXPECT_EQ(rejected(registerText("", "<sip:a@b>;expires=abc")).phrase,
            "Bad Contact expires parameter");
  EXPECT_EQ(rejected(registerText("", "<sip:a@b>;expires=99999999999999999999")).phrase,
            "Bad Contact expires parameter");
  EXPECT_EQ(rejected(registerText("", "<sip:a@b>;q=2")).phrase, "Bad Contact q parameter");
  EXPECT_EQ(rejected(registerText("", "<sip:a@b>;reg-id=x")).phrase,
            "Bad Contact reg-id parameter");
}

TEST(RegisterRequest, BadCSeqIs400) {
  EXPECT_EQ(rejected(registerText("", "<sip:a@b>", "<sip:alice@example.com>", "abc REGISTER")).phrase,
            "Malformed CSeq header");
  EXPECT_EQ(rejected(registerText("", "<sip:a@b>", "<sip:alice@example.com>", "1 INVITE")).phrase,
            "CSeq method does not match REGISTER");
}

TEST(RegisterRequest, ToWithoutUserIs400) {
  EXPECT_EQ(rejected(registerText("", "<sip:a@b>", "<sip:example.com>")).phrase,
            "To URI must be sip:user@host");
}

TEST(RegisterRequest, MalformedAuthorizationIs400) {
  EXPECT_EQ(rejected(registerText("Authorization: \"\r\n")).phrase,
            "Malformed Authorization header");
}

TEST(RegisterReply, OkListsEveryBindingWithExpiresAndDate) {
  v1::RegisterResponse resp;
  resp.set_result(v1::RegisterResponse::RESULT_OK);
  auto* b1 = resp.add_bindings();
  b1->set_contact_uri("sip:alice@192.0.2.5:5070;transport=tcp");
  b1->set_expires_in(3599);
  b1->set_instance_id("urn:uuid:1234");
  b1->set_reg_id(1);
  b1->set_q_millis(500);
  auto* b2 = resp.add_bindings();
  b2->set_contact_uri("sip:alice@192.0.2.6");
  b2->set_expires_in(60);
  b2->set_q_millis(1000);
  SipReply r = registerReply(resp, 0);
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(r.count("Contact"), 2u);
  EXPECT_EQ(r.headers[0].second,
            "<sip:alice@192.0.2.5:5070;transport=tcp>;expires=3599;q=0.5;"
            "+sip.instance=\"<urn:uuid:1234>\";reg-id=1");
  EXPECT_EQ(r.headers[1].second, "<sip:alice@192.0.2.6>;expires=60");
  EXPECT_EQ(r.header("Date").value_or(""), "Thu, 01 Jan 1970 00:00:00 GMT");

  // The built headers are valid SIP: Sofia parses them back into two contacts.
  std::string text = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n"
                     "To: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n" +
                     r.headerText() + "Content-Length: 0\r\n\r\n";
  MsgPtr msg = parse(text);
  ASSERT_TRUE(msg);
  sip_t* sip = sip_object(msg.get());
  ASSERT_TRUE(sip && sip->sip_contact && sip->sip_contact->m_next);
  EXPECT_EQ(sip->sip_error, nullptr);
  EXPECT_STREQ(sip->sip_contact->m_expires, "3599");
  EXPECT_STREQ(sip->sip_contact->m_next->m_expires, "60");
  EXPECT_NE(sip->sip_date, nullptr);
}

TEST(RegisterReply, ResultsMapToSipCodes) {
  v1::RegisterResponse resp;
  resp.set_result(v1::RegisterResponse::RESULT_UNAUTHORIZED);
  resp.add_challenges()->set_header_value("Digest realm=\"example.com\", nonce=\"a\", algorithm=SHA-256, qop=\"auth\"");
  resp.add_challenges()->set_header_value("Digest realm=\"example.com\", nonce=\"b\", algorithm=MD5, qop=\"auth\"");
  SipReply r = registerReply(resp, 0);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.count("WWW-Authenticate"), 2u);

  resp.Clear();
  resp.set_result(v1::RegisterResponse::RESULT_INTERVAL_TOO_BRIEF);
  resp.set_min_expires(60);
  r = registerReply(resp, 0);
  EXPECT_EQ(r.status, 423);
  EXPECT_EQ(r.header("Min-Expires").value_or(""), "60");

  auto code = [](v1::RegisterResponse::Result result) {
    v1::RegisterResponse x;
    x.set_result(result);
    x.set_reason("why\r\nInjected: 1");  // not usable as a phrase: the default is used
    return registerReply(x, 0);
  };
  EXPECT_EQ(code(v1::RegisterResponse::RESULT_FORBIDDEN).status, 403);
  EXPECT_EQ(code(v1::RegisterResponse::RESULT_FORBIDDEN).phrase, "Forbidden");
  EXPECT_EQ(code(v1::RegisterResponse::RESULT_OUT_OF_ORDER).status, 500);
  EXPECT_EQ(code(v1::RegisterResponse::RESULT_NOT_FOUND).status, 404);
  EXPECT_EQ(code(v1::RegisterResponse::RESULT_BAD_REQUEST).status, 400);
  EXPECT_EQ(code(v1::RegisterResponse::RESULT_TOO_MANY_CONTACTS).status, 403);
  EXPECT_EQ(code(v1::RegisterResponse::RESULT_UNSPECIFIED).status, 500);

  v1::RegisterResponse tooMany;
  tooMany.set_result(v1::RegisterResponse::RESULT_TOO_MANY_CONTACTS);
  tooMany.set_reason("Too many contacts (max 10)");
  EXPECT_EQ(registerReply(tooMany, 0).phrase, "Too many contacts (max 10)");
}

TEST(RegisterReply, RegistrarFailureIs503WithRetryAfter) {
  for (auto code : {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::DEADLINE_EXCEEDED,
                    grpc::StatusCode::INTERNAL}) {
    SipReply r = registrarFailureReply(grpc::Status(code, "x"), 7);
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.header("Retry-After").value_or(""), "7");
  }
}

TEST(SipReplyText, DropsHeadersWithLineBreaks) {
  SipReply r;
  r.headers = {{"A", "1"}, {"B", "x\r\nEvil: 1"}, {"C", "3"}};
  EXPECT_EQ(r.headerText(), "A: 1\r\nC: 3\r\n");
}

TEST(GatewayConfig, ListenUrls) {
  EXPECT_TRUE(isListenUrl("sip:127.0.0.1:5062"));
  EXPECT_TRUE(isListenUrl("sip:127.0.0.1:5062;transport=udp"));
  EXPECT_FALSE(isListenUrl("127.0.0.1:5062"));
  EXPECT_FALSE(isListenUrl("sips:127.0.0.1:5061"));
  EXPECT_FALSE(isListenUrl("sip:"));
}

TEST(GatewayConfig, LoadsAndRejectsUnknownKeys) {
  auto doc = config::Document::parse(
      R"({"domain": "example.com", "internal": {"listen": ["sip:127.0.0.1:5062"]},
          "registrar": {"address": "127.0.0.1:50051", "timeout_ms": 500}})",
      "gw.json");
  GatewayConfig c = loadConfig(doc);
  EXPECT_EQ(c.domain, "example.com");
  EXPECT_EQ(c.registrarTimeoutMs, 500);
  EXPECT_EQ(c.trunkListen.at(0), "sip:127.0.0.1:5060");
  auto bad = config::Document::parse(R"({"domain": "example.com", "domian": 1})", "gw.json");
  EXPECT_THROW(loadConfig(bad), config::ConfigError);
  auto badUrl = config::Document::parse(R"({"domain": "d", "trunk": {"listen": ["x"]}})", "gw.json");
  try {
    loadConfig(badUrl);
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.path(), "$.trunk.listen");
  }
}

}  // namespace
}  // namespace medius::gateway
