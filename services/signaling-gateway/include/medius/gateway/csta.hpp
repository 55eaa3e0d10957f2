// uaCSTA (ECMA-323 XML, carried in SIP as application/csta+xml, ECMA TR/87): the requests a
// remote-call-control client sends, and the responses, errors and events the gateway sends
// back. A pure codec on pugixml: no SIP, no state (RccSession holds the state).
//
//   parseRequest(body)  -> Request              a CSTA request we know (MakeCall, ...)
//                       -> Request{Unknown}     a CSTA element we do not implement (answered
//                                               with CSTAErrorCode operation/invalidFeature)
//                       throws BadRequest       a CSTA request with a missing or oversized
//                                               field (answered with CSTAErrorCode, the value
//                                               in BadRequest::error)
//                       throws NotCsta          not well-formed XML, too big, or a root in
//                                               another namespace (a 400 to an INFO)
//
// Namespaces: ECMA-323 editions 3 and later ("…/ecma-323/csta/ed3", ed4, ed5...) and no
// namespace at all are accepted; element names may carry a prefix ("csta:MakeCall").
// What the gateway writes uses the namespace the client used (ed3 when it used none).
//
// Thread: any (pure functions).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace medius::gateway::csta {

inline constexpr std::string_view kContentType = "application/csta+xml";
inline constexpr std::string_view kNamespaceEd3 =
    "http://www.ecma-international.org/standards/ecma-323/csta/ed3";
inline constexpr std::string_view kNamespaceEd4 =
    "http://www.ecma-international.org/standards/ecma-323/csta/ed4";
// Bodies larger than this are refused unparsed.
inline constexpr std::size_t kMaxBodyBytes = 64 * 1024;
// Longest callID, deviceID, number or cross reference accepted.
inline constexpr std::size_t kMaxFieldBytes = 256;

enum class RequestKind {
  Unknown,  // a CSTA element we do not implement: `name` says which
  MakeCall,
  AnswerCall,
  ClearConnection,
  HoldCall,
  RetrieveCall,
  SingleStepTransfer,
  MonitorStart,
  MonitorStop,
  RequestSystemStatus,
};

// Bounded names for metrics and logs ("make_call", ..., "unknown").
std::string_view requestName(RequestKind kind);

// A connection: one device's part in one call.
struct Connection {
  std::string callId;
  std::string deviceId;
};

struct Request {
  RequestKind kind = RequestKind::Unknown;
  std::string name;       // the root element's local name as received
  std::string ns;         // the namespace to answer in
  // MakeCall
  std::string callingDevice;
  std::string calledDirectoryNumber;
  // AnswerCall, ClearConnection, HoldCall, RetrieveCall (connectionToBe...), and
  // SingleStepTransfer (activeCall)
  Connection connection;
  // SingleStepTransfer
  std::string transferredTo;
  // MonitorStart (monitorObject/deviceObject)
  std::string monitorDevice;
  // MonitorStop
  std::string crossRefId;
};

// The error categories of CSTAErrorCode used here.
enum class ErrorCategory { Operation, StateIncompatibility, SystemResourceAvailability, Unspecified };

struct Error {
  ErrorCategory category = ErrorCategory::Operation;
  // The value inside the category element: "invalidCallingDevice",
  // "privilegeViolationOnSpecifiedDevice", "requestIncompatibleWithObject",
  // "invalidCallIdentifier", "invalidFeature", "valueOutOfRange", "generic", ...
  std::string value;
};

class NotCsta : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class BadRequest : public std::runtime_error {
 public:
  BadRequest(std::string what, Request partial, Error why)
      : std::runtime_error(std::move(what)), request(std::move(partial)), error(std::move(why)) {}
  Request request;  // kind, name and ns are set
  Error error;
};

Request parseRequest(std::string_view body);

// What a positive response carries.
struct ResponseInfo {
  Connection callingDevice;  // MakeCallResponse
  std::string crossRefId;    // MonitorStartResponse
  Connection transferredCall;  // SingleStepTransferCallResponse
};

// "<MakeCallResponse xmlns=…>…" for a request of `kind` (not Unknown), in namespace `ns`.
std::string response(RequestKind kind, std::string_view ns, const ResponseInfo& info = {});

// "<CSTAErrorCode xmlns=…><operation>value</operation></CSTAErrorCode>".
std::string errorResponse(std::string_view ns, const Error& error);

enum class EventKind {
  ServiceInitiated,   // the controlled phone went off-hook for a MakeCall (it rings/answers)
  Originated,         // the controlled phone placed the call
  Delivered,          // the called party rings
  Established,        // the called party answered
  Held,
  Retrieved,
  ConnectionCleared,  // the call (or one party) ended
  Transferred,
};

std::string_view eventName(EventKind kind);

struct Event {
  EventKind kind = EventKind::ServiceInitiated;
  std::string crossRefId;
  Connection connection;  // the connection the event is about
  std::string callingDevice;
  std::string calledDevice;
  // ECMA-269 event cause ("newCall", "normalClearing", "callCancelled", "busy",
  // "networkCongestion", "transfer", ...); "" for none.
  std::string cause;
};

std::string event(std::string_view ns, const Event& event);

// Reads an event back (tests and the fuzzer's round trip): its kind, cross reference,
// connection and cause. Throws NotCsta.
Event parseEvent(std::string_view body);

}  // namespace medius::gateway::csta
