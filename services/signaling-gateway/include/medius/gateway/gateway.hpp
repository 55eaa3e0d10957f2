// Gateway: the SIP front end. Owns the nta agent with the internal-side and trunk-side
// listeners and answers every request received on them.
// An out-of-dialog request reaches us first in nta's message callback, as a bare msg_t,
// before nta spent a server transaction on it: the FloodGuard (flood_guard.hpp) drops it
// unanswered (banned source, scanner User-Agent), answers it statelessly with 503
// Retry-After (a global limit), or lets it through, and only then it becomes an
// nta_incoming_t (nta_incoming_create) handled as below. Requests of existing dialogs go
// to their call's legs (b2bua.hpp) and never meet the guard.
// Then:
//   anything (trunk)     403 "Not A Configured Trunk" when the source address is no trunk
//                        routing lists (counted in requests_refused_total), ACK dropped
//   REGISTER (internal)  validated, relayed to the registrar (async gRPC), answered later,
//                        statelessly: no nta transaction (register_transactions.hpp)
//   REGISTER (trunk)     403
//   out of dialog (internal), not REGISTER/OPTIONS/ACK/CANCEL: digest credentials first
//                        (call_auth.hpp: Registrar.Challenge -> 407, Registrar.VerifyDigest
//                        -> on as the authenticated user), unless auth.calls is "off"
//   credentials (REGISTER and the above) for a username locked after failed attempts:
//                        403 without asking the registrar; failures ban their source
//                        (AuthGuard, auth_guard.hpp, onto the FloodGuard's ban list)
//   OPTIONS              200 with Allow/Accept/Supported (out of dialog); 503 while draining
//                        (the load balancer's probes take the gateway out of its set)
//   ACK                  never answered
//   INVITE               a new call: B2bua::onInvite (b2bua.hpp); 501 when the gateway
//                        was built without call services (REGISTER-only tests)
//   in-dialog requests   the call's legs get them (b2bua.hpp); unmatched ones 481,
//                        unmatched CANCEL 481
//   anything else        501 with Allow
// It is also the OptionsProber of the TrunkMonitor: out-of-dialog OPTIONS leave from the
// trunk side (TPTAG_IDENT("trunk")) with Request-URI sip:host:port;transport=t, From
// sip:medius@<domain>;tag, Max-Forwards 70 and our User-Agent. A final response from the
// peer is Ok (any code); nta's locally made 408 is Timeout, its locally made 503 (or any
// other local answer: ICMP unreachable, no transport) is Error.
//
// Life of a REGISTER: messageCallback (loop) -> FloodGuard::check -> RegisterTransactions
// (a retransmission is absorbed or answered again) -> onRegister -> buildRegisterRequest ->
// (no credentials, our domain: a 401 from the ChallengePool when it has a set, done) ->
// RegistrarClient::registerAsync -> gRPC thread -> SipLoop::post -> completeRegister (loop)
// -> registerReply -> nta_msg_treply (stateless: no nta server transaction for REGISTER).
//
// Thread: construct, use and destroy on the SipLoop thread only (SipLoop::invoke). The
// few values other threads read are in GatewayState (atomics).
#pragma once

#include <atomic>
#include <map>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <sofia-sip/nta.h>
#include <sofia-sip/tport.h>

#include "medius/gateway/auth_guard.hpp"
#include "medius/gateway/b2bua.hpp"
#include "medius/gateway/rcc.hpp"
#include "medius/gateway/call_auth.hpp"
#include "medius/gateway/challenge_pool.hpp"
#include "medius/gateway/config.hpp"
#include "medius/gateway/flow_table.hpp"
#include "medius/gateway/flood_guard.hpp"
#include "medius/gateway/metrics.hpp"
#include "medius/gateway/register_request.hpp"
#include "medius/gateway/register_transactions.hpp"
#include "medius/gateway/registrar_client.hpp"
#include "medius/gateway/sip_loop.hpp"
#include "medius/gateway/sip_tls.hpp"
#include "medius/gateway/trunk_monitor.hpp"
#include "medius/v1/common.pb.h"
#include "medius/v1/gateway.pb.h"

