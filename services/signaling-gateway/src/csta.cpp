#include "medius/gateway/csta.hpp"

#include <array>
#include <utility>

#include <pugixml.hpp>

namespace medius::gateway::csta {

namespace {

constexpr std::string_view kEcma323Prefix = "http://www.ecma-international.org/standards/ecma-323/csta/";

std::string_view localName(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

std::string_view prefixOf(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  return colon == std::string_view::npos ? std::string_view{} : name.substr(0, colon);
}

pugi::xml_node child(const pugi::xml_node& node, std::string_view name) {
  for (pugi::xml_node c = node.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && localName(c) == name) return c;
  }
  return {};
}

std::string trimmed(std::string_view s) {
  const char* ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

// The text of an element (its first text or CDATA child), trimmed.
std::string text(const pugi::xml_node& node) {
  for (pugi::xml_node c = node.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) return trimmed(c.value());
  }
  return {};
}

struct KindName {
  std::string_view element;
  RequestKind kind;
};

constexpr std::array<KindName, 10> kRequests{{
    {"MakeCall", RequestKind::MakeCall},
    {"AnswerCall", RequestKind::AnswerCall},
    {"ClearConnection", RequestKind::ClearConnection},
    {"HoldCall", RequestKind::HoldCall},
    {"RetrieveCall", RequestKind::RetrieveCall},
    {"SingleStepTransferCall", RequestKind::SingleStepTransfer},
    {"SingleStepTransfer", RequestKind::SingleStepTransfer},
    {"MonitorStart", RequestKind::MonitorStart},
    {"MonitorStop", RequestKind::MonitorStop},
    {"RequestSystemStatus", RequestKind::RequestSystemStatus},
}};

// The connection-valued parameter of each request that has one.
std::string_view connectionElement(RequestKind kind) {
  switch (kind) {
    case RequestKind::AnswerCall: return "callToBeAnswered";
    case RequestKind::ClearConnection: return "connectionToBeCleared";
    case RequestKind::HoldCall: return "callToBeHeld";
    case RequestKind::RetrieveCall: return "callToBeRetrieved";
    case RequestKind::SingleStepTransfer: return "activeCall";
    default: return {};
  }
}

std::string_view responseElement(RequestKind kind) {
  switch (kind) {
    case RequestKind::MakeCall: return "MakeCallResponse";
    case RequestKind::AnswerCall: return "AnswerCallResponse";
    case RequestKind::ClearConnection: return "ClearConnectionResponse";
    case RequestKind::HoldCall: return "HoldCallResponse";
    case RequestKind::RetrieveCall: return "RetrieveCallResponse";
    case RequestKind::SingleStepTransfer: return "SingleStepTransferCallResponse";
    case RequestKind::MonitorStart: return "MonitorStartResponse";
    case RequestKind::MonitorStop: return "MonitorStopResponse";
    case RequestKind::RequestSystemStatus: return "RequestSystemStatusResponse";
    case RequestKind::Unknown: break;
  }
  return "CSTAErrorCode";
}

std::string_view eventElement(EventKind kind) {
  switch (kind) {
    case EventKind::ServiceInitiated: return "ServiceInitiatedEvent";
    case EventKind::Originated: return "OriginatedEvent";
    case EventKind::Delivered: return "DeliveredEvent";
    case EventKind::Established: return "EstablishedEvent";
    case EventKind::Held: return "HeldEvent";
    case EventKind::Retrieved: return "RetrievedEvent";
    case EventKind::ConnectionCleared: return "ConnectionClearedEvent";
    // ECMA-323 spells it with one r.
    case EventKind::Transferred: return "TransferedEvent";
  }
  return "";
}

// Each event's connection element and the device element naming who did it.
std::pair<std::string_view, std::string_view> eventParts(EventKind kind) {
  switch (kind) {
    case EventKind::ServiceInitiated: return {"initiatedConnection", "initiatingDevice"};
    case EventKind::Originated: return {"originatedConnection", "callingDevice"};
    case EventKind::Delivered: return {"connection", "alertingDevice"};
    case EventKind::Established: return {"establishedConnection", "answeringDevice"};
    case EventKind::Held: return {"heldConnection", "holdingDevice"};
    case EventKind::Retrieved: return {"retrievedConnection", "retrievingDevice"};
    case EventKind::ConnectionCleared: return {"droppedConnection", "releasingDevice"};
    case EventKind::Transferred: return {"primaryOldCall", "transferringDevice"};
  }
  return {"connection", "device"};
}

class XmlWriter final : public pugi::xml_writer {
 public:
  void write(const void* data, std::size_t size) override {
    out.append(static_cast<const char*>(data), size);
  }
  std::string out;
};

std::string render(const pugi::xml_document& doc) {
  XmlWriter w;
  doc.save(w, "", pugi::format_raw, pugi::encoding_utf8);
  return std::move(w.out);
}

pugi::xml_node root(pugi::xml_document& doc, std::string_view name, std::string_view ns) {
  pugi::xml_node decl = doc.append_child(pugi::node_declaration);
  decl.append_attribute("version") = "1.0";
  decl.append_attribute("encoding") = "UTF-8";
  pugi::xml_node r = doc.append_child(std::string(name).c_str());
  r.append_attribute("xmlns") = std::string(ns.empty() ? kNamespaceEd3 : ns).c_str();
  return r;
}

void textChild(pugi::xml_node parent, const char* name, const std::string& value) {
  parent.append_child(name).text().set(value.c_str());
}

void connectionChild(pugi::xml_node parent, std::string_view name, const Connection& c) {
  pugi::xml_node n = parent.append_child(std::string(name).c_str());
  textChild(n, "callID", c.callId);
  textChild(n, "deviceID", c.deviceId);
}

void deviceChild(pugi::xml_node parent, std::string_view name, const std::string& device) {
  pugi::xml_node n = parent.append_child(std::string(name).c_str());
  textChild(n, "deviceIdentifier", device);
}

// Parses `body` into a document and returns its root element and namespace.
pugi::xml_node load(pugi::xml_document& doc, std::string_view body, std::string& ns) {
  if (body.size() > kMaxBodyBytes) throw NotCsta("body larger than " + std::to_string(kMaxBodyBytes) + " bytes");
  pugi::xml_parse_result r =
      doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!r) throw NotCsta(std::string("not well-formed XML: ") + r.description());
  pugi::xml_node top = doc.document_element();
  if (!top) throw NotCsta("no root element");
  std::string attr = "xmlns";
  if (std::string_view p = prefixOf(top); !p.empty()) attr.append(":").append(p);
  ns = top.attribute(attr.c_str()).value();
  if (!ns.empty() && std::string_view(ns).substr(0, kEcma323Prefix.size()) != kEcma323Prefix) {
    throw NotCsta("root element in namespace " + ns + ", not ECMA-323");
  }
  if (ns.empty()) ns = std::string(kNamespaceEd3);
  return top;
}

std::string field(const Request& req, const pugi::xml_node& node, std::string_view what,
                  std::string_view missingError) {
  std::string value = node ? text(node) : std::string();
  if (value.empty()) {
    throw BadRequest(req.name + ": " + std::string(what) + " is missing", req,
                     Error{ErrorCategory::Operation, std::string(missingError)});
  }
  if (value.size() > kMaxFieldBytes) {
    throw BadRequest(req.name + ": " + std::string(what) + " longer than " +
                         std::to_string(kMaxFieldBytes) + " bytes",
                     req, Error{ErrorCategory::Operation, "valueOutOfRange"});
  }
  return value;
}

}  // namespace

