// RFC 4235 dialog-info+xml parsing (dialog_info.hpp) and its mapping to CSTA events of the
// desk phone's own calls (RccSession::phoneDialogs).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "medius/gateway/dialog_info.hpp"
#include "medius/gateway/rcc_session.hpp"

namespace medius::gateway {
namespace {

using dialog_info::BadDialogInfo;
using dialog_info::Direction;
using dialog_info::State;

std::string doc(std::uint64_t version, const std::string& state, const std::string& dialogs) {
  return "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" "
         "version=\"" + std::to_string(version) + "\" state=\"" + state +
         "\" entity=\"sip:2100@pbx.example.com\">" + dialogs + "</dialog-info>";
}

std::string dialog(const std::string& id, const std::string& callId, const std::string& direction,
                   const std::string& state, const std::string& remote = "sip:+14155550199@pbx",
                   const std::string& stateAttrs = "") {
  return "<dialog id=\"" + id + "\" call-id=\"" + callId + "\" local-tag=\"lt\" remote-tag=\"rt\""
         " direction=\"" + direction + "\"><state" + stateAttrs + ">" + state + "</state>"
         "<local><identity display=\"Alice\">sip:2100@pbx</identity><target uri=\"sip:2100@10.200.10.5\"/></local>"
         "<remote><identity>" + remote + "</identity></remote></dialog>";
}

TEST(DialogInfo, ParsesRfc4235Document) {
  auto d = dialog_info::parse(doc(3, "partial",
      dialog("d1", "abc@pbx", "recipient", "early") +
      dialog("d2", "x", "initiator", "terminated", "sip:3@pbx", " event=\"rejected\" code=\"486\"")));
  EXPECT_EQ(d.version, 3u);
  EXPECT_EQ(d.state, dialog_info::DocState::Partial);
  EXPECT_EQ(d.entity, "sip:2100@pbx.example.com");
  ASSERT_EQ(d.dialogs.size(), 2u);
  EXPECT_EQ(d.dialogs[0].id, "d1");
  EXPECT_EQ(d.dialogs[0].callId, "abc@pbx");
  EXPECT_EQ(d.dialogs[0].localTag, "lt");
  EXPECT_EQ(d.dialogs[0].remoteTag, "rt");
  EXPECT_EQ(d.dialogs[0].direction, Direction::Recipient);
  EXPECT_EQ(d.dialogs[0].state, State::Early);
  EXPECT_EQ(d.dialogs[0].local.identity, "sip:2100@pbx");
  EXPECT_EQ(d.dialogs[0].local.display, "Alice");
  EXPECT_EQ(d.dialogs[0].local.target, "sip:2100@10.200.10.5");
  EXPECT_EQ(d.dialogs[0].remote.identity, "sip:+14155550199@pbx");
  EXPECT_EQ(d.dialogs[1].direction, Direction::Initiator);
  EXPECT_EQ(d.dialogs[1].state, State::Terminated);
  EXPECT_EQ(d.dialogs[1].event, "rejected");
  EXPECT_EQ(d.dialogs[1].code, 486);
}

TEST(DialogInfo, EmptyFullDocumentAndPrefixesAndNoNamespace) {
  auto d = dialog_info::parse(doc(0, "full", ""));
  EXPECT_EQ(d.state, dialog_info::DocState::Full);
  EXPECT_TRUE(d.dialogs.empty());
  auto p = dialog_info::parse(
      "<d:dialog-info xmlns:d=\"urn:ietf:params:xml:ns:dialog-info\" version=\"1\" state=\"full\" "
      "entity=\"sip:a@b\"><d:dialog id=\"z\"><d:state>confirmed</d:state></d:dialog></d:dialog-info>");
  ASSERT_EQ(p.dialogs.size(), 1u);
  EXPECT_EQ(p.dialogs[0].state, State::Confirmed);
  EXPECT_EQ(p.dialogs[0].direction, Direction::Unspecified);
  auto n = dialog_info::parse("<dialog-info version=\"2\" state=\"partial\" entity=\"sip:a@b\"/>");
  EXPECT_EQ(n.version, 2u);
}

TEST(DialogInfo, BadInputIsAnError) {
  const std::vector<std::string> bad = {
      "",
      "not xml",
      "<dialog-info",
      "<foo version=\"1\" state=\"full\" entity=\"sip:a@b\"/>",
      "<dialog-info xmlns=\"urn:other\" version=\"1\" state=\"full\" entity=\"sip:a@b\"/>",
      "<dialog-info state=\"full\" entity=\"sip:a@b\"/>",
      "<dialog-info version=\"-1\" state=\"full\" entity=\"sip:a@b\"/>",
      "<dialog-info version=\"1x\" state=\"full\" entity=\"sip:a@b\"/>",
      "<dialog-info version=\"99999999999999999999999\" state=\"full\" entity=\"sip:a@b\"/>",
      "<dialog-info version=\"1\" state=\"half\" entity=\"sip:a@b\"/>",
      "<dialog-info version=\"1\" state=\"full\"/>",
      doc(1, "full", "<dialog><state>early</state></dialog>"),
      doc(1, "full", "<dialog id=\"a\"/>"),
      doc(1, "full", "<dialog id=\"a\"><state>ringing</state></dialog>"),
      doc(1, "full", "<dialog id=\"a\" direction=\"sideways\"><state>early</state></dialog>"),
      doc(1, "full", "<dialog id=\"a\"><state code=\"99\">terminated</state></dialog>"),
      doc(1, "full", "<dialog id=\"a\"><state code=\"x\">terminated</state></dialog>"),
      doc(1, "full", "<dialog id=\"" + std::string(2000, 'a') + "\"><state>early</state></dialog>"),
      std::string(dialog_info::kMaxBodyBytes + 1, ' '),
  };
  for (const auto& body : bad) {
    EXPECT_THROW(dialog_info::parse(body), BadDialogInfo) << body.substr(0, 200);
  }
  std::string many;
  for (int i = 0; i <= static_cast<int>(dialog_info::kMaxDialogs); ++i) {
    many += "<dialog id=\"" + std::to_string(i) + "\"><state>early</state></dialog>";
  }
  EXPECT_THROW(dialog_info::parse(doc(1, "full", many)), BadDialogInfo);
}

// A session monitoring alice's line (MonitorStart allowed).
RccSession monitoring() {
  RccSession s("sip:alice@example.com", "r1");
  auto start = csta::parseRequest(
      "<MonitorStart xmlns=\"http://www.ecma-international.org/standards/ecma-323/csta/ed4\">"
      "<monitorObject><deviceObject>tel:+14255550100</deviceObject></monitorObject></MonitorStart>");
  EXPECT_EQ(s.onRequest(start).action.kind, RccAction::Kind::Authorize);
  RccReply ok = s.authorized(start, "+14255550100", "");
  EXPECT_EQ(ok.action.kind, RccAction::Kind::Subscribe);
  EXPECT_EQ(ok.action.device, "+14255550100");
  return s;
}

std::vector<csta::Event> events(RccSession& s, const std::string& body,
                                const std::string& ownCallId = "") {
  std::vector<csta::Event> out;
  for (const auto& e : s.phoneDialogs(dialog_info::parse(body), [&](const std::string& id) {
         return id == ownCallId;
       })) {
    out.push_back(csta::parseEvent(e));
  }
  return out;
}

TEST(RccPhoneDialogs, IncomingCallRingsIsAnsweredAndEnds) {
  RccSession s = monitoring();
  auto e = events(s, doc(0, "full", ""));
  EXPECT_TRUE(e.empty());
  e = events(s, doc(1, "partial", dialog("d1", "c1", "recipient", "early")));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, csta::EventKind::Delivered);
  EXPECT_EQ(e[0].crossRefId, "r1");
  EXPECT_EQ(e[0].connection.deviceId, "+14255550100");
  const std::string callId = e[0].connection.callId;
  EXPECT_EQ(callId, "r1-p1");
  // The same state again (a refresh's full NOTIFY) reports nothing new.
  EXPECT_TRUE(events(s, doc(2, "full", dialog("d1", "c1", "recipient", "early"))).empty());
  e = events(s, doc(3, "partial", dialog("d1", "c1", "recipient", "confirmed")));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, csta::EventKind::Established);
  EXPECT_EQ(e[0].connection.callId, callId);
  e = events(s, doc(4, "partial", dialog("d1", "c1", "recipient", "terminated")));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, csta::EventKind::ConnectionCleared);
  EXPECT_EQ(e[0].cause, "normalClearing");
  EXPECT_EQ(s.phoneDialogCount(), 0u);
}