namespace medius::gateway {

// What the admin service may read from any thread.
struct GatewayState {
  std::atomic<bool> draining{false};
  std::atomic<std::uint32_t> pendingRegisters{0};
  // Set once by Gateway's constructor, before the admin server starts; read-only after.
  std::vector<v1::SocketAddress> listeners;
  // The watched flows, refreshed by the SIP loop every flow round (ListFlows reads it).
  std::mutex flowsMutex;
  v1::ListFlowsResponse flows;  // guarded by flowsMutex
};

// What calls need besides the registrar (all must outlive the Gateway).
struct CallServices {
  RoutingClient& routing;
  MediaClient& media;
  CallDirectory& directory;
  CdrWriter& cdr;
};

class Gateway final : public OptionsProber {
 public:
  // Binds every listener. Throws std::runtime_error naming the URL on a bind failure.
  // All references must outlive the Gateway. Without `calls`, INVITE gets 501.
  Gateway(SipLoop& loop, const GatewayConfig& config, RegistrarClient& registrar,
          GatewayMetrics& metrics, GatewayState& state,
          std::optional<CallServices> calls = std::nullopt);
  // Answers pending REGISTERs with 503, destroys the agent.
  ~Gateway() override;
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Draining (SIGTERM, a Drain RPC; medius/common/drain.hpp): new INVITEs and out-of-dialog
  // OPTIONS get 503 with Retry-After (before any authentication), on both sides; calls in
  // progress, their in-dialog requests and REGISTERs go on. Sets GatewayState::draining.
  // Idempotent.
  void startDraining();
  bool draining() const { return draining_; }
  // Stop taking new work: new REGISTERs get 503 with Retry-After (the last step before the
  // process exits).
  void stopAccepting();
  std::size_t pendingRegisters() const { return pending_.size(); }
  // Requests waiting for the registrar's Challenge/VerifyDigest.
  std::size_t pendingAuth() const { return authPending_.size(); }
  // Answers every pending REGISTER (and request waiting for authentication) with 503 now.
  void failPending();

  // Calls (loop thread). The locator identifies trunks by source address: the trunk ACL
  // of every trunk-side request (none is checked before it is set).
  void setTrunkLocator(const TrunkLocator* locator);
  std::size_t activeCalls() const { return b2bua_ ? b2bua_->activeCalls() : 0; }
  // Remote call control (loop thread): sessions and third-party calls.
  const Rcc* rcc() const { return rcc_.get(); }
  // Ends every call now (BYE/CANCEL/503), after the drain grace period.
  void endAllCalls();
  // A media worker's event (any thread).
  void onMediaEvent(const std::string& worker, const v1::MediaEvent& event);

  // The bound port of the first listener of a side ("udp"), for tests using port 0.
  std::uint16_t boundPort(Side side) const;
  // The bound port of a side's TLS listener (0 without its tls block).
  std::uint16_t tlsPort(Side side = Side::Internal) const;
  // Re-reads the TLS certificate files now (SIGHUP), or only when they changed.
  // Returns true when a new certificate is in use. Loop thread.
  bool reloadTls(bool force);

  // Flows of registered clients (loop thread; medctl flows and tests).
  const FlowTable& flows() const { return flows_; }
  // One round of the flow timer now: closed connections, pings, timeouts.
  void checkFlows();

  // OptionsProber (loop thread).
  std::uint64_t probe(const v1::SocketAddress& address, Done done) override;
  void cancel(std::uint64_t handle) override;
  std::size_t outstandingProbes() const { return probes_.size(); }
  // Server transactions nta has created since start (tests: a request the flood guard
  // dropped or refused made none).
  std::size_t serverTransactions() const;

 private:
  // A REGISTER waiting for the registrar. No nta transaction: it is answered statelessly
  // (register_transactions.hpp says why), over the transport that delivered it.
  struct Pending {
    msg_t* msg = nullptr;      // the request, owned (nta_msg_treply consumes it)
    tport_t* tport = nullptr;  // a reference to the transport that delivered it
    Side side = Side::Internal;
    std::string source;    // the request's source address (failed-authentication limits)
    std::string username;  // the digest username of its credentials; "" without any
    std::string key;       // RegisterTransactions::keyOf
    bool reliable = false;  // TCP or TLS: no retransmission to absorb
    // The flow it came over (flow_table.hpp): its key, the classification the registrar
    // got, whether it came straight from the client (no Path), and the AOR.
    FlowKey flowKey;
    v1::Flow flow;
    bool direct = false;
    std::string aor;
    std::string contact;  // the first Contact (the flow's pings go to it)
  };

