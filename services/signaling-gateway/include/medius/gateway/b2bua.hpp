// B2bua: every call through the gateway. The caller's dialog (leg A) ends here; each
// target gets a dialog of its own (a fork, leg B) with its own Call-ID, tags, CSeq and
// Contact; nothing of one side's Via, Record-Route, Contact or Call-ID reaches the other.
//
// Life of a call (all on the SIP loop; gRPC results are posted back to it):
//   INVITE (Gateway::onRequest: trunk ACL, digest authentication of the internal side) ->
//   checks (draining, max calls, Max-Forwards, loop, SDP, trunk ACL by source address) ->
//   100 Trying -> Routing.RouteCall (the caller: the authenticated user, or a trusted
//   trunk's P-Asserted-Identity, else the From) -> outcome mapped to
//   SIP, or MediaTranscoder.CreateSession (leg A = caller) -> group 0: every target at
//   once (a user target: Registrar.Lookup, one fork per contact) -> 18x relayed (183
//   with SDP through UpdateSession as early media) -> first 2xx wins: ACK it, CANCEL the
//   others with Reason SIP;cause=200, UpdateSession with its answer, 200 to the caller ->
//   ACK from the caller -> confirmed. A group whose forks all fail (or whose timer fires)
//   hands over to the next group when failover is allowed (call.hpp) and no provisional
//   other than 100 was relayed; otherwise the best failure is relayed.
//   In dialog: BYE from either side is answered at once and sent to the other side;
//   re-INVITE from either side is relayed (SDP through UpdateSession; an offerless one is
//   answered with the last SDP); a second one while one is pending gets 491.
//   A media timeout event from the worker ends the call with BYE on both legs.
//   REFER (blind transfer) from either side: 202, NOTIFY sipfrag 100; the Refer-To target
//   is routed as a new call from the transferor and called with the SDP the transferor
//   had; on its 2xx the media worker's leg is re-pointed (UpdateSession), the remaining
//   party gets a re-INVITE with the new SDP (off hold), the transferor NOTIFY 200 and BYE;
//   on failure NOTIFY with the failure and the call goes on (or ends if the transferor
//   hung up meanwhile).
//   Session timers (RFC 4028) run per leg: the caller's Session-Expires is honoured on leg
//   A (422 below calls.min_se_s), leg B asks for calls.session_expires_s; where we are the
//   refresher we send an UPDATE (or a re-INVITE with the same SDP) at half the interval,
//   where the peer is, a missing refresh ends the call with BYE on both legs. A 422 from
//   a fork is answered once by the same INVITE with its Min-SE (RFC 4028 8.1).
//   100rel (RFC 3262) per leg: forks offer it and PRACK reliable 18x (prack()); the caller
//   gets early media reliably when it supports 100rel (relayProvisional()); nta answers its
//   PRACKs and holds our 2xx back until they came.
//   Our own re-INVITE/UPDATE (refresh, transfer re-bridge) that gets 491 is sent again
//   after the RFC 3261 14.1 delay (retryAfterGlare()).
//   The end: DeleteSession, a CDR line, metrics, and the Sofia objects are destroyed
//   from a posted task (never inside their own callbacks).
//
// Thread: construct, use and destroy on the SIP loop only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <sofia-sip/nta.h>

#include "medius/gateway/call.hpp"
#include "medius/gateway/call_auth.hpp"
#include "medius/gateway/call_records.hpp"
#include "medius/gateway/config.hpp"
#include "medius/gateway/media_client.hpp"
#include "medius/gateway/metrics.hpp"
#include "medius/gateway/register_request.hpp"
#include "medius/gateway/registrar_client.hpp"
#include "medius/gateway/routing_client.hpp"
#include "medius/gateway/sip_loop.hpp"
#include "medius/gateway/trunk_locator.hpp"

namespace medius::gateway {

// Where the gateway listens, per side and transport: the host:port its Contact names.
struct LocalContacts {
  // key: side ("internal"/"trunk") + "/" + proto ("udp", "tcp", "tls")
  std::map<std::string, std::string> hostPort;
  // proto: "udp", "tcp", "tls" (";transport=tls") or "sips" (a sips: Contact on the TLS
  // listener, for a dialog started with a sips: Request-URI).
  std::string contact(Side side, const std::string& proto, const std::string& user) const;
  // The host (no port) the side listens on, for From headers toward trunks.
  std::string hostOf(Side side, const std::string& proto) const;
  bool isOwn(const std::string& host, std::uint32_t port) const;
};

struct SessionTimer;

class B2bua {
 public:
  struct Deps {
    SipLoop& loop;
    nta_agent_t* agent;
    const GatewayConfig& config;
    RoutingClient& routing;
    RegistrarClient& registrar;
    MediaClient& media;
    GatewayMetrics& metrics;
    CallDirectory& directory;
    CdrWriter& cdr;
    LocalContacts contacts;
  };
  explicit B2bua(Deps deps);
  // Ends every call (BYE/CANCEL/503 as their state needs, cause "shutdown").
  ~B2bua();
  B2bua(const B2bua&) = delete;
  B2bua& operator=(const B2bua&) = delete;

