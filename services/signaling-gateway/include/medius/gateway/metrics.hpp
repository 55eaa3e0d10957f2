// Every metric of the gateway, declared once and passed by reference (docs/metrics.md):
//   medius_gateway_sip_requests_total{method,side}              requests received
//   medius_gateway_sip_responses_total{method,code_class,side}  responses WE sent
//   medius_gateway_grpc_client_seconds{service,method}          gRPC client latency
//   medius_gateway_grpc_client_errors_total{service,method,code} gRPC client failures
//   medius_gateway_register_pending                             REGISTERs awaiting the registrar
//   medius_gateway_trunk_up{trunk}                              1 up / 0 down (OPTIONS keepalive)
//   medius_gateway_trunk_options_total{trunk,result}            keepalive probes: ok|timeout|error
//   medius_gateway_calls_active                                 calls in progress
//   medius_gateway_calls_total{direction,outcome}               finished calls
//   medius_gateway_call_setup_seconds                           INVITE -> first 18x/2xx relayed
//   medius_gateway_trunk_call_attempts_total{trunk}             forks sent to a trunk
//   medius_gateway_trunk_call_answers_total{trunk}              forks a trunk answered (2xx)
//   medius_gateway_trunk_call_failures_total{trunk}             forks a trunk failed
//   medius_gateway_trunk_active_calls{trunk}                    calls counted on a trunk
//   medius_gateway_cdr_write_errors_total                       CDR lines not written
//   medius_gateway_flood_dropped_total{reason}                  requests dropped unanswered:
//                                                               banned|scanner
//   medius_gateway_flood_rejected_total{reason}                 503s of the global limits:
//                                                               dialogs|rate
//   medius_gateway_flood_bans_total                             per-source bans started
//   medius_gateway_register_retransmissions_total{result}       REGISTER retransmissions:
//                                                               absorbed|answered_again
//   medius_gateway_register_local_challenges_total              401s from the ChallengePool
//   medius_gateway_flood_banned_sources                         sources banned now
//   medius_gateway_flood_sources                                sources in the flood table
//   medius_gateway_auth_failures_total{reason}                  call/request digest failures
//   medius_gateway_requests_refused_total{reason}               requests refused unprocessed:
//                                                               unknown_trunk|malformed|
//                                                               user_locked
//   medius_gateway_auth_bans_total{scope}                       failed-auth limits reached:
//                                                               source (banned)|user (locked)
//   medius_gateway_tls_handshakes_total{result}                 TLS handshakes on the internal
//                                                               side: ok or why refused
//   medius_gateway_tls_reloads_total{result}                    certificate reloads: ok|error
//   medius_gateway_tls_certificate_expiry_timestamp_seconds     notAfter of the TLS certificate
//   medius_gateway_trusted_peer_requests_total                  requests let in by mutual TLS
//   medius_gateway_csta_requests_total{request,outcome}         uaCSTA requests (rcc.hpp):
//                                                               request make_call|...|unknown|
//                                                               malformed, outcome ok|refused|
//                                                               unsupported|failed
//   medius_gateway_rcc_sessions                                 remote call control sessions
// Labels are bounded: methods outside the known list are "other", sides are
// "internal"/"trunk", codes are gRPC code names. Every direction x outcome series of
// calls_total exists from the start (at 0); the per-trunk series exist once the trunk is
// known (setTrunkUp) or used, and disappear with removeTrunk.
//
// Thread: the SIP counters are cached lazily without locks and are used on the SIP loop
// only; the trunk metrics are used on the SIP loop (TrunkMonitor); the gRPC metrics are
// safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <mutex>
#include <string_view>
#include <vector>

#include <grpcpp/support/status.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace medius::gateway {

enum class Side { Internal = 0, Trunk = 1 };
std::string_view sideName(Side side);

// Methods that get their own label value; everything else is "other".
enum class Method {
  Register, Options, Invite, Ack, Bye, Cancel, Subscribe, Notify, Message, Refer, Info,
  Update, Prack, Publish, Other
};
inline constexpr std::size_t kMethodCount = 15;
std::string_view methodLabel(Method method);
// Case-sensitive, as SIP method names are (RFC 3261 7.1).
Method methodFromName(std::string_view name);

// Why a request that needs digest credentials (call_auth.hpp) was not let through; the
// label values of medius_gateway_auth_failures_total, every series exists from the start.
enum class AuthFailure { Missing, Invalid, Stale, Replayed, FromMismatch, Unavailable };
inline constexpr std::size_t kAuthFailureCount = 6;
// "missing", "invalid", "stale", "replayed", "from_mismatch", "unavailable".
std::string_view authFailureLabel(AuthFailure failure);

// Why a request was refused before anything acted on it (requests_refused_total):
// UnknownTrunk, a trunk-side request from an address that is no configured trunk;
// Malformed, a request that fails the RFC 3261/4475 checks (request_checks.hpp);
// UserLocked, credentials for a username locked after failures (auth_guard.hpp).
enum class Refusal { UnknownTrunk, Malformed, UserLocked, TrunkTls };
inline constexpr std::size_t kRefusalCount = 4;

