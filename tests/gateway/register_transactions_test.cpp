// RegisterTransactions (medius/gateway/register_transactions.hpp): the REGISTER
// retransmission table that replaces nta's server transactions, on a ManualClock, and its
// key on texts parsed by Sofia's own parser (no sockets, no loop).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su.h>

#include "medius/common/clock.hpp"
#include "medius/gateway/register_transactions.hpp"

namespace medius::gateway {
namespace {

using Seen = RegisterTransactions::Seen;

struct MsgDeleter {
  void operator()(msg_t* m) const { msg_destroy(m); }
};
using MsgPtr = std::unique_ptr<msg_t, MsgDeleter>;

std::string keyOfText(const std::string& via, const std::string& callId = "call-1",
                      const std::string& cseq = "7 REGISTER") {
  static const int init = su_init();
  (void)init;
  std::string text = "REGISTER sip:example.com SIP/2.0\r\n"
                     "Via: " + via + "\r\n"
                     "From: <sip:alice@example.com>;tag=1\r\n"
                     "To: <sip:alice@example.com>\r\n"
                     "Call-ID: " + callId + "\r\n"
                     "CSeq: " + cseq + "\r\n"
                     "Content-Length: 0\r\n\r\n";
  MsgPtr msg(msg_make(sip_default_mclass(), 0, text.data(), static_cast<ssize_t>(text.size())));
  EXPECT_TRUE(msg);
  return RegisterTransactions::keyOf(sip_object(msg.get()));
}

SipReply reply(int status, const std::string& phrase) {
  SipReply r = SipReply::of(status, phrase);
  r.headers.emplace_back("WWW-Authenticate", "Digest realm=\"example.com\", nonce=\"n1\"");
  return r;
}

TEST(RegisterTransactionsTest, KeyIsBranchSentByCallIdAndCSeq) {
  std::string base = keyOfText("SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK1");
  EXPECT_FALSE(base.empty());
  EXPECT_EQ(keyOfText("SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK1"), base);
  // A new branch, sent-by, Call-ID or CSeq is another transaction.
  EXPECT_NE(keyOfText("SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK2"), base);
  EXPECT_NE(keyOfText("SIP/2.0/UDP 192.0.2.6:5070;branch=z9hG4bK1"), base);
  EXPECT_NE(keyOfText("SIP/2.0/UDP 192.0.2.5:5071;branch=z9hG4bK1"), base);
  EXPECT_NE(keyOfText("SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK1", "call-2"), base);
  EXPECT_NE(keyOfText("SIP/2.0/UDP 192.0.2.5:5070;branch=z9hG4bK1", "call-1", "8 REGISTER"),
            base);
  // An RFC 2543 client without a branch still gets a key (Call-ID and CSeq tell them apart).
  EXPECT_FALSE(keyOfText("SIP/2.0/UDP 192.0.2.5:5070").empty());
  EXPECT_EQ(RegisterTransactions::keyOf(nullptr), "");
}

TEST(RegisterTransactionsTest, ARetransmissionIsAbsorbedWhilePendingThenAnsweredAgain) {
  ManualClock clock;
  RegisterTransactions tx(clock);
  EXPECT_EQ(tx.arrive("k").seen, Seen::New);
  EXPECT_EQ(tx.pending(), 1u);
  EXPECT_EQ(tx.arrive("k").seen, Seen::Pending);
  EXPECT_EQ(tx.arrive("k").seen, Seen::Pending);
  EXPECT_EQ(tx.absorbed(), 2u);

  tx.answered("k", reply(401, "Unauthorized"), /*reliable=*/false);
  EXPECT_EQ(tx.pending(), 0u);
  EXPECT_EQ(tx.answeredKept(), 1u);
  clock.advanceMs(31999);
  auto again = tx.arrive("k");
  ASSERT_EQ(again.seen, Seen::Answered);
  ASSERT_NE(again.reply, nullptr);
  EXPECT_EQ(again.reply->status, 401);
  EXPECT_EQ(again.reply->phrase, "Unauthorized");
  EXPECT_EQ(again.reply->header("WWW-Authenticate").value_or(""),
            "Digest realm=\"example.com\", nonce=\"n1\"");
  EXPECT_EQ(tx.replayed(), 1u);

  // Timer J (32 s) over: the entry is gone, the same key is a new request.
  clock.advanceMs(1);
  EXPECT_EQ(tx.arrive("k").seen, Seen::New);
  EXPECT_EQ(tx.answeredKept(), 0u);
  EXPECT_EQ(tx.pending(), 1u);
}

TEST(RegisterTransactionsTest, NothingIsKeptForAReliableTransport) {
  ManualClock clock;
  RegisterTransactions tx(clock);
  EXPECT_EQ(tx.arrive("tcp").seen, Seen::New);
  tx.answered("tcp", reply(200, "OK"), /*reliable=*/true);
  EXPECT_EQ(tx.pending(), 0u);
  EXPECT_EQ(tx.answeredKept(), 0u);
  EXPECT_EQ(tx.arrive("tcp").seen, Seen::New);
}

TEST(RegisterTransactionsTest, AnswersExpireInOrderAndTheTableIsBounded) {
  ManualClock clock;
  RegisterTransactions tx(clock, RegisterTransactions::Settings{1000, 3});
  for (const char* k : {"a", "b", "c", "d"}) {
    EXPECT_EQ(tx.arrive(k).seen, Seen::New);
    tx.answered(k, reply(200, "OK"), false);
    clock.advanceMs(100);
  }
  // At most 3 answers: "a", the oldest, went first.
  EXPECT_EQ(tx.answeredKept(), 3u);
  EXPECT_EQ(tx.arrive("a").seen, Seen::New);
  EXPECT_EQ(tx.arrive("b").seen, Seen::Answered);
  // b was answered at t=100, c at 200, d at 300 (ms after start); now t=400.
  clock.advanceMs(700);  // t=1100: b expired (1100), c and d not yet
  EXPECT_EQ(tx.arrive("b").seen, Seen::New);
  EXPECT_EQ(tx.arrive("c").seen, Seen::Answered);
  EXPECT_EQ(tx.arrive("d").seen, Seen::Answered);
  // Pending entries never expire by time: only their answer (or forget) ends them.
  clock.advanceMs(60000);
  EXPECT_EQ(tx.arrive("a").seen, Seen::Pending);
  tx.forget("a");
  tx.forget("b");
  EXPECT_EQ(tx.pending(), 0u);
  EXPECT_EQ(tx.answeredKept(), 0u);
}

TEST(RegisterTransactionsTest, AnAnswerForAnUnknownOrAnsweredKeyChangesNothing) {
  ManualClock clock;
  RegisterTransactions tx(clock);
  tx.answered("never-seen", reply(200, "OK"), false);
  EXPECT_EQ(tx.answeredKept(), 0u);
  EXPECT_EQ(tx.arrive("k").seen, Seen::New);
  tx.answered("k", reply(401, "Unauthorized"), false);
  tx.answered("k", reply(500, "Late"), false);  // only the first answer counts
  auto again = tx.arrive("k");
  ASSERT_EQ(again.seen, Seen::Answered);
  EXPECT_EQ(again.reply->status, 401);
}

}  // namespace
}  // namespace medius::gateway