  void setTrunkLocator(const TrunkLocator* locator) { trunks_ = locator; }

  // A new out-of-dialog INVITE (server transaction from the default leg). Returns what
  // the leg callback returns (0: answered by us, later). `caller`: who the Gateway
  // authenticated (empty on the trunk side and with auth.calls "off"); it is the caller
  // routing sees, the CDR records and a trusted trunk gets as P-Asserted-Identity.
  int onInvite(nta_incoming_t* irq, const sip_t* sip, Side side, const RequestSource& source,
               const CallerIdentity& caller);
  // A media worker's event (any thread).
  void onMediaEvent(const std::string& worker, const v1::MediaEvent& event);

  // New INVITEs get 503 from now on; calls in progress continue.
  void stopAccepting() { accepting_ = false; }
  // Ends every call now (shutdown after the grace period).
  void endAll(const std::string& cause);
  std::size_t activeCalls() const { return calls_.size(); }

  struct Call;
  struct Fork;

 private:
  // An in-dialog request we sent (BYE, re-INVITE/UPDATE relay, refresh, NOTIFY, re-bridge).
  struct DialogTx {
    B2bua* b2bua = nullptr;
    std::uint64_t id = 0;
    std::string callId;
    nta_outgoing_t* orq = nullptr;
    enum class Kind { Bye, Reinvite, Update, Refresh, Notify, Rebridge } kind = Kind::Bye;
    bool toA = false;
    nta_leg_t* leg = nullptr;  // the leg it was sent on (for the re-INVITE's ACK)
  };

  friend struct Call;
  friend struct Fork;

