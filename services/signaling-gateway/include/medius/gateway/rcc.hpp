// Rcc: remote call control of PBX phones (uaCSTA, ECMA TR/87; issue 10). The SIP side of
// RccSession: a client's control dialog, and the third-party calls it makes.
//
// Control dialog: an out-of-dialog INVITE from the internal side with Content-Type
// application/csta+xml (no SDP; any Request-URI) from an authenticated user opens a
// session. It is answered 200 with application/csta+xml: the response to the CSTA
// request in its body (RequestSystemStatusResponse when it has none). Each INFO in the
// dialog carries one request, answered 200 with the CSTA response (or CSTAErrorCode) in
// the 200's body (a body that is not CSTA XML: 400). Events go to the client as INFO
// requests in the dialog, one at a time in order; an event INFO answered 481/408 (the
// client is gone) ends the session. BYE ends the session; its calls go on (they are the
// user's phone calls) and end when a party hangs up.
//
// Authorization: every MakeCall and MonitorStart names a device; Routing.ControlLine
// decides (the user must own the line, and it must have a PBX phone on a usable trunk).
//
// MakeCall (RFC 3725 flow I): INVITE without SDP to the PBX phone (ControlLine's trunk
// target); its 200 carries an offer; the far end (Routing.RouteCall for the called number,
// as a call of the user; the first trunk target) gets an INVITE with that offer; its 200
// is ACKed and its answer goes in the ACK to the PBX phone. The media flows between the
// phone and the far end directly (no media worker). A far end that fails: the phone's
// 2xx is ACKed with a rejecting answer (port 0) and BYEd. BYE from either side, or
// ClearConnection: BYE (or CANCEL) the other side, ConnectionCleared.
// HoldCall/RetrieveCall: a re-INVITE to the PBX phone with the far end's SDP, a=inactive /
// a=sendrecv (new o= version); SingleStepTransfer: REFER to the PBX phone (Refer-To the
// number at the PBX); a PBX answering 405/501 gets the client a CSTA error, not a hung
// request.
//
// Thread: construct, use and destroy on the SIP loop only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sofia-sip/nta.h>

#include "medius/gateway/b2bua.hpp"
#include "medius/gateway/call_auth.hpp"
#include "medius/gateway/call_records.hpp"
#include "medius/gateway/config.hpp"
#include "medius/gateway/metrics.hpp"
#include "medius/gateway/rcc_session.hpp"
#include "medius/gateway/routing_client.hpp"
#include "medius/gateway/sip_loop.hpp"

namespace medius::gateway {

class Rcc {
 public:
  struct Deps {
    SipLoop& loop;
    nta_agent_t* agent;
    const GatewayConfig& config;
    RoutingClient& routing;
    GatewayMetrics& metrics;
    // Sessions and calls are listed with the calls (medctl calls).
    CallDirectory& directory;
    LocalContacts contacts;
  };
  explicit Rcc(Deps deps);
  // Ends every session and call (BYE).
  ~Rcc();
  Rcc(const Rcc&) = delete;
  Rcc& operator=(const Rcc&) = delete;

  // True for an out-of-dialog INVITE that opens a control session (application/csta+xml).
  static bool isControlInvite(const sip_t* sip);
  // A control INVITE from the internal side; `caller` who the gateway authenticated.
  // Returns what the leg callback returns (0: answered by us).
  int onInvite(nta_incoming_t* irq, const sip_t* sip, const RequestSource& source,
               const CallerIdentity& caller);

  // Ends every call and session now (BYE; shutdown after the drain grace period).
  void endAll();

  std::size_t sessions() const { return sessions_.size(); }
  std::size_t calls() const { return calls_.size(); }

  struct Session;
  struct Call;
  struct Tx;
  struct Subscription;

 private:
  static int sessionLegCallback(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq,
                                const sip_t* sip) noexcept;
  static int inviteIrqCallback(nta_incoming_magic_t* magic, nta_incoming_t* irq,
                               const sip_t* sip) noexcept;
  static int callLegCallback(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq,
                             const sip_t* sip) noexcept;
  static int txResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq,
                        const sip_t* sip) noexcept;