TEST(RccPhoneDialogs, OutgoingCallFromThePhone) {
  RccSession s = monitoring();
  auto e = events(s, doc(1, "partial", dialog("o1", "c2", "initiator", "trying")));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, csta::EventKind::ServiceInitiated);
  e = events(s, doc(2, "partial", dialog("o1", "c2", "initiator", "early")));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, csta::EventKind::Originated);
  e = events(s, doc(3, "partial",
                    dialog("o1", "c2", "initiator", "terminated", "sip:3@pbx", " code=\"486\"")));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, csta::EventKind::ConnectionCleared);
  EXPECT_EQ(e[0].cause, "busy");
}

TEST(RccPhoneDialogs, InitiatorSeenFirstInEarlyGetsBothEvents) {
  RccSession s = monitoring();
  auto e = events(s, doc(1, "partial", dialog("o1", "c2", "initiator", "early")));
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].kind, csta::EventKind::ServiceInitiated);
  EXPECT_EQ(e[1].kind, csta::EventKind::Originated);
}

TEST(RccPhoneDialogs, TheGatewaysOwnMakeCallLegIsSkipped) {
  RccSession s = monitoring();
  EXPECT_TRUE(events(s, doc(1, "partial", dialog("m", "own-leg", "recipient", "early")),
                     "own-leg").empty());
  EXPECT_EQ(s.phoneDialogCount(), 0u);
}

