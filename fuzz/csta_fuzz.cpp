// The uaCSTA codec (remote call control, issue 10) on arbitrary bodies: parseRequest()
// either returns a request, or throws csta::BadRequest or csta::NotCsta (nothing else, no
// crash). A request then goes through an RccSession as the gateway drives it (request,
// authorization, the call's events, its end); every body written is well-formed CSTA and
// an event reads back with the call and device it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "medius/gateway/csta.hpp"
#include "medius/gateway/rcc_session.hpp"

namespace {

using namespace medius::gateway;

void wellFormed(const std::string& body) {
  if (body.empty()) return;
  try {
    csta::Request again = csta::parseRequest(body);  // a response reads as an Unknown request
    if (again.kind != csta::RequestKind::Unknown) std::abort();
  } catch (const csta::NotCsta&) {
    std::abort();
  } catch (const csta::BadRequest&) {
    std::abort();
  }
}

void checkEvents(const std::vector<std::string>& events, const std::string& callId,
                 const std::string& device) {
  for (const auto& body : events) {
    csta::Event e = csta::parseEvent(body);
    if (e.connection.callId != callId || e.connection.deviceId != device) std::abort();
  }
}

void drive(const csta::Request& request) {
  RccSession session("sip:alice@example.com", "r1");
  RccReply reply = session.onRequest(request);
  wellFormed(reply.body);
  if (reply.action.kind == RccAction::Kind::Authorize) {
    wellFormed(session.authorized(request, "", "privilegeViolationOnSpecifiedDevice").body);
    RccReply ok = session.authorized(request, request.callingDevice, "");
    wellFormed(ok.body);
    if (ok.action.kind == RccAction::Kind::StartCall) {
      const std::string& id = ok.action.callId;
      for (RccProgress p : {RccProgress::DeskRinging, RccProgress::DeskAnswered,
                            RccProgress::FarRinging, RccProgress::FarAnswered, RccProgress::Held,
                            RccProgress::Retrieved}) {
        checkEvents(session.progress(id, p), id, request.callingDevice);
      }
      checkEvents(session.cleared(id, 486), id, request.callingDevice);
      if (session.hasCall(id)) std::abort();
    }
  }
  if (reply.action.kind == RccAction::Kind::None && reply.body.empty()) std::abort();
  wellFormed(session.actionDone(request, 200).body);
  wellFormed(session.actionDone(request, 501).body);
  // Any request's own fields as an event's: what goes out reads back the same.
  csta::Event e;
  e.kind = csta::EventKind::Delivered;
  e.connection = request.connection;
  e.calledDevice = request.calledDirectoryNumber;
  checkEvents({csta::event(request.ns, e)}, request.connection.callId,
              request.connection.deviceId);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    drive(csta::parseRequest(text));
  } catch (const csta::BadRequest& bad) {
    RccSession session("sip:alice@example.com", "r1");
    RccReply reply = session.onBadRequest(bad);
    if (reply.body.empty()) std::abort();
    wellFormed(reply.body);
  } catch (const csta::NotCsta&) {
  }
  try {
    csta::parseEvent(text);
  } catch (const csta::NotCsta&) {
  }
  return 0;
}