  void onSessionRequest(Session& s, nta_incoming_t* irq, const sip_t* sip);
  // Handles one CSTA body (INVITE or INFO); answers `irq` now or later.
  void onCsta(Session& s, nta_incoming_t* irq, const std::string& body, bool invite);
  void answer(Session& s, nta_incoming_t* irq, bool invite, const RccReply& reply,
              std::string_view request);
  void act(Session& s, nta_incoming_t* irq, bool invite, const csta::Request& request,
           const RccReply& reply);
  void onControlLine(const std::string& sessionId, std::uint64_t pendingId,
                     const grpc::Status& status, const v1::ControlLineResponse& response);
  void sendEvents(Session& s, std::vector<std::string> events);
  void pumpEvents(Session& s);
  // `bye`: tell the client (shutdown).
  void endSession(Session& s, const char* why, bool bye = false);

  // The dialog-event subscription (RFC 4235) on the PBX phone of a monitored line.
  void subscribe(Session& s, const v1::TrunkTarget& phone);
  // Ends it (SUBSCRIBE Expires: 0 once the PBX accepted it).
  void unsubscribe(Session& s, const char* why);
  bool sendSubscribe(Subscription& sub, unsigned expires);
  void onSubscribeResponse(Tx& tx, int status, const sip_t* sip);
  static int subscriptionLegCallback(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq,
                                     const sip_t* sip) noexcept;
  void onSubscriptionRequest(Subscription& sub, nta_incoming_t* irq, const sip_t* sip);
  static void onRefreshTimer(su_root_magic_t* magic, su_timer_t* timer, su_timer_arg_t* arg) noexcept;

  // 3PCC.
  void startCall(Session& s, const std::string& callId, const v1::TrunkTarget& phone,
                 const std::string& called);
  void onFarRoute(const std::string& callId, const grpc::Status& status, const v1::RoutePlan& plan);
  void onTxResponse(Tx& tx, nta_outgoing_t* orq, const sip_t* sip);
  void onCallRequest(Call& c, bool fromPhone, nta_incoming_t* irq, const sip_t* sip);
  void progress(Call& c, RccProgress step);
  // Ends the call: BYE/CANCEL what is up, ConnectionCleared (cause from `status`).
  void endCall(Call& c, int status, const char* why);
  void holdOrRetrieve(Session& s, Call& c, nta_incoming_t* irq, const csta::Request& request,
                      bool hold);
  void transfer(Session& s, Call& c, nta_incoming_t* irq, const csta::Request& request);
  // AnswerCall: NOTIFY (Event: talk) to the PBX phone whose own call rings.
  void answerPhone(Session& s, nta_incoming_t* irq, bool invite, const csta::Request& request);
  // Destroys ended calls and sessions (and finished transactions) from a posted task.
  void reap();
  void sweep();
  // calls.no_answer_timeout_ms while the phone, then the far end, rings: ended with
  // ConnectionCleared (callNotAnswered).
  void armRingTimer(Call& c);
  static void onRingTimer(su_root_magic_t* magic, su_timer_t* timer, su_timer_arg_t* arg) noexcept;
  // medctl calls: a session as one entry (caller: the user, callee "uaCSTA session"), a
  // call as another (caller: the controlled line, callee: the far end, legs: phone, far).
  void publish(const Session& s);
  void publish(const Call& c);

  Session* findSession(const std::string& id);
  Call* findCall(const std::string& id);

  Deps d_;
  std::shared_ptr<Rcc*> self_;
  std::map<std::string, std::unique_ptr<Session>> sessions_;
  std::map<std::string, std::unique_ptr<Call>> calls_;
  std::uint64_t nextPending_ = 1;
  bool reapPosted_ = false;
  bool shuttingDown_ = false;
};

}  // namespace medius::gateway
