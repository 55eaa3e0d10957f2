// One remote-call-control session (rcc_session.hpp) without SIP: requests to actions and
// answers, the authorization step, and the events of a 3PCC call.
#include <gtest/gtest.h>

#include <string>

#include "medius/gateway/rcc_session.hpp"

namespace medius::gateway {
namespace {

using csta::RequestKind;

csta::Request makeCall() {
  return csta::parseRequest(
      "<MakeCall xmlns=\"http://www.ecma-international.org/standards/ecma-323/csta/ed4\">"
      "<callingDevice>tel:+14255550100</callingDevice>"
      "<calledDirectoryNumber>tel:+14155550199</calledDirectoryNumber></MakeCall>");
}

csta::Request onCall(const std::string& root, const std::string& element, const std::string& id,
                     const std::string& extra = "") {
  return csta::parseRequest("<" + root + "><" + element + "><callID>" + id +
                            "</callID><deviceID>+14255550100</deviceID></" + element + ">" + extra +
                            "</" + root + ">");
}

TEST(RccSession, MakeCallIsAuthorizedThenStarted) {
  RccSession s("sip:alice@example.com", "r1");
  RccReply r = s.onRequest(makeCall());
  EXPECT_EQ(r.outcome, "pending");
  EXPECT_TRUE(r.body.empty());
  ASSERT_EQ(r.action.kind, RccAction::Kind::Authorize);
  EXPECT_EQ(r.action.device, "tel:+14255550100");

  RccReply ok = s.authorized(makeCall(), "+14255550100", "");
  EXPECT_EQ(ok.outcome, "ok");
  ASSERT_EQ(ok.action.kind, RccAction::Kind::StartCall);
  EXPECT_EQ(ok.action.called, "tel:+14155550199");
  const std::string id = ok.action.callId;
  EXPECT_NE(ok.body.find("<MakeCallResponse"), std::string::npos);
  EXPECT_NE(ok.body.find("<callID>" + id + "</callID>"), std::string::npos);
  EXPECT_NE(ok.body.find("ed4"), std::string::npos);  // answered in the client's namespace
  EXPECT_TRUE(s.hasCall(id));

  auto kindOf = [](const std::vector<std::string>& events) {
    EXPECT_EQ(events.size(), 1u);
    return events.empty() ? csta::EventKind::Transferred : csta::parseEvent(events[0]).kind;
  };
  EXPECT_EQ(kindOf(s.progress(id, RccProgress::DeskRinging)), csta::EventKind::ServiceInitiated);
  EXPECT_EQ(kindOf(s.progress(id, RccProgress::DeskAnswered)), csta::EventKind::Originated);
  EXPECT_EQ(kindOf(s.progress(id, RccProgress::FarRinging)), csta::EventKind::Delivered);
  auto est = s.progress(id, RccProgress::FarAnswered);
  ASSERT_EQ(est.size(), 1u);
  csta::Event e = csta::parseEvent(est[0]);
  EXPECT_EQ(e.kind, csta::EventKind::Established);
  EXPECT_EQ(e.crossRefId, "r1");
  EXPECT_EQ(e.connection.callId, id);
  EXPECT_TRUE(s.progress(id, RccProgress::FarAnswered).empty());  // a 2xx retransmission

  RccReply clear = s.onRequest(onCall("ClearConnection", "connectionToBeCleared", id));
  EXPECT_EQ(clear.action.kind, RccAction::Kind::ClearCall);
  EXPECT_NE(clear.body.find("<ClearConnectionResponse"), std::string::npos);
  auto cleared = s.cleared(id, 0);
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(csta::parseEvent(cleared[0]).cause, "normalClearing");
  EXPECT_FALSE(s.hasCall(id));
  EXPECT_TRUE(s.cleared(id, 0).empty());
}

TEST(RccSession, RefusedLineIsACstaError) {
  RccSession s("sip:alice@example.com", "r1");
  RccReply r = s.authorized(makeCall(), "", "privilegeViolationOnSpecifiedDevice");
  EXPECT_EQ(r.outcome, "refused");
  EXPECT_EQ(r.action.kind, RccAction::Kind::None);
  EXPECT_NE(r.body.find("<operation>privilegeViolationOnSpecifiedDevice</operation>"),
            std::string::npos);
  EXPECT_TRUE(s.calls().empty());
}

TEST(RccSession, RequestsOnUnknownOrUnconnectedCalls) {
  RccSession s("sip:alice@example.com", "r1");
  RccReply r = s.onRequest(onCall("ClearConnection", "connectionToBeCleared", "nope"));
  EXPECT_EQ(r.outcome, "refused");
  EXPECT_NE(r.body.find("invalidCallIdentifier"), std::string::npos);
  const std::string id = s.authorized(makeCall(), "+14255550100", "").action.callId;
  RccReply hold = s.onRequest(onCall("HoldCall", "callToBeHeld", id));
  EXPECT_NE(hold.body.find("<stateIncompatibility>invalidObjectState"), std::string::npos);
  s.progress(id, RccProgress::FarAnswered);
  hold = s.onRequest(onCall("HoldCall", "callToBeHeld", id));
  EXPECT_EQ(hold.action.kind, RccAction::Kind::Hold);
  EXPECT_EQ(hold.outcome, "pending");
  EXPECT_NE(s.actionDone(onCall("HoldCall", "callToBeHeld", id), 200).body.find("<HoldCallResponse"),
            std::string::npos);
  EXPECT_EQ(csta::parseEvent(s.progress(id, RccProgress::Held).at(0)).kind, csta::EventKind::Held);
  EXPECT_EQ(s.onRequest(onCall("RetrieveCall", "callToBeRetrieved", id)).action.kind,
            RccAction::Kind::Retrieve);
  RccReply xfer = s.onRequest(onCall("SingleStepTransferCall", "activeCall", id,
                                     "<transferredTo>tel:+14155550123</transferredTo>"));
  EXPECT_EQ(xfer.action.kind, RccAction::Kind::Transfer);
  EXPECT_EQ(xfer.action.called, "tel:+14155550123");
  RccReply refused = s.actionDone(onCall("SingleStepTransferCall", "activeCall", id,
                                         "<transferredTo>x</transferredTo>"),
                                  501);
  EXPECT_EQ(refused.outcome, "unsupported");
  EXPECT_NE(refused.body.find("requestIncompatibleWithObject"), std::string::npos);
}

TEST(RccSession, MonitorAndUnsupported) {
  RccSession s("sip:alice@example.com", "r7");
  csta::Request start = csta::parseRequest(
      "<MonitorStart><monitorObject><deviceObject>tel:+14255550100</deviceObject>"
      "</monitorObject></MonitorStart>");
  EXPECT_EQ(s.onRequest(start).action.kind, RccAction::Kind::Authorize);
  RccReply ok = s.authorized(start, "+14255550100", "");
  EXPECT_NE(ok.body.find("<monitorCrossRefID>r7</monitorCrossRefID>"), std::string::npos);
  EXPECT_TRUE(s.monitoring());
  EXPECT_EQ(s.onRequest(csta::parseRequest("<MonitorStop><monitorCrossRefID>x</monitorCrossRefID></MonitorStop>"))
                .outcome,
            "refused");
  EXPECT_EQ(s.onRequest(csta::parseRequest("<MonitorStop><monitorCrossRefID>r7</monitorCrossRefID></MonitorStop>"))
                .outcome,
            "ok");
  EXPECT_FALSE(s.monitoring());
  // AnswerCall names a call ringing on the phone (dialog events, dialog_info_test.cpp): no
  // such call here.
  RccReply answer = s.onRequest(onCall("AnswerCall", "callToBeAnswered", "1"));
  EXPECT_EQ(answer.outcome, "refused");
  EXPECT_NE(answer.body.find("invalidCallIdentifier"), std::string::npos);
  RccReply unknown = s.onRequest(csta::parseRequest("<DeflectCall/>"));
  EXPECT_EQ(unknown.outcome, "unsupported");
  EXPECT_NE(unknown.body.find("invalidFeature"), std::string::npos) << unknown.body;
  EXPECT_NE(s.onRequest(csta::parseRequest("<RequestSystemStatus/>")).body.find("normal"),
            std::string::npos);
}

TEST(RccSession, ClearCauses) {
  EXPECT_EQ(clearCause(0), "normalClearing");
  EXPECT_EQ(clearCause(486), "busy");
  EXPECT_EQ(clearCause(487), "callNotAnswered");
  EXPECT_EQ(clearCause(404), "destNotObtainable");
  EXPECT_EQ(clearCause(503), "networkCongestion");
}

}  // namespace
}  // namespace medius::gateway