std::string_view requestName(RequestKind kind) {
  switch (kind) {
    case RequestKind::Unknown: return "unknown";
    case RequestKind::MakeCall: return "make_call";
    case RequestKind::AnswerCall: return "answer_call";
    case RequestKind::ClearConnection: return "clear_connection";
    case RequestKind::HoldCall: return "hold_call";
    case RequestKind::RetrieveCall: return "retrieve_call";
    case RequestKind::SingleStepTransfer: return "single_step_transfer";
    case RequestKind::MonitorStart: return "monitor_start";
    case RequestKind::MonitorStop: return "monitor_stop";
    case RequestKind::RequestSystemStatus: return "request_system_status";
  }
  return "unknown";
}

std::string_view eventName(EventKind kind) { return eventElement(kind); }

Request parseRequest(std::string_view body) {
  pugi::xml_document doc;
  Request req;
  pugi::xml_node top = load(doc, body, req.ns);
  req.name = std::string(localName(top));
  if (req.name.size() > kMaxFieldBytes) req.name.resize(kMaxFieldBytes);
  for (const auto& k : kRequests) {
    if (k.element == req.name) req.kind = k.kind;
  }
  switch (req.kind) {
    case RequestKind::Unknown:
    case RequestKind::RequestSystemStatus:
      break;
    case RequestKind::MakeCall:
      req.callingDevice = field(req, child(top, "callingDevice"), "callingDevice", "invalidCallingDevice");
      req.calledDirectoryNumber = field(req, child(top, "calledDirectoryNumber"),
                                        "calledDirectoryNumber", "invalidCalledDevice");
      break;
    case RequestKind::AnswerCall:
    case RequestKind::ClearConnection:
    case RequestKind::HoldCall:
    case RequestKind::RetrieveCall:
    case RequestKind::SingleStepTransfer: {
      std::string_view name = connectionElement(req.kind);
      pugi::xml_node c = child(top, name);
      req.connection.callId = field(req, child(c, "callID"), std::string(name) + "/callID",
                                    "invalidCallIdentifier");
      req.connection.deviceId = field(req, child(c, "deviceID"), std::string(name) + "/deviceID",
                                      "invalidDeviceIdentifier");
      if (req.kind == RequestKind::SingleStepTransfer) {
        req.transferredTo =
            field(req, child(top, "transferredTo"), "transferredTo", "invalidDestination");
      }
      break;
    }
    case RequestKind::MonitorStart:
      req.monitorDevice = field(req, child(child(top, "monitorObject"), "deviceObject"),
                                "monitorObject/deviceObject", "invalidDeviceIdentifier");
      break;
    case RequestKind::MonitorStop:
      req.crossRefId = field(req, child(top, "monitorCrossRefID"), "monitorCrossRefID",
                             "invalidCrossRefID");
      break;
  }
  return req;
}