// medius_gateway_auth_bans_total{scope}: "source" or "user".
enum class AuthBanScope { Source, User };
std::string_view refusalLabel(Refusal refusal);

class GatewayMetrics {
 public:
  explicit GatewayMetrics(prometheus::Registry& registry);
  GatewayMetrics(const GatewayMetrics&) = delete;
  GatewayMetrics& operator=(const GatewayMetrics&) = delete;

  // SIP loop only.
  void countRequest(Method method, Side side);
  void countResponse(Method method, int status, Side side);

  // Any thread.
  prometheus::Histogram& registrarRegisterSeconds() { return registerSeconds_; }
  void countGrpcError(std::string_view service, std::string_view method, grpc::StatusCode code);
  prometheus::Gauge& registerPending() { return registerPending_; }
  // Media workers new sessions may go to (configured plus resolved). Any thread.
  prometheus::Gauge& mediaWorkers() { return mediaWorkers_; }
  // The latency histogram of one gRPC method ("routing", "ListTrunks"). Any thread.
  prometheus::Histogram& grpcClientSeconds(std::string_view service, std::string_view method);

  // Trunk keepalive (SIP loop). Series exist once a trunk is known; removeTrunk drops them.
  void setTrunkUp(const std::string& trunk, bool up);
  // result: "ok", "timeout" or "error".
  void countTrunkOptions(const std::string& trunk, std::string_view result);
  void removeTrunk(const std::string& trunk);

  // Calls (SIP loop). direction: "outbound", "inbound", "internal", "transit"; outcome:
  // "answered", "cancelled", "failed", "rejected". Other values are ignored (bounded labels).
  void setCallsActive(std::size_t calls);
  void countCall(std::string_view direction, std::string_view outcome);
  void observeCallSetup(double seconds);
  void countTrunkAttempt(const std::string& trunk);
  void countTrunkAnswer(const std::string& trunk);
  void countTrunkFailure(const std::string& trunk);
  void setTrunkActiveCalls(const std::string& trunk, std::uint32_t calls);
  // Flood guard (SIP loop). Every series exists from the start (at 0).
  // reason: "banned" or "scanner"; "dialogs" or "rate".
  void countFloodDrop(std::string_view reason);
  void countFloodReject(std::string_view reason);
  void countFloodBans(std::uint64_t bans) { floodBans_.Increment(static_cast<double>(bans)); }
  // A retransmitted REGISTER (RegisterTransactions): dropped while the registrar works, or
  // answered again with the answer already sent. SIP loop.
  void countRegisterRetransmission(bool answeredAgain) {
    registerRetransmissions_[answeredAgain ? 1 : 0]->Increment();
  }
  // A REGISTER without credentials answered 401 from the ChallengePool. SIP loop.
  void countLocalRegisterChallenge() { localRegisterChallenges_.Increment(); }
  void setFloodSources(std::size_t sources, std::size_t banned);
  // Security (SIP loop).
  void countAuthFailure(AuthFailure failure);
  void countRefused(Refusal refusal);
  void countAuthBan(AuthBanScope scope);
  // For tests: the current value of one series.
  double authFailures(AuthFailure failure) const;
  double refused(Refusal refusal) const;
  double authBans(AuthBanScope scope) const;
  // SIP over TLS (SIP loop). result: one of kTlsHandshakeResults (sip_tls.hpp), others
  // count as "other". Every series exists from the start (at 0).
  void countTlsHandshake(std::string_view result);
  void countTlsReload(bool ok) { (ok ? tlsReloadOk_ : tlsReloadError_).Increment(); }
  void setTlsCertificateExpiry(double unixSeconds) { tlsExpiry_.Set(unixSeconds); }
  void countTrustedPeerRequest() { trustedPeerRequests_.Increment(); }
  // Remote call control (SIP loop). `request`: csta::requestName() or "malformed";
  // `outcome`: "ok", "refused", "unsupported", "failed" (others are not counted).
  void countCstaRequest(std::string_view request, std::string_view outcome);
  void setRccSessions(std::size_t sessions) { rccSessions_.Set(static_cast<double>(sessions)); }
  // Dialog-event subscriptions of remote call control: "subscribed" (2xx to SUBSCRIBE),
  // "refused" (the PBX refused it: 403/405/489/501...), "failed" (timeout, other errors,
  // cannot send), "notify" (a NOTIFY body mapped), "notify_bad" (a body not dialog-info: 400).
  void countRccDialogEvent(std::string_view what);
  double tlsHandshakes(std::string_view result) const;
  // Flows of registered clients (flow_table.hpp; SIP loop).
  void setFlows(std::size_t active, std::size_t unreachable) {
    flowsActive_.Set(static_cast<double>(active));
    flowsUnreachable_.Set(static_cast<double>(unreachable));
  }
  // A sign of life on a watched flow: "request" (a request arrived over it),
  // "ping_answered"; or "ping_unanswered" (an OPTIONS ping got no answer).
  void countFlowRequest() { flowKeepaliveRequest_.Increment(); }
  void countFlowPing(bool answered) {
    (answered ? flowKeepalivePingAnswered_ : flowKeepalivePingUnanswered_).Increment();
  }
  // A flow died: its connection closed, or keepalives stopped.
  void countFlowFailure(bool connectionClosed) {
    (connectionClosed ? flowFailureClosed_ : flowFailureTimeout_).Increment();
  }
  // For CdrWriter (any thread).
  prometheus::Counter& cdrWriteErrors() { return cdrWriteErrors_; }