TEST(RccPhoneDialogs, StaleAndTerminatedUnknownAndFullDocumentDrops) {
  RccSession s = monitoring();
  ASSERT_EQ(events(s, doc(5, "partial", dialog("a", "c", "recipient", "early"))).size(), 1u);
  // An older partial document is ignored.
  EXPECT_TRUE(events(s, doc(4, "partial", dialog("a", "c", "recipient", "confirmed"))).empty());
  // A dialog first seen terminated was never reported.
  EXPECT_TRUE(events(s, doc(6, "partial", dialog("b", "c3", "recipient", "terminated"))).empty());
  // A full document without "a": it ended.
  auto e = events(s, doc(7, "full", ""));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, csta::EventKind::ConnectionCleared);
}

TEST(RccPhoneDialogs, NothingWithoutMonitorAndMonitorStopUnsubscribes) {
  RccSession idle("sip:alice@example.com", "r1");
  EXPECT_TRUE(idle.phoneDialogs(dialog_info::parse(doc(1, "partial", dialog("a", "c", "recipient", "early"))),
                                nullptr).empty());
  RccSession s = monitoring();
  ASSERT_EQ(events(s, doc(1, "partial", dialog("a", "c", "recipient", "early"))).size(), 1u);
  auto stop = csta::parseRequest("<MonitorStop><monitorCrossRefID>r1</monitorCrossRefID></MonitorStop>");
  EXPECT_EQ(s.onRequest(stop).action.kind, RccAction::Kind::Unsubscribe);
  EXPECT_EQ(s.phoneDialogCount(), 0u);
  EXPECT_TRUE(events(s, doc(2, "partial", dialog("a", "c", "recipient", "confirmed"))).empty());
}

csta::Request answerCall(const std::string& callId) {
  return csta::parseRequest(
      "<AnswerCall xmlns=\"http://www.ecma-international.org/standards/ecma-323/csta/ed4\">"
      "<callToBeAnswered><callID>" + callId + "</callID><deviceID>+14255550100</deviceID>"
      "</callToBeAnswered></AnswerCall>");
}

// AnswerCall: only a call of the phone's own that rings on it (dialog events); carried out
// by the gateway (Answer: NOTIFY Event: talk), answered when the PBX answered that.
TEST(RccPhoneDialogs, AnswerCallOnlyOnTheRingingPhoneCall) {
  RccSession s = monitoring();
  RccReply unknown = s.onRequest(answerCall("r1-p9"));
  EXPECT_EQ(unknown.action.kind, RccAction::Kind::None);
  EXPECT_EQ(unknown.outcome, "refused");
  EXPECT_NE(unknown.body.find("invalidCallIdentifier"), std::string::npos) << unknown.body;

  ASSERT_EQ(events(s, doc(1, "partial", dialog("d1", "c1", "recipient", "early"))).size(), 1u);
  RccReply ringing = s.onRequest(answerCall("r1-p1"));
  EXPECT_EQ(ringing.action.kind, RccAction::Kind::Answer);
  EXPECT_EQ(ringing.action.callId, "r1-p1");
  EXPECT_EQ(ringing.action.device, "+14255550100");
  EXPECT_EQ(ringing.outcome, "pending");
  EXPECT_TRUE(ringing.body.empty());
  RccReply done = s.actionDone(answerCall("r1-p1"), 200);
  EXPECT_EQ(done.outcome, "ok");
  EXPECT_NE(done.body.find("AnswerCallResponse"), std::string::npos) << done.body;
  RccReply refused = s.actionDone(answerCall("r1-p1"), 489);  // Bad Event: no "talk" here
  EXPECT_EQ(refused.outcome, "unsupported");
  EXPECT_NE(refused.body.find("requestIncompatibleWithObject"), std::string::npos) << refused.body;

  // Answered already: nothing rings any more.
  ASSERT_EQ(events(s, doc(2, "partial", dialog("d1", "c1", "recipient", "confirmed"))).size(), 1u);
  RccReply late = s.onRequest(answerCall("r1-p1"));
  EXPECT_EQ(late.action.kind, RccAction::Kind::None);
  EXPECT_NE(late.body.find("invalidObjectState"), std::string::npos) << late.body;
  // A call the phone makes is not answered by it.
  ASSERT_EQ(events(s, doc(3, "partial", dialog("o1", "c2", "initiator", "early"))).size(), 2u);
  RccReply outgoing = s.onRequest(answerCall("r1-p2"));
  EXPECT_EQ(outgoing.action.kind, RccAction::Kind::None);
  EXPECT_NE(outgoing.body.find("invalidObjectState"), std::string::npos) << outgoing.body;
}

}  // namespace
}  // namespace medius::gateway