  // A request waiting for Registrar.Challenge or VerifyDigest. Owns a reference to the
  // request message; the irq's callback (a CANCEL) points at it.
  struct AuthPending {
    Gateway* gateway = nullptr;
    std::uint64_t id = 0;
    nta_incoming_t* irq = nullptr;
    msg_t* request = nullptr;  // a reference (nta_incoming_getrequest), released with it
    Side side = Side::Internal;
    Method method = Method::Other;
    RequestSource source;
    std::string username;  // of the credentials; "" when challenged without any
    bool cancelled = false;  // nta answered the INVITE 487 after a CANCEL
  };

  struct Probe {
    Gateway* gateway;
    std::uint64_t id;
    nta_outgoing_t* orq = nullptr;
    Done done;
  };
  static int probeCallback(nta_outgoing_magic_t* magic, nta_outgoing_t* orq,
                           const sip_t* sip) noexcept;
  // OPTIONS to `address` from the side named by ident (probe(): the trunk side).
  // requestUri: "" names the address itself; otherwise it is the Request-URI and the
  // request is sent to `address` (a flow's ping to the client's Contact).
  std::uint64_t sendOptions(const v1::SocketAddress& address, const char* ident,
                            const std::string& requestUri, Done done);
  // Flows: a REGISTER's answer, something heard, the registrar told of a state change.
  void noteRegistered(const Pending& p, const v1::RegisterResponse& response);
  void flowHeard(const RequestSource& source);
  void reportFlows(const std::vector<FlowReport>& reports);
  void releaseForgottenFlows();
  // Copies flows_ into GatewayState::flows.
  void publishFlows(std::int64_t nowMs);
  static void flowTimer(su_root_magic_t* magic, su_timer_t* timer, su_timer_arg_t* arg) noexcept;

  // What the connection that delivered a message (being delivered now) says of its peer.
  struct TlsPeer {
    bool tls = false;       // it is a TLS connection
    bool verified = false;  // whose peer certificate verified (on the trunk side: and
                            // named the trunk at its address)
    bool trusted = false;   // internal side: and names one of internal.tls.trusted_names
  };
  TlsPeer tlsPeerOf(msg_t* msg, Side side) const;
  static void tlsReloadTimer(su_root_magic_t* magic, su_timer_t* timer, su_timer_arg_t* arg) noexcept;

  // nta's message callback: out-of-dialog requests (and stray responses) as bare msgs.
  static int messageCallback(nta_agent_magic_t* magic, nta_agent_t* agent, msg_t* msg,
                             sip_t* sip) noexcept;
  static int outgoingLegCallback(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq,
                                 const sip_t* sip) noexcept;
  // Takes msg: the flood guard's verdict, then a server transaction for onRequest.
  void onMessage(msg_t* msg, sip_t* sip);
  // Asks the guard; false when the message was dropped or answered (and consumed).
  bool admit(msg_t* msg, const sip_t* sip, Method method, Side side, bool trustedPeer);
  // The flood guard's word on a new TLS connection (SipTls's gate, at its ClientHello).
  bool admitConnection(const std::string& host, std::uint32_t port);
  // The flood guard's gauges, and the log line and counter of a ban that just started.
  void noteFloodBans(const std::string& host);
  Side sideOfMessage(msg_t* msg) const;
  // peer: tlsPeerOf() its message.
  int onRequest(nta_incoming_t* irq, const sip_t* sip, const TlsPeer& peer);
  // What stands in the way of any request before its method is looked at: the trunk ACL,
  // a TLS trunk's request without TLS, a malformed request (RFC 3261 8.2, RFC 4475), a
  // new INVITE or OPTIONS while draining. Logged and counted; the caller answers it.
  std::optional<SipReply> refusal(const sip_t* sip, Side side, const RequestSource& source,
                                  const TlsPeer& peer);
  // A REGISTER, without a server transaction: retransmissions are absorbed or answered
  // again by registerTx_, the rest relayed to the registrar and answered statelessly.
  // Takes msg.
  void onRegister(msg_t* msg, sip_t* sip, Side side, const TlsPeer& peer);
  // Sends `reply` (plus Server) to the request `msg` statelessly over `tport` (nullptr:
  // the transport delivering msg now), counts it. Takes msg.
  void respondStateless(msg_t* msg, tport_t* tport, Method method, Side side,
                        const SipReply& reply);
  // A REGISTER's final answer: sent statelessly (takes msg) and recorded in registerTx_
  // under `key` ("" : not recorded) for its retransmissions.
  void answerRegister(msg_t* msg, tport_t* tport, Side side, const std::string& key,
                      bool reliable, SipReply reply);
  // What a request becomes once nothing (any more) stands in its way: a new call, or
  // the answer to the rest. Returns what the leg callback returns (0: answered later).
  int dispatch(nta_incoming_t* irq, const sip_t* sip, Side side, Method method,
               const RequestSource& source, const CallerIdentity& caller);
  // Digest authentication of a request that needsCredentials(); answered or dispatched
  // in completeAuth.
  int authenticate(nta_incoming_t* irq, const sip_t* sip, Side side, Method method,
                   const RequestSource& source);
  void completeAuth(std::uint64_t id, const grpc::Status& status,
                    const v1::ChallengeResponse* challenge, const v1::VerifyDigestResponse* verify);
  static int authIrqCallback(nta_incoming_magic_t* magic, nta_incoming_t* irq,
                             const sip_t* sip) noexcept;
  void releaseAuth(std::unordered_map<std::uint64_t, std::unique_ptr<AuthPending>>::iterator it);
  void completeRegister(std::uint64_t id, const grpc::Status& status,
                        const v1::RegisterResponse& response);
  // Asks the registrar for more challenge sets when the pool wants them.
  void refillChallenges();
  // Failed-authentication limits (auth_guard.hpp) by source host and digest username.
  // authAllowed counts and logs a refusal; authFailed bans the source (FloodGuard::ban)
  // and locks the user when they reach their limits.
  bool authAllowed(const std::string& host, const std::string& user, const char* method);
  void authFailed(const std::string& host, const std::string& user);
  void authSucceeded(const std::string& host, const std::string& user);
  // Sends `reply` (plus Server) on `irq`, counts it. Does not destroy irq.
  void respond(nta_incoming_t* irq, Method method, Side side, const SipReply& reply);
  Side sideOf(nta_incoming_t* irq) const;
  RequestSource sourceOf(nta_incoming_t* irq) const;
  // tport: the transport that delivered msg (its protocol names TLS), or nullptr.
  RequestSource sourceOfMessage(msg_t* msg, tport_t* tport) const;
  SipReply optionsReply(Side side) const;
  SipReply notImplementedReply(Side side) const;
  std::string allowFor(Side side) const;