std::string response(RequestKind kind, std::string_view ns, const ResponseInfo& info) {
  pugi::xml_document doc;
  pugi::xml_node r = root(doc, responseElement(kind), ns);
  switch (kind) {
    case RequestKind::MakeCall: connectionChild(r, "callingDevice", info.callingDevice); break;
    case RequestKind::MonitorStart: textChild(r, "monitorCrossRefID", info.crossRefId); break;
    case RequestKind::SingleStepTransfer:
      connectionChild(r, "transferredCall", info.transferredCall);
      break;
    case RequestKind::RequestSystemStatus: textChild(r, "systemStatus", "normal"); break;
    case RequestKind::Unknown:
      return errorResponse(ns, Error{ErrorCategory::Operation, "invalidFeature"});
    default: break;
  }
  return render(doc);
}

std::string errorResponse(std::string_view ns, const Error& error) {
  pugi::xml_document doc;
  pugi::xml_node r = root(doc, "CSTAErrorCode", ns);
  const char* category = "unspecified";
  switch (error.category) {
    case ErrorCategory::Operation: category = "operation"; break;
    case ErrorCategory::StateIncompatibility: category = "stateIncompatibility"; break;
    case ErrorCategory::SystemResourceAvailability: category = "systemResourceAvailability"; break;
    case ErrorCategory::Unspecified: category = "unspecified"; break;
  }
  textChild(r, category, error.value.empty() ? std::string("generic") : error.value);
  return render(doc);
}

std::string event(std::string_view ns, const Event& e) {
  pugi::xml_document doc;
  pugi::xml_node r = root(doc, eventElement(e.kind), ns);
  textChild(r, "monitorCrossRefID", e.crossRefId);
  auto [connection, device] = eventParts(e.kind);
  connectionChild(r, connection, e.connection);
  deviceChild(r, device, e.connection.deviceId);
  if (e.kind == EventKind::ServiceInitiated || e.kind == EventKind::Originated ||
      e.kind == EventKind::Delivered || e.kind == EventKind::Established) {
    if (e.kind != EventKind::Originated && !e.callingDevice.empty()) {
      deviceChild(r, "callingDevice", e.callingDevice);
    }
    if (!e.calledDevice.empty()) deviceChild(r, "calledDevice", e.calledDevice);
  }
  if (e.kind == EventKind::Transferred && !e.calledDevice.empty()) {
    deviceChild(r, "transferredToDevice", e.calledDevice);
  }
  textChild(r, "localConnectionInfo",
            e.kind == EventKind::ConnectionCleared ? "null"
            : e.kind == EventKind::Held            ? "hold"
                                                   : "connected");
  if (!e.cause.empty()) textChild(r, "cause", e.cause);
  return render(doc);
}

Event parseEvent(std::string_view body) {
  pugi::xml_document doc;
  std::string ns;
  pugi::xml_node top = load(doc, body, ns);
  Event e;
  bool known = false;
  for (EventKind k : {EventKind::ServiceInitiated, EventKind::Originated, EventKind::Delivered,
                      EventKind::Established, EventKind::Held, EventKind::Retrieved,
                      EventKind::ConnectionCleared, EventKind::Transferred}) {
    if (localName(top) == eventElement(k)) {
      e.kind = k;
      known = true;
    }
  }
  if (!known) throw NotCsta("not a CSTA event: " + std::string(localName(top)));
  e.crossRefId = text(child(top, "monitorCrossRefID"));
  auto [connection, device] = eventParts(e.kind);
  pugi::xml_node c = child(top, connection);
  e.connection.callId = text(child(c, "callID"));
  e.connection.deviceId = text(child(c, "deviceID"));
  e.callingDevice = text(child(child(top, "callingDevice"), "deviceIdentifier"));
  e.calledDevice = text(child(child(top, "calledDevice"), "deviceIdentifier"));
  e.cause = text(child(top, "cause"));
  return e;
}

}  // namespace medius::gateway::csta
