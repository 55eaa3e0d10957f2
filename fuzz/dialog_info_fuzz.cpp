// RFC 4235 dialog-info+xml (the NOTIFYs of remote call control's dialog-event subscription,
// docs/rcc.md) on arbitrary bodies: dialog_info::parse() returns a document or throws
// BadDialogInfo (nothing else, no crash); a document then goes through a monitoring
// RccSession twice (as a full and as a partial state) and every event it gives is
// well-formed CSTA naming the monitored line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "medius/gateway/csta.hpp"
#include "medius/gateway/dialog_info.hpp"
#include "medius/gateway/rcc_session.hpp"

namespace {

using namespace medius::gateway;

void check(const std::vector<std::string>& events) {
  for (const auto& body : events) {
    csta::Event e = csta::parseEvent(body);  // throws (uncaught: a crash) when not CSTA
    if (e.connection.deviceId != "+14255550100" || e.crossRefId != "r1") std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  dialog_info::Document doc;
  try {
    doc = dialog_info::parse(text);
  } catch (const dialog_info::BadDialogInfo&) {
    return 0;
  }
  if (doc.dialogs.size() > dialog_info::kMaxDialogs || doc.entity.empty()) std::abort();
  RccSession session("sip:alice@example.com", "r1");
  csta::Request start;
  start.kind = csta::RequestKind::MonitorStart;
  start.ns = std::string(csta::kNamespaceEd3);
  start.monitorDevice = "tel:+14255550100";
  session.onRequest(start);
  session.authorized(start, "+14255550100", "");
  auto own = [](const std::string& callId) { return callId.size() % 2 == 0; };
  check(session.phoneDialogs(doc, own));
  doc.state = dialog_info::DocState::Partial;
  doc.version += 1;
  check(session.phoneDialogs(doc, nullptr));
  doc.state = dialog_info::DocState::Full;
  doc.dialogs.clear();
  check(session.phoneDialogs(doc, own));
  if (session.phoneDialogCount() != 0) std::abort();
  return 0;
}