namespace medius::gateway {
namespace {

const char* kOffer =
    "v=0\r\no=phone 1 5 IN IP4 127.0.0.13\r\ns=-\r\nc=IN IP4 127.0.0.13\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n";

TEST(RccSdp, HoldAndRetrieveOffers) {
  std::string hold = rccDirectionOffer(kOffer, true, 7);
  EXPECT_NE(hold.find("o=phone 1 7 IN IP4 127.0.0.13\r\n"), std::string::npos) << hold;
  EXPECT_NE(hold.find("a=inactive\r\n"), std::string::npos);
  EXPECT_EQ(hold.find("a=sendrecv"), std::string::npos);
  EXPECT_LT(hold.find("a=inactive"), hold.find("m=audio"));
  std::string back = rccDirectionOffer(hold, false, 8);
  EXPECT_NE(back.find("a=sendrecv\r\n"), std::string::npos);
  EXPECT_EQ(back.find("a=inactive"), std::string::npos);
  EXPECT_NE(back.find("m=audio 6000 RTP/AVP 0 8 101\r\n"), std::string::npos);
}

TEST(RccSdp, RejectAnswerAndNumbers) {
  std::string r = rccRejectAnswer(kOffer);
  EXPECT_NE(r.find("m=audio 0 RTP/AVP 0\r\n"), std::string::npos) << r;
  EXPECT_EQ(r.find("a=rtpmap"), std::string::npos);
  EXPECT_EQ(rccNumberOf("tel:+14155550199;phone-context=example.com"), "+14155550199");
  EXPECT_EQ(rccNumberOf("<sip:2200@pbx.example.com;user=phone>"), "2200");
  EXPECT_EQ(rccNumberOf("+14155550199"), "+14155550199");
}

}  // namespace
}  // namespace medius::gateway
