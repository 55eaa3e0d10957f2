// RFC 4235 dialog-info+xml: the body of the NOTIFYs of a dialog-event subscription
// (Event: dialog) on the PBX phone's line, which remote call control (rcc.md) turns into
// CSTA events for calls the phone makes or receives by itself. A pure parser on pugixml:
// no SIP, no state (RccSession tracks the dialogs).
//
//   parse(body) -> Document         dialog-info version/state/entity and its dialogs
//               throws BadDialogInfo  not well-formed, too big, another root or namespace,
//                                     a missing or invalid required attribute/element,
//                                     an oversized field or too many dialogs
//
// Accepted: the RFC 4235 namespace (urn:ietf:params:xml:ns:dialog-info) or none, element
// prefixes ("d:dialog"); unknown elements and attributes (extensions) are ignored.
//
// Thread: any (pure function).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace medius::gateway::dialog_info {

inline constexpr std::string_view kContentType = "application/dialog-info+xml";
inline constexpr std::string_view kNamespace = "urn:ietf:params:xml:ns:dialog-info";
inline constexpr std::size_t kMaxBodyBytes = 64 * 1024;
inline constexpr std::size_t kMaxFieldBytes = 1024;
inline constexpr std::size_t kMaxDialogs = 64;

enum class DocState { Full, Partial };
enum class Direction { Unspecified, Initiator, Recipient };
enum class State { Trying, Proceeding, Early, Confirmed, Terminated };

std::string_view stateName(State state);

struct Participant {
  std::string identity;  // <identity> URI ("sip:+14155550199@pbx")
  std::string display;   // its display attribute
  std::string target;    // <target uri="...">
};

struct Dialog {
  std::string id;  // required
  std::string callId;
  std::string localTag;
  std::string remoteTag;
  Direction direction = Direction::Unspecified;
  State state = State::Trying;
  std::string event;  // "cancelled", "rejected", "replaced", "local-bye", "remote-bye", ...
  int code = 0;       // the SIP status of <state code=...>, 0 when absent
  Participant local;
  Participant remote;
};

struct Document {
  std::uint64_t version = 0;
  DocState state = DocState::Full;
  std::string entity;
  std::vector<Dialog> dialogs;
};

class BadDialogInfo : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Document parse(std::string_view body);

}  // namespace medius::gateway::dialog_info