 private:
  // The per-trunk call series of `trunk`, created (at 0) on first use.
  struct TrunkCallSeries {
    prometheus::Counter* attempts = nullptr;
    prometheus::Counter* answers = nullptr;
    prometheus::Counter* failures = nullptr;
    prometheus::Gauge* active = nullptr;
  };
  TrunkCallSeries& trunkCallSeries(const std::string& trunk);

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Counter>& responses_;
  prometheus::Family<prometheus::Histogram>& grpcSeconds_;
  prometheus::Family<prometheus::Counter>& grpcErrors_;
  prometheus::Family<prometheus::Gauge>& trunkUp_;
  prometheus::Family<prometheus::Counter>& trunkOptions_;
  prometheus::Gauge& registerPending_;
  prometheus::Gauge& mediaWorkers_;
  prometheus::Histogram& registerSeconds_;
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Counter>& trunkAttempts_;
  prometheus::Family<prometheus::Counter>& trunkAnswers_;
  prometheus::Family<prometheus::Counter>& trunkFailures_;
  prometheus::Family<prometheus::Gauge>& trunkActive_;
  prometheus::Gauge& callsActive_;
  prometheus::Histogram& callSetup_;
  prometheus::Counter& cdrWriteErrors_;
  prometheus::Counter& floodBans_;
  prometheus::Gauge& floodBanned_;
  prometheus::Gauge& floodSources_;
  // [banned, scanner] and [dialogs, rate], created in the constructor.
  std::array<prometheus::Counter*, 2> floodDropped_{};
  std::array<prometheus::Counter*, 2> registerRetransmissions_{};
  prometheus::Counter& localRegisterChallenges_;
  std::array<prometheus::Counter*, 2> floodRejected_{};
  std::array<prometheus::Counter*, kMethodCount * 2> requestCache_{};
  std::array<prometheus::Counter*, kMethodCount * 6 * 2> responseCache_{};
  std::mutex errorMutex_;
  std::mutex histogramMutex_;
  // Series of each known trunk (SIP loop only), to remove them with the trunk.
  std::map<std::string, std::vector<prometheus::Counter*>, std::less<>> trunkCounters_;
  std::map<std::string, TrunkCallSeries, std::less<>> trunkCalls_;  // SIP loop only
  // calls_total series, [direction][outcome], created in the constructor.
  std::array<std::array<prometheus::Counter*, 4>, 4> callCounters_{};
  std::array<prometheus::Counter*, kAuthFailureCount> authFailures_{};
  std::array<prometheus::Counter*, kRefusalCount> refused_{};
  std::array<prometheus::Counter*, 2> authBans_{};  // [source, user]
  prometheus::Family<prometheus::Counter>& tlsHandshakes_;
  std::array<prometheus::Counter*, 7> tlsHandshakeSeries_{};
  prometheus::Family<prometheus::Counter>& tlsReloads_;
  prometheus::Counter& tlsReloadOk_;
  prometheus::Counter& tlsReloadError_;
  prometheus::Gauge& tlsExpiry_;
  prometheus::Counter& trustedPeerRequests_;
  prometheus::Family<prometheus::Counter>& cstaRequests_;
  prometheus::Gauge& rccSessions_;
  prometheus::Family<prometheus::Gauge>& flows_;
  prometheus::Gauge& flowsActive_;
  prometheus::Gauge& flowsUnreachable_;
  prometheus::Family<prometheus::Counter>& flowKeepalives_;
  prometheus::Counter& flowKeepaliveRequest_;
  prometheus::Counter& flowKeepalivePingAnswered_;
  prometheus::Counter& flowKeepalivePingUnanswered_;
  prometheus::Family<prometheus::Counter>& flowFailures_;
  prometheus::Counter& flowFailureClosed_;
  prometheus::Counter& flowFailureTimeout_;
  prometheus::Family<prometheus::Counter>& rccDialogEvents_;
};

// "OK", "CANCELLED", ... "UNAUTHENTICATED" (the names gRPC uses).
std::string_view grpcCodeName(grpc::StatusCode code);

}  // namespace medius::gateway
