// The request checks (request_checks.hpp) on texts parsed by Sofia as the gateway's nta
// agent parses them (MSG_DO_EXTRACT_COPY: each header keeps its raw text). The RFC 4475
// messages themselves go through the real gateway in tests/e2e/test_torture.py.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su.h>

#include "medius/gateway/request_checks.hpp"

namespace medius::gateway {
namespace {

struct MsgDeleter {
  void operator()(msg_t* m) const { msg_destroy(m); }
};
using MsgPtr = std::unique_ptr<msg_t, MsgDeleter>;

MsgPtr parse(const std::string& text) {
  static const int init = su_init();
  (void)init;
  return MsgPtr(msg_make(sip_default_mclass(), MSG_DO_CANONIC | MSG_DO_EXTRACT_COPY, text.data(),
                         static_cast<ssize_t>(text.size())));
}

std::string request(const std::string& line, const std::string& extra = "",
                    const std::string& method = "OPTIONS", const std::string& body = "") {
  return line + "\r\n"
         "Via: SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK1\r\n"
         "From: \"Alice\" <sip:alice@example.com>;tag=1\r\n"
         "To: <sip:bob@example.com>\r\n"
         "Call-ID: call-1\r\n"
         "CSeq: 7 " + method + "\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::optional<SipReply> check(const std::string& text, bool rel100 = true, bool csta = false) {
  MsgPtr msg = parse(text);
  EXPECT_TRUE(msg) << text;
  if (!msg) return SipReply{};
  return requestErrorReply(sip_object(msg.get()), RequestCheckOptions{rel100, csta});
}

int status(const std::string& text) {
  auto r = check(text);
  return r ? r->status : 0;
}

const std::string kSdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
                         "m=audio 4000 RTP/AVP 0\r\n";

TEST(RequestChecks, AWellFormedRequestPasses) {
  EXPECT_EQ(status(request("OPTIONS sip:bob@example.com SIP/2.0")), 0);
  EXPECT_EQ(status(request("INVITE sip:bob@example.com SIP/2.0",
                           "Content-Type: application/sdp\r\nAccept: application/sdp\r\n"
                           "Require: timer\r\n", "INVITE", kSdp)), 0);
  EXPECT_EQ(status(request("INVITE tel:+14255550100 SIP/2.0", "", "INVITE")), 0);
  EXPECT_EQ(status(request("OPTIONS sip:bob@example.com SIP/2.0", "Require: path\r\n")), 0);
}

TEST(RequestChecks, RequestLineWithExtraSpacesIs400) {
  auto r = check(request("OPTIONS  sip:bob@example.com  SIP/2.0"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->phrase.find("Request-Line"), std::string::npos);
  EXPECT_EQ(status(request("OPTIONS sip:bob@example.com SIP/2.0  ")), 400);
}

TEST(RequestChecks, OtherVersionIs505WithWarning) {
  auto r = check(request("OPTIONS sip:bob@example.com SIP/7.0"));
  if (r && r->status != 400) {  // Sofia may already refuse the Via of another version
    EXPECT_EQ(r->status, 505);
    EXPECT_TRUE(r->header("Warning"));
  }
}

TEST(RequestChecks, RequestUriWithHeadersIs400) {
  EXPECT_EQ(status(request("OPTIONS sip:bob@example.com?Route=%3Csip:x%3E SIP/2.0")), 400);
}

TEST(RequestChecks, AddressSyntax) {
  EXPECT_EQ(status("OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK3\r\n"
                   "From: <sip:a@example.com>;tag=3\r\nTo: \"Bob\" < sip:bob@example.com >\r\n"
                   "Call-ID: c3\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"), 400);
  EXPECT_EQ(status("OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK4\r\n"
                   "From: Bell, Alexander <sip:a@example.com>;tag=4\r\nTo: <sip:bob@example.com>\r\n"
                   "Call-ID: c4\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"), 400);
  EXPECT_EQ(status(request("REGISTER sip:example.com SIP/2.0",
                           "Contact: sip:bob@example.com?Route=%3Csip:x%3E\r\n", "REGISTER")), 400);
  // Enclosed in <>, headers are allowed in a Contact.
  EXPECT_EQ(status(request("REGISTER sip:example.com SIP/2.0",
                           "Contact: <sip:bob@example.com?Route=%3Csip:x%3E>\r\n", "REGISTER")), 0);
}

TEST(RequestChecks, CSeqMethodMustMatch) {
  EXPECT_EQ(status(request("OPTIONS sip:bob@example.com SIP/2.0", "", "INVITE")), 400);
  EXPECT_EQ(status(request("NEWMETHOD sip:bob@example.com SIP/2.0", "", "INVITE")), 400);
  EXPECT_EQ(status(request("NEWMETHOD sip:bob@example.com SIP/2.0", "", "NEWMETHOD")), 0);
}

TEST(RequestChecks, UnknownSchemeIs416) {
  EXPECT_EQ(status(request("OPTIONS nobodyKnowsThisScheme:opaque SIP/2.0")), 416);
  EXPECT_EQ(status(request("OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0")), 416);
}

TEST(RequestChecks, UnknownRequireIs420ListingIt) {
  auto r = check(request("OPTIONS sip:bob@example.com SIP/2.0",
                         "Require: nothingSupportsThis, timer\r\nProxy-Require: noProxy\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 420);
  EXPECT_EQ(r->header("Unsupported").value_or(""), "nothingSupportsThis");
  EXPECT_EQ(status(request("OPTIONS sip:bob@example.com SIP/2.0", "Require: 100rel\r\n")), 0);
  auto off = check(request("OPTIONS sip:bob@example.com SIP/2.0", "Require: 100rel\r\n"), false);
  ASSERT_TRUE(off);
  EXPECT_EQ(off->status, 420);
}

TEST(RequestChecks, BodyAndAcceptOfAnInvite) {
  auto r = check(request("INVITE sip:bob@example.com SIP/2.0",
                         "Content-Type: application/unknownformat\r\n", "INVITE", "<xml/>"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  EXPECT_EQ(r->header("Accept").value_or(""), "application/sdp");
  // Multipart bodies (SIP-T) are left to the call handling.
  EXPECT_EQ(status(request("INVITE sip:bob@example.com SIP/2.0",
                           "Content-Type: multipart/mixed;boundary=x\r\n", "INVITE", "--x--\r\n")), 0);
  auto a = check(request("INVITE sip:bob@example.com SIP/2.0",
                         "Content-Type: application/sdp\r\nAccept: text/nobodyKnowsThis\r\n", "INVITE", kSdp));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 406);
  EXPECT_EQ(status(request("INVITE sip:bob@example.com SIP/2.0",
                           "Content-Type: application/sdp\r\nAccept: application/*\r\n", "INVITE", kSdp)), 0);
}

TEST(RequestChecks, CstaInviteOnlyWhereRemoteCallControlRuns) {
  const std::string invite = "INVITE sip:csta@example.com SIP/2.0";
  const std::string headers =
      "Content-Type: application/csta+xml\r\nAccept: application/csta+xml\r\n";
  const std::string body = "<RequestSystemStatus/>";
  auto trunk = check(request(invite, headers, "INVITE", body), true, false);
  ASSERT_TRUE(trunk);
  EXPECT_EQ(trunk->status, 415);
  EXPECT_FALSE(check(request(invite, headers, "INVITE", body), true, true));
  // Only INVITE: an UPDATE with a CSTA body is still refused.
  auto update = check(request("UPDATE sip:csta@example.com SIP/2.0", headers, "UPDATE", body),
                      true, true);
  ASSERT_TRUE(update);
  EXPECT_EQ(update->status, 415);
}

TEST(RequestChecks, MissingEssentialHeadersAre400) {
  EXPECT_EQ(status("OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.5;branch=z9hG4bK5\r\n"
                   "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"), 400);
}

}  // namespace
}  // namespace medius::gateway
