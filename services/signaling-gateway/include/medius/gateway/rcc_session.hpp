// One remote-call-control session (uaCSTA over a SIP INVITE dialog, issue 10): what the
// client asked (CSTA requests), what the gateway must do about it, and the CSTA events the
// phone's calls produce. No SIP, no gRPC: the gateway's RccManager carries the decisions
// out (ControlLine, the 3PCC INVITEs toward the PBX phone and the far end) and feeds the
// calls' progress back.
//
//   request                 checks (here)                      then
//   MakeCall                callingDevice given                Authorize(device) -> the
//                                                              gateway asks routing
//                                                              (ControlLine) -> authorized()
//                                                              -> MakeCallResponse + StartCall
//   ClearConnection         a call of this session             ClearCall; response at once
//   HoldCall/RetrieveCall   a connected call, not (un)held     Hold/Retrieve; response when
//                                                              the PBX phone answered it
//   SingleStepTransfer      a connected call                   Transfer (REFER to the phone)
//   MonitorStart            deviceObject given                 Authorize(device) -> response
//                                                              with the session's cross ref
//   MonitorStop             that cross reference               response at once
//   RequestSystemStatus     -                                  response (normal) at once
//   AnswerCall              a call of the phone's own, ringing Answer (NOTIFY Event: talk to
//                           on it (dialog events)              the phone); response when the
//                                                              PBX answered it
//   others                  -                                  CSTA error (not supported)
//
// Events: one per step of a session's call, always sent (with the cross reference of the
// session's monitor, which MonitorStart returns): desk phone rings -> ServiceInitiated,
// desk phone answered (it is off-hook and the far end is being called) -> Originated, far
// end rings -> Delivered, far end answered -> Established, hold -> Held, retrieve ->
// Retrieved, the end -> ConnectionCleared (cause normalClearing, or busy/callNotAnswered/
// networkCongestion... from the SIP failure).
//
// Thread: one (the SIP loop).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "medius/gateway/csta.hpp"
#include "medius/gateway/dialog_info.hpp"

namespace medius::gateway {

// What the gateway must do for a request.
struct RccAction {
  enum class Kind {
    None,       // nothing: `reply` answers the request
    Authorize,  // ask routing whether the user may control `device`, then authorized()
    StartCall,  // 3PCC: ring the desk phone, then `called` (call `callId`)
    ClearCall,  // end call `callId` (BYE/CANCEL both legs)
    Hold,       // re-INVITE the desk phone's leg on hold; then holdDone()
    Retrieve,   // re-INVITE it off hold; then holdDone()
    Transfer,   // REFER the desk phone to `called`; then transferDone()
    Subscribe,    // MonitorStart allowed: SUBSCRIBE (Event: dialog) to the desk phone's line
    Unsubscribe,  // MonitorStop: end that subscription (SUBSCRIBE Expires: 0)
    Answer,       // AnswerCall: make the ringing phone answer `callId` (NOTIFY Event: talk);
                  // then actionDone()
  };
  Kind kind = Kind::None;
  std::string callId;
  std::string device;  // Authorize: the device to control
  std::string called;  // StartCall, Transfer: the number/URI as the client gave it
};

struct RccReply {
  // The CSTA body for the SIP 200 of the request (a response or a CSTAErrorCode); empty
  // while the answer is deferred (an action is pending).
  std::string body;
  // For metrics: "ok", "refused" (a CSTA error the client caused: unknown call, not owner),
  // "unsupported", "failed" (the PBX or the far end failed it), "pending" (deferred).
  std::string outcome;
  RccAction action;
};

// The steps of a 3PCC call the gateway reports.
enum class RccProgress {
  DeskRinging,     // 180/183 from the desk phone
  DeskAnswered,    // 200 from the desk phone (its offer): the far end is called now
  FarRinging,      // 180/183 from the far end
  FarAnswered,     // 200 from the far end: both connected
  Held,
  Retrieved,
};

class RccSession {
 public:
  // `user`: the authenticated AOR; `crossRefId`: this session's monitor reference.
  RccSession(std::string user, std::string crossRefId);

  const std::string& user() const { return user_; }
  const std::string& crossRefId() const { return crossRefId_; }
  bool monitoring() const { return monitoring_; }
  // The namespace the client spoke (answers and events use it).
  const std::string& ns() const { return ns_; }

  // A request the codec parsed.
  RccReply onRequest(const csta::Request& request);
  // A request the codec refused with a CSTA error.
  RccReply onBadRequest(const csta::BadRequest& bad);

  // The gateway's answer to Authorize for the pending request (the one onRequest gave
  // Authorize for): `lineNumber` is the device as the session reports it
  // ("+14255550100"); `error` a CSTA operation error ("privilegeViolationOnSpecifiedDevice",
  // "invalidCallingDevice", "requestIncompatibleWithObject") when not allowed.
  RccReply authorized(const csta::Request& request, const std::string& lineNumber,
                      const std::string& error);