  SipLoop& loop_;
  const GatewayConfig& config_;
  RegistrarClient& registrar_;
  GatewayMetrics& metrics_;
  GatewayState& state_;
  std::string authRealm_;  // auth.realm, the domain when unset
  nta_agent_t* agent_ = nullptr;  // owned; destroyed after leg_
  // Owned leg without a dialog, only the vehicle of our OPTIONS probes (nta_outgoing_tcreate
  // needs a leg). It has a URL that no request names, so that it is not nta's default leg:
  // a default leg would take every request before the message callback.
  nta_leg_t* leg_ = nullptr;
  // The internal side's TLS (internal.tls), and the timer that checks its files.
  std::unique_ptr<SipTls> tls_;       // internal.tls
  std::unique_ptr<SipTls> trunkTls_;  // trunk.tls
  su_timer_t* tlsTimer_ = nullptr;
  FloodGuard flood_;
  AuthGuard authGuard_;
  std::uint64_t floodBans_ = 0;  // bans already added to the metric
  const TrunkLocator* trunks_ = nullptr;
  bool accepting_ = true;
  bool draining_ = false;
  std::uint64_t nextId_ = 1;
  std::unordered_map<std::uint64_t, Pending> pending_;
  RegisterTransactions registerTx_;
  // 401s for REGISTERs without credentials, issued in advance by the registrar.
  ChallengePool challengePool_;
  std::unordered_map<std::uint64_t, std::unique_ptr<AuthPending>> authPending_;
  std::uint64_t nextProbe_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Probe>> probes_;
  // Completions posted from gRPC threads hold a weak_ptr: a completion arriving after
  // the Gateway is gone finds it expired (checked and used on the loop thread only).
  std::shared_ptr<Gateway*> self_;
  FlowTable flows_;
  // A reference to the connection of each stream flow in flows_ (polled for its close;
  // held, the connection is not closed as idle while the client is registered).
  std::map<FlowKey, tport_t*> flowTports_;
  su_timer_t* flowTimer_ = nullptr;
  std::unique_ptr<Rcc> rcc_;      // remote call control; destroyed with b2bua_
  std::unique_ptr<B2bua> b2bua_;  // destroyed first (in ~Gateway), before leg_ and agent_
};

}  // namespace medius::gateway