  // Callbacks (static trampolines, noexcept).
  static int aLegCallback(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq,
                          const sip_t* sip) noexcept;
  static int bLegCallback(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq,
                          const sip_t* sip) noexcept;
  static int inviteIrqCallback(nta_incoming_magic_t* magic, nta_incoming_t* irq,
                               const sip_t* sip) noexcept;
  static int forkResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq,
                          const sip_t* sip) noexcept;
  static int dialogResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq,
                            const sip_t* sip) noexcept;
  static void onGroupTimer(su_root_magic_t* magic, su_timer_t* timer,
                           su_timer_arg_t* arg) noexcept;
  static void onSessionTimer(su_root_magic_t* magic, su_timer_t* timer,
                             su_timer_arg_t* arg) noexcept;
  void armSessionTimer(SessionTimer& st);
  void sendRefresh(Call& call, bool toA);

  // Steps of a call.
  void onRoute(const std::string& id, const grpc::Status& status, const v1::RoutePlan& plan);
  void onMediaCreated(const std::string& id, const grpc::Status& status,
                      const v1::CreateSessionResponse& response, const std::string& worker);
  void startGroup(Call& call);
  void onLookup(const std::string& id, std::uint32_t generation, const v1::RouteTarget& target,
                const grpc::Status& status, const v1::LookupResponse& response);
  // Sends one INVITE (a fork of the current group, or the transfer target when
  // `transfer` is set: then `sdp` is the offer and the leg belongs to that side). Returns
  // the fork, or nullptr when nothing could be sent (recorded as a 503 failure).
  Fork* sendFork(Call& call, const v1::RouteTarget& target, const std::string& requestUri,
                 const std::string& toUri, const std::string& nextHop, Side side,
                 const std::vector<std::string>& path, const std::string* sdp = nullptr,
                 int transfer = 0);
  // Blind transfer (REFER, RFC 3515): the gateway is the transferee.
  void onRefer(Call& call, bool fromA, nta_incoming_t* irq, const sip_t* sip);
  void onTransferRoute(const std::string& id, const grpc::Status& status,
                       const v1::RoutePlan& plan);
  void onTransferLookup(const std::string& id, const v1::RouteTarget& target,
                        const grpc::Status& status, const v1::LookupResponse& response);
  // The transfer target gets an offer of its own side's media policy, made by the worker for
  // the transferor's media leg (UpdateSession.new_peer); `send` rings it with that offer.
  void offerToTransferTarget(Call& call, const v1::RouteTarget& target,
                             std::function<void(Call& call, const std::string& offer)> send);
  void onTransferResponse(Fork& fork, int status, const std::string& phrase, const sip_t* sip);
  void completeTransfer(Call& call, Fork& fork, const std::string& sdpForOther);
  void transferFailed(Call& call, int status, const std::string& phrase);
  void sendNotify(Call& call, int status, const std::string& phrase, bool final);
  static int retiredLegCallback(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq,
                                const sip_t* sip) noexcept;
  // (Re)sends a fork's INVITE from what the fork keeps (after a 422: with a larger
  // Session-Expires, same dialog, next CSeq). False when nta would not create it.
  bool sendInvite(Fork& fork);
  void onForkResponse(Fork& fork, nta_outgoing_t* orq, const sip_t* sip);
  // PRACKs a reliable 18x of a fork (RFC 3262 4).
  void prack(Fork& fork, nta_outgoing_t* orq, const sip_t* sip);
  void onProvisional(Fork& fork, const sip_t* sip, int status);
  // Relays a provisional to the caller (reliably when it supports 100rel and `body` is
  // early media); counts it and the post-dial delay.
  void relayProvisional(Call& call, int status, const std::string& phrase, const std::string& body);
  // A re-INVITE/UPDATE of ours got 491: run `retry` after the RFC 3261 14.1 delay
  // (2.1-4 s when we own the dialog's Call-ID, else 0-2 s).
  void retryAfterGlare(Call& call, bool toA, std::function<void()> retry);
  static void onGlareTimer(su_root_magic_t* magic, su_timer_t* timer, su_timer_arg_t* arg) noexcept;
  void sendRebridge(Call& call, bool toA, const std::string& sdp);
  void onForkAnswered(Fork& fork, const sip_t* sip);
  void onForkFailed(Fork& fork, int status, const std::string& phrase, bool local);
  void checkGroup(Call& call);
  void cancelForks(Call& call, const Fork* except, const char* reason);
  void cancelFork(Fork& fork, const char* reason);
  void onCallerCancel(Call& call, const sip_t* sip);
  void answerCaller(Call& call, const std::string& sdp);
  void onDialogRequest(Call& call, bool fromA, nta_incoming_t* irq, const sip_t* sip);
  void onReinvite(Call& call, bool fromA, nta_incoming_t* irq, const sip_t* sip);
  void onDialogResponse(std::uint64_t txId, nta_outgoing_t* orq, const sip_t* sip);
  // UpdateSession on the call's worker; `then` runs on the loop if the call still exists.
  using MediaThen =
      std::function<void(Call& call, const grpc::Status&, const v1::UpdateSessionResponse&)>;
  // offerId: for an answer of a fork to the first offer, which of the worker's offers it
  // answers (Fork::offerId).
  void updateMedia(Call& call, v1::LegId from, const std::string& sdp, bool answer,
                   bool provisional, MediaThen then, std::uint32_t offerId = 0);
  void sendMediaUpdate(Call& call, v1::UpdateSessionRequest request, MediaThen then);
  std::unique_ptr<DialogTx> newTx(const std::string& callId, DialogTx::Kind kind, bool toA,
                                  nta_leg_t* leg);
  void ackInDialog(nta_leg_t* leg, const sip_t* sip);
  void hangUp(Call& call, const std::string& cause, const char* reason, bool byeA, bool byeB);
  void reject(Call& call, const SipReply& reply, const std::string& cause);
  void finish(Call& call, const std::string& cause, int finalStatus);
  void reap(const std::string& id);
  void publish(Call& call);
  Call* find(const std::string& id);
  int replyStateless(nta_incoming_t* irq, const SipReply& reply, Side side);
  void respondA(Call& call, const SipReply& reply);

  Deps d_;
  const TrunkLocator* trunks_ = nullptr;
  bool accepting_ = true;
  std::uint64_t nextCall_ = 1;
  std::uint64_t nextTx_ = 1;
  std::string idPrefix_;
  std::unordered_map<std::string, std::unique_ptr<Call>> calls_;
  // In-dialog transactions we sent (BYE, re-INVITE): txId -> call id.
  std::unordered_map<std::uint64_t, std::unique_ptr<DialogTx>> dialogTx_;
  std::shared_ptr<B2bua*> self_;
};

}  // namespace medius::gateway
