// The uaCSTA codec (csta.hpp): ECMA-323 requests as clients send them (ed3, ed4, prefixed,
// no namespace), what is refused and how, and the responses, errors and events we write.
#include <gtest/gtest.h>

#include <string>

#include "medius/gateway/csta.hpp"

namespace medius::gateway::csta {
namespace {

const std::string kEd3(kNamespaceEd3);

std::string wrap(const std::string& root, const std::string& inner, const std::string& ns = kEd3) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><" + root + " xmlns=\"" + ns + "\">" + inner +
         "</" + root + ">";
}

TEST(Csta, ParsesMakeCall) {
  Request r = parseRequest(wrap("MakeCall",
                                "<callingDevice>tel:+14255550100</callingDevice>"
                                "<calledDirectoryNumber>tel:+14155550199</calledDirectoryNumber>"
                                "<autoOriginate>doNotPrompt</autoOriginate>"));
  EXPECT_EQ(r.kind, RequestKind::MakeCall);
  EXPECT_EQ(r.callingDevice, "tel:+14255550100");
  EXPECT_EQ(r.calledDirectoryNumber, "tel:+14155550199");
  EXPECT_EQ(r.ns, kEd3);
  EXPECT_EQ(requestName(r.kind), "make_call");
}

TEST(Csta, AcceptsEd4PrefixesAndNoNamespace) {
  Request a = parseRequest(wrap("MakeCall",
                                "<callingDevice> tel:+1 </callingDevice>"
                                "<calledDirectoryNumber>2200</calledDirectoryNumber>",
                                std::string(kNamespaceEd4)));
  EXPECT_EQ(a.ns, kNamespaceEd4);
  EXPECT_EQ(a.callingDevice, "tel:+1");  // trimmed
  Request b = parseRequest(
      "<csta:ClearConnection xmlns:csta=\"" + kEd3 +
      "\"><csta:connectionToBeCleared><csta:callID>c1</csta:callID>"
      "<csta:deviceID>tel:+14255550100</csta:deviceID></csta:connectionToBeCleared>"
      "</csta:ClearConnection>");
  EXPECT_EQ(b.kind, RequestKind::ClearConnection);
  EXPECT_EQ(b.connection.callId, "c1");
  EXPECT_EQ(b.connection.deviceId, "tel:+14255550100");
  Request c = parseRequest("<RequestSystemStatus/>");
  EXPECT_EQ(c.kind, RequestKind::RequestSystemStatus);
  EXPECT_EQ(c.ns, kEd3);
}

TEST(Csta, ParsesTheConnectionRequests) {
  const std::string conn = "<callID>7</callID><deviceID>tel:+14255550100</deviceID>";
  EXPECT_EQ(parseRequest(wrap("HoldCall", "<callToBeHeld>" + conn + "</callToBeHeld>")).kind,
            RequestKind::HoldCall);
  EXPECT_EQ(parseRequest(wrap("RetrieveCall", "<callToBeRetrieved>" + conn + "</callToBeRetrieved>"))
                .connection.callId,
            "7");
  EXPECT_EQ(parseRequest(wrap("AnswerCall", "<callToBeAnswered>" + conn + "</callToBeAnswered>")).kind,
            RequestKind::AnswerCall);
  Request t = parseRequest(wrap("SingleStepTransferCall", "<activeCall>" + conn +
                                                              "</activeCall><transferredTo>tel:+14155550123</transferredTo>"));
  EXPECT_EQ(t.kind, RequestKind::SingleStepTransfer);
  EXPECT_EQ(t.transferredTo, "tel:+14155550123");
  Request m = parseRequest(wrap("MonitorStart",
                                "<monitorObject><deviceObject>tel:+14255550100</deviceObject></monitorObject>"));
  EXPECT_EQ(m.kind, RequestKind::MonitorStart);
  EXPECT_EQ(m.monitorDevice, "tel:+14255550100");
  Request s = parseRequest(wrap("MonitorStop", "<monitorCrossRefID>42</monitorCrossRefID>"));
  EXPECT_EQ(s.crossRefId, "42");
}

TEST(Csta, UnknownCstaElementIsUnknownNotAnError) {
  Request r = parseRequest(wrap("DeflectCall", "<x/>"));
  EXPECT_EQ(r.kind, RequestKind::Unknown);
  EXPECT_EQ(r.name, "DeflectCall");
  std::string body = response(r.kind, r.ns);
  EXPECT_NE(body.find("<CSTAErrorCode"), std::string::npos);
  EXPECT_NE(body.find("<operation>invalidFeature</operation>"), std::string::npos);
}

TEST(Csta, MissingFieldsAreBadRequestsWithTheirError) {
  try {
    parseRequest(wrap("MakeCall", "<calledDirectoryNumber>2200</calledDirectoryNumber>"));
    FAIL() << "no callingDevice accepted";
  } catch (const BadRequest& e) {
    EXPECT_EQ(e.request.kind, RequestKind::MakeCall);
    EXPECT_EQ(e.error.value, "invalidCallingDevice");
  }
  try {
    parseRequest(wrap("ClearConnection", "<connectionToBeCleared><deviceID>d</deviceID></connectionToBeCleared>"));
    FAIL();
  } catch (const BadRequest& e) {
    EXPECT_EQ(e.error.value, "invalidCallIdentifier");
  }
  try {
    parseRequest(wrap("MakeCall", "<callingDevice>" + std::string(kMaxFieldBytes + 1, '1') +
                                      "</callingDevice><calledDirectoryNumber>1</calledDirectoryNumber>"));
    FAIL();
  } catch (const BadRequest& e) {
    EXPECT_EQ(e.error.value, "valueOutOfRange");
  }
}

TEST(Csta, NotCstaIsRefused) {
  EXPECT_THROW(parseRequest(""), NotCsta);
  EXPECT_THROW(parseRequest("<MakeCall>"), NotCsta);
  EXPECT_THROW(parseRequest("hello"), NotCsta);
  EXPECT_THROW(parseRequest("<MakeCall xmlns=\"urn:other\"/>"), NotCsta);
  EXPECT_THROW(parseRequest(std::string(kMaxBodyBytes + 1, ' ')), NotCsta);
  // No entity expansion: an undefined entity is not well-formed, a DOCTYPE changes nothing.
  EXPECT_THROW(parseRequest("<!DOCTYPE x [<!ENTITY a \"b\">]><MakeCall>&a;</MakeCall>"),
               BadRequest);
}

TEST(Csta, ResponsesAndErrors) {
  ResponseInfo info;
  info.callingDevice = {"s1-1", "+14255550100"};
  std::string mc = response(RequestKind::MakeCall, kNamespaceEd4, info);
  EXPECT_NE(mc.find("<MakeCallResponse xmlns=\"" + std::string(kNamespaceEd4) + "\">"), std::string::npos);
  EXPECT_NE(mc.find("<callingDevice><callID>s1-1</callID><deviceID>+14255550100</deviceID></callingDevice>"),
            std::string::npos);
  info.crossRefId = "s1";
  EXPECT_NE(response(RequestKind::MonitorStart, kEd3, info).find("<monitorCrossRefID>s1</monitorCrossRefID>"),
            std::string::npos);
  EXPECT_NE(response(RequestKind::RequestSystemStatus, kEd3).find("<systemStatus>normal</systemStatus>"),
            std::string::npos);
  std::string err = errorResponse(kEd3, {ErrorCategory::Operation, "privilegeViolationOnSpecifiedDevice"});
  EXPECT_NE(err.find("<CSTAErrorCode xmlns=\"" + kEd3 +
                     "\"><operation>privilegeViolationOnSpecifiedDevice</operation></CSTAErrorCode>"),
            std::string::npos);
  // Text is escaped.
  info.callingDevice = {"a<b&c", "d"};
  EXPECT_NE(response(RequestKind::MakeCall, kEd3, info).find("a&lt;b&amp;c"), std::string::npos);
}

TEST(Csta, EventsRoundTrip) {
  for (EventKind k : {EventKind::ServiceInitiated, EventKind::Originated, EventKind::Delivered,
                      EventKind::Established, EventKind::Held, EventKind::Retrieved,
                      EventKind::ConnectionCleared, EventKind::Transferred}) {
    Event e;
    e.kind = k;
    e.crossRefId = "s9";
    e.connection = {"s9-1", "+14255550100"};
    e.callingDevice = "+14255550100";
    e.calledDevice = "+14155550199";
    e.cause = "normalClearing";
    std::string body = event(kEd3, e);
    Event back = parseEvent(body);
    EXPECT_EQ(back.kind, k) << body;
    EXPECT_EQ(back.crossRefId, "s9");
    EXPECT_EQ(back.connection.callId, "s9-1");
    EXPECT_EQ(back.connection.deviceId, "+14255550100");
    EXPECT_EQ(back.cause, "normalClearing");
  }
  Event d;
  d.kind = EventKind::Delivered;
  d.connection = {"c", "+1"};
  d.calledDevice = "+2";
  EXPECT_NE(event(kEd3, d).find("<DeliveredEvent xmlns="), std::string::npos);
  EXPECT_NE(event(kEd3, d).find("<calledDevice><deviceIdentifier>+2</deviceIdentifier></calledDevice>"),
            std::string::npos);
}

}  // namespace
}  // namespace medius::gateway::csta