  // The deferred answer of a Hold/Retrieve/Transfer/AnswerCall (`sipStatus`: the PBX
  // phone's final answer to the re-INVITE, REFER or NOTIFY; 405/420/489/501: it does not do
  // that at all -> requestIncompatibleWithObject).
  RccReply actionDone(const csta::Request& request, int sipStatus);

  // A step of call `callId`: the events to send (possibly none).
  std::vector<std::string> progress(const std::string& callId, RccProgress step);
  // The call ended (`sipStatus`: the failure that ended it, 0 for a normal hang-up or
  // ClearConnection): ConnectionCleared; the call is forgotten.
  std::vector<std::string> cleared(const std::string& callId, int sipStatus);

  // Calls of this session (for medctl calls, and BYE of the session).
  struct CallInfo {
    std::string callId;
    std::string device;  // the controlled line ("+14255550100")
    std::string called;  // the far end as dialled
    bool connected = false;
    bool held = false;
  };
  const std::map<std::string, CallInfo>& calls() const { return calls_; }
  bool hasCall(const std::string& callId) const { return calls_.count(callId) != 0; }

  // The desk phone's own calls (RFC 4235 dialog events of its line, rcc.md): a NOTIFY body
  // of the subscription MonitorStart started. Returns the CSTA events to send, in order:
  //   recipient (or no direction) trying/proceeding/early -> Delivered (alertingDevice: the
  //     line; callingDevice: the remote identity), once
  //   initiator trying -> ServiceInitiated; proceeding/early -> Originated (ServiceInitiated
  //     first when it was not sent), once each
  //   confirmed -> Established, once
  //   terminated (or gone from a full document) -> ConnectionCleared (cause from the
  //     state's code: clearCause()), and the dialog is forgotten
  // A dialog whose call-id `isOwnLeg` recognises (the gateway's own MakeCall leg toward the
  // phone) is skipped: its events come from the 3PCC already. A terminated dialog never
  // reported is skipped; a partial document not newer than the last one is ignored. Each
  // phone dialog gets a CSTA callID "<crossRef>-p<n>". Nothing while not monitoring.
  std::vector<std::string> phoneDialogs(const dialog_info::Document& doc,
                                        const std::function<bool(const std::string&)>& isOwnLeg);
  // The subscription ended (MonitorStop, refused or terminated): forget the phone's dialogs.
  void phoneDialogsReset();
  std::size_t phoneDialogCount() const { return phoneDialogs_.size(); }
  // The line MonitorStart was allowed on ("" before).
  const std::string& monitoredLine() const { return monitoredLine_; }
  // Most phone dialogs tracked at once (more are ignored).
  static constexpr std::size_t kMaxPhoneDialogs = 64;

 private:
  RccReply error(const std::string& value, const std::string& outcome,
                 csta::ErrorCategory category = csta::ErrorCategory::Operation);
  using EventKind = csta::EventKind;
  std::string eventBody(csta::EventKind kind, const CallInfo& call, const std::string& cause);

  std::string user_;
  std::string crossRefId_;
  std::string ns_{csta::kNamespaceEd3};
  bool monitoring_ = false;
  std::uint64_t nextCall_ = 1;
  std::map<std::string, CallInfo> calls_;

  enum class PhoneStage { None, Initiated, Originated, Delivered, Established };
  struct PhoneDialog {
    CallInfo call;  // callId, device (the line), called (the other party)
    bool initiator = false;
    PhoneStage stage = PhoneStage::None;
  };
  std::string phoneEvent(EventKind kind, const PhoneDialog& d, const std::string& cause);
  std::string monitoredLine_;
  std::optional<std::uint64_t> dialogVersion_;
  std::uint64_t nextPhoneCall_ = 1;
  std::map<std::string, PhoneDialog> phoneDialogs_;  // by RFC 4235 dialog id
};

// The ECMA-269 event cause for a SIP failure ending a call: 0 -> "normalClearing",
// 486/600 -> "busy", 408/480/487 -> "callNotAnswered", 404/484/604 -> "destNotObtainable",
// 403/603 -> "blocked", 5xx -> "networkCongestion", others -> "normalClearing".
std::string clearCause(int sipStatus);

// SDP for the 3PCC legs (plain text rewrites; the phone and the far end negotiate).
// `sdp` with every a=sendrecv/sendonly/recvonly/inactive line replaced by one session-level
// direction (a=inactive to hold, a=sendrecv to retrieve) and the o= version set to
// `version`: the re-offer to the PBX phone. Lines end in CRLF.
std::string rccDirectionOffer(const std::string& sdp, bool hold, std::uint64_t version);
// An answer refusing every stream of `offer` (its m= lines with port 0): what the PBX
// phone's ACK carries when the far end failed, before its BYE (RFC 3725 flow I).
std::string rccRejectAnswer(const std::string& offer);
// The user part of a device or number as a client gives it ("tel:+14155550199;phone-context=x"
// -> "+14155550199", "sip:2200@pbx" -> "2200", "+1 (415)" unchanged).
std::string rccNumberOf(const std::string& device);

}  // namespace medius::gateway
