#include "medius/gateway/metrics.hpp"

#include <algorithm>
#include <string>

#include "medius/common/metrics.hpp"
#include "medius/gateway/sip_tls.hpp"

namespace medius::gateway {

namespace {
constexpr std::array<std::string_view, kMethodCount> kMethodNames{
    "REGISTER", "OPTIONS", "INVITE", "ACK",    "BYE",   "CANCEL",  "SUBSCRIBE", "NOTIFY",
    "MESSAGE",  "REFER",   "INFO",   "UPDATE", "PRACK", "PUBLISH", "other"};
constexpr std::array<std::string_view, 6> kCodeClasses{"1xx", "2xx", "3xx", "4xx", "5xx", "6xx"};
constexpr std::array<std::string_view, 4> kDirections{"outbound", "inbound", "internal",
                                                      "transit"};
constexpr std::array<std::string_view, 4> kOutcomes{"answered", "cancelled", "failed",
                                                    "rejected"};

template <std::size_t N>
int indexOf(const std::array<std::string_view, N>& values, std::string_view value) {
  for (std::size_t i = 0; i < N; ++i) {
    if (values[i] == value) return static_cast<int>(i);
  }
  return -1;
}
}  // namespace

std::string_view authFailureLabel(AuthFailure failure) {
  switch (failure) {
    case AuthFailure::Missing: return "missing";
    case AuthFailure::Invalid: return "invalid";
    case AuthFailure::Stale: return "stale";
    case AuthFailure::Replayed: return "replayed";
    case AuthFailure::FromMismatch: return "from_mismatch";
    case AuthFailure::Unavailable: return "unavailable";
  }
  return "invalid";
}

std::string_view refusalLabel(Refusal refusal) {
  switch (refusal) {
    case Refusal::UnknownTrunk: return "unknown_trunk";
    case Refusal::Malformed: return "malformed";
    case Refusal::UserLocked: return "user_locked";
    case Refusal::TrunkTls: return "trunk_tls";
  }
  return "unknown_trunk";
}

std::string_view sideName(Side side) { return side == Side::Internal ? "internal" : "trunk"; }

std::string_view methodLabel(Method method) {
  return kMethodNames[static_cast<std::size_t>(method)];
}

Method methodFromName(std::string_view name) {
  for (std::size_t i = 0; i + 1 < kMethodCount; ++i) {
    if (kMethodNames[i] == name) return static_cast<Method>(i);
  }
  return Method::Other;
}

std::string_view grpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::DO_NOT_USE: break;
  }
  return "UNKNOWN";
}

namespace {
constexpr std::array<std::string_view, 11> kCstaRequests{
    "make_call",   "answer_call",          "clear_connection", "hold_call",
    "retrieve_call", "single_step_transfer", "monitor_start",    "monitor_stop",
    "request_system_status", "unknown",    "malformed"};
constexpr std::array<std::string_view, 4> kCstaOutcomes{"ok", "refused", "unsupported", "failed"};
constexpr std::array<std::string_view, 5> kRccDialogEvents{"subscribed", "refused", "failed", "notify",
                                                         "notify_bad"};
}  // namespace

GatewayMetrics::GatewayMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("medius_gateway_sip_requests_total")
                    .Help("SIP requests received, by method and side")
                    .Register(registry)),
      responses_(prometheus::BuildCounter()
                     .Name("medius_gateway_sip_responses_total")
                     .Help("SIP responses sent by the gateway, by method, status class and side")
                     .Register(registry)),
      grpcSeconds_(prometheus::BuildHistogram()
                       .Name("medius_gateway_grpc_client_seconds")
                       .Help("Latency of gRPC calls made by the gateway")
                       .Register(registry)),
      grpcErrors_(prometheus::BuildCounter()
                      .Name("medius_gateway_grpc_client_errors_total")
                      .Help("gRPC calls made by the gateway that failed, by status code")
                      .Register(registry)),
      trunkUp_(prometheus::BuildGauge()
                   .Name("medius_gateway_trunk_up")
                   .Help("1 when the trunk answers OPTIONS keepalives, 0 when it is down")
                   .Register(registry)),
      trunkOptions_(prometheus::BuildCounter()
                        .Name("medius_gateway_trunk_options_total")
                        .Help("OPTIONS keepalives sent to trunks, by outcome")
                        .Register(registry)),
      registerPending_(prometheus::BuildGauge()
                           .Name("medius_gateway_register_pending")
                           .Help("REGISTER requests waiting for the registrar")
                           .Register(registry)
                           .Add({})),
      mediaWorkers_(prometheus::BuildGauge()
                        .Name("medius_gateway_media_workers")
                        .Help("Media workers new sessions may go to (configured and resolved)")
                        .Register(registry)
                        .Add({})),
      registerSeconds_(grpcSeconds_.Add({{"service", "registrar"}, {"method", "Register"}},
                                        metrics::latencyBuckets())),
      calls_(prometheus::BuildCounter()
                 .Name("medius_gateway_calls_total")
                 .Help("Finished calls, by direction and outcome")
                 .Register(registry)),
      trunkAttempts_(prometheus::BuildCounter()
                         .Name("medius_gateway_trunk_call_attempts_total")
                         .Help("INVITEs (call forks) sent to a trunk")
                         .Register(registry)),
      trunkAnswers_(prometheus::BuildCounter()
                        .Name("medius_gateway_trunk_call_answers_total")
                        .Help("Call forks a trunk answered with 2xx")
                        .Register(registry)),
      trunkFailures_(prometheus::BuildCounter()
                         .Name("medius_gateway_trunk_call_failures_total")
                         .Help("Call forks toward a trunk that failed (error response, timeout, "
                               "transport error)")
                         .Register(registry)),
      trunkActive_(prometheus::BuildGauge()
                       .Name("medius_gateway_trunk_active_calls")
                       .Help("Calls in progress counted on a trunk")
                       .Register(registry)),
      callsActive_(prometheus::BuildGauge()
                       .Name("medius_gateway_calls_active")
                       .Help("Calls in progress on this gateway")
                       .Register(registry)
                       .Add({})),
      callSetup_(prometheus::BuildHistogram()
                     .Name("medius_gateway_call_setup_seconds")
                     .Help("Time from an INVITE received to the first 18x or 2xx relayed to "
                           "the caller")
                     .Register(registry)
                     .Add({}, prometheus::Histogram::BucketBoundaries{
                                  0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30})),
      cdrWriteErrors_(prometheus::BuildCounter()
                          .Name("medius_gateway_cdr_write_errors_total")
                          .Help("CDR lines that could not be written to calls.cdr_file")
                          .Register(registry)
                          .Add({})),
      floodBans_(prometheus::BuildCounter()
                     .Name("medius_gateway_flood_bans_total")
                     .Help("Source addresses banned for sending requests over their rate")
                     .Register(registry)
                     .Add({})),
      floodBanned_(prometheus::BuildGauge()
                       .Name("medius_gateway_flood_banned_sources")
                       .Help("Source addresses banned now")
                       .Register(registry)
                       .Add({})),
      floodSources_(prometheus::BuildGauge()
                        .Name("medius_gateway_flood_sources")
                        .Help("Source addresses in the flood guard's bounded table")
                        .Register(registry)
                        .Add({})),
      localRegisterChallenges_(
          prometheus::BuildCounter()
              .Name("medius_gateway_register_local_challenges_total")
              .Help("REGISTERs without credentials answered 401 by the gateway, from challenges "
                    "the registrar issued in advance")
              .Register(registry)
              .Add({})),
      tlsHandshakes_(prometheus::BuildCounter()
                         .Name("medius_gateway_tls_handshakes_total")
                         .Help("TLS handshakes on the internal side's TLS listener, by result "
                               "(ok, or why it was refused)")
                         .Register(registry)),
      tlsReloads_(prometheus::BuildCounter()
                      .Name("medius_gateway_tls_reloads_total")
                      .Help("Reloads of the TLS certificate files, by result")
                      .Register(registry)),
      tlsReloadOk_(tlsReloads_.Add({{"result", "ok"}})),
      tlsReloadError_(tlsReloads_.Add({{"result", "error"}})),
      tlsExpiry_(prometheus::BuildGauge()
                     .Name("medius_gateway_tls_certificate_expiry_timestamp_seconds")
                     .Help("End of validity (Unix time) of the TLS certificate in use; 0 without TLS")
                     .Register(registry)
                     .Add({})),
      trustedPeerRequests_(prometheus::BuildCounter()
                               .Name("medius_gateway_trusted_peer_requests_total")
                               .Help("Requests let in without digest credentials because their "
                                     "TLS client certificate names a trusted peer")
                               .Register(registry)
                               .Add({})),
      cstaRequests_(prometheus::BuildCounter()
                        .Name("medius_gateway_csta_requests_total")
                        .Help("uaCSTA requests of remote call control sessions, by request and "
                              "outcome")
                        .Register(registry)),
      rccSessions_(prometheus::BuildGauge()
                       .Name("medius_gateway_rcc_sessions")
                       .Help("Remote call control (uaCSTA) sessions open now")
                       .Register(registry)
                       .Add({})),
      flows_(prometheus::BuildGauge()
                 .Name("medius_gateway_flows")
                 .Help("Watched flows of registered clients (TCP/TLS connections, UDP from "
                       "behind NAT or with RFC 5626 outbound), by state")
                 .Register(registry)),
      flowsActive_(flows_.Add({{"state", "active"}})),
      flowsUnreachable_(flows_.Add({{"state", "unreachable"}})),
      flowKeepalives_(prometheus::BuildCounter()
                          .Name("medius_gateway_flow_keepalives_total")
                          .Help("Signs of life on watched flows by kind: a request over the "
                                "flow, an answered OPTIONS ping; and unanswered pings")
                          .Register(registry)),
      flowKeepaliveRequest_(flowKeepalives_.Add({{"kind", "request"}})),
      flowKeepalivePingAnswered_(flowKeepalives_.Add({{"kind", "ping_answered"}})),
      flowKeepalivePingUnanswered_(flowKeepalives_.Add({{"kind", "ping_unanswered"}})),
      flowFailures_(prometheus::BuildCounter()
                        .Name("medius_gateway_flow_failures_total")
                        .Help("Flows that died (their bindings reported unreachable), by "
                              "reason")
                        .Register(registry)),
      flowFailureClosed_(flowFailures_.Add({{"reason", "connection_closed"}})),
      flowFailureTimeout_(flowFailures_.Add({{"reason", "keepalive_timeout"}})),
      rccDialogEvents_(prometheus::BuildCounter()
                           .Name("medius_gateway_rcc_dialog_events_total")
                           .Help("Dialog-event subscriptions (RFC 4235) of remote call control to "
                                 "PBX phones and their NOTIFYs, by what happened")
                           .Register(registry)) {
  // Every request/outcome series exists from the start at 0 (rate() and the docs' check
  // see them before the first remote call control session).
  for (std::string_view request : kCstaRequests) {
    for (std::string_view outcome : kCstaOutcomes) {
      cstaRequests_.Add({{"request", std::string(request)}, {"outcome", std::string(outcome)}});
    }
  }
  for (std::string_view event : kRccDialogEvents) rccDialogEvents_.Add({{"event", std::string(event)}});
  for (std::size_t i = 0; i < tlsHandshakeSeries_.size(); ++i) {
    tlsHandshakeSeries_[i] = &tlsHandshakes_.Add({{"result", kTlsHandshakeResults[i]}});
  }
  auto& dropped = prometheus::BuildCounter()
                      .Name("medius_gateway_flood_dropped_total")
                      .Help("Requests dropped without an answer by the flood guard, by reason")
                      .Register(registry);
  floodDropped_ = {&dropped.Add({{"reason", "banned"}}), &dropped.Add({{"reason", "scanner"}})};
  auto& retransmissions =
      prometheus::BuildCounter()
          .Name("medius_gateway_register_retransmissions_total")
          .Help("Retransmitted REGISTERs: absorbed while the registrar works, or answered "
                "again with the answer already sent")
          .Register(registry);
  registerRetransmissions_ = {&retransmissions.Add({{"result", "absorbed"}}),
                              &retransmissions.Add({{"result", "answered_again"}})};
  auto& rejected = prometheus::BuildCounter()
                       .Name("medius_gateway_flood_rejected_total")
                       .Help("Requests answered 503 by the flood guard's global limits, by reason")
                       .Register(registry);
  floodRejected_ = {&rejected.Add({{"reason", "dialogs"}}), &rejected.Add({{"reason", "rate"}})};
  for (std::size_t d = 0; d < kDirections.size(); ++d) {
    for (std::size_t o = 0; o < kOutcomes.size(); ++o) {
      callCounters_[d][o] = &calls_.Add(
          {{"direction", std::string(kDirections[d])}, {"outcome", std::string(kOutcomes[o])}});
    }
  }
  auto& authFamily = prometheus::BuildCounter()
                         .Name("medius_gateway_auth_failures_total")
                         .Help("Requests (calls) that needed digest credentials and were not let "
                               "through, by reason")
                         .Register(registry);
  for (std::size_t i = 0; i < kAuthFailureCount; ++i) {
    authFailures_[i] =
        &authFamily.Add({{"reason", std::string(authFailureLabel(static_cast<AuthFailure>(i)))}});
  }
  auto& refusedFamily = prometheus::BuildCounter()
                            .Name("medius_gateway_requests_refused_total")
                            .Help("Requests refused before anything acted on them, by reason")
                            .Register(registry);
  for (std::size_t i = 0; i < kRefusalCount; ++i) {
    refused_[i] = &refusedFamily.Add({{"reason", std::string(refusalLabel(static_cast<Refusal>(i)))}});
  }
  auto& bansFamily = prometheus::BuildCounter()
                         .Name("medius_gateway_auth_bans_total")
                         .Help("Failed-authentication limits reached: source addresses banned "
                               "(scope=source), usernames locked (scope=user)")
                         .Register(registry);
  authBans_[0] = &bansFamily.Add({{"scope", "source"}});
  authBans_[1] = &bansFamily.Add({{"scope", "user"}});
}

void GatewayMetrics::countAuthBan(AuthBanScope scope) {
  authBans_[scope == AuthBanScope::Source ? 0 : 1]->Increment();
}

double GatewayMetrics::authBans(AuthBanScope scope) const {
  return authBans_[scope == AuthBanScope::Source ? 0 : 1]->Value();
}

void GatewayMetrics::countAuthFailure(AuthFailure failure) {
  authFailures_[static_cast<std::size_t>(failure)]->Increment();
}

void GatewayMetrics::countRefused(Refusal refusal) {
  refused_[static_cast<std::size_t>(refusal)]->Increment();
}

double GatewayMetrics::authFailures(AuthFailure failure) const {
  return authFailures_[static_cast<std::size_t>(failure)]->Value();
}

double GatewayMetrics::refused(Refusal refusal) const {
  return refused_[static_cast<std::size_t>(refusal)]->Value();
}

void GatewayMetrics::countRequest(Method method, Side side) {
  std::size_t index = static_cast<std::size_t>(method) * 2 + static_cast<std::size_t>(side);
  auto*& counter = requestCache_[index];
  if (!counter) {
    counter = &requests_.Add(
        {{"method", std::string(methodLabel(method))}, {"side", std::string(sideName(side))}});
  }
  counter->Increment();
}

void GatewayMetrics::countResponse(Method method, int status, Side side) {
  int cls = status / 100;
  if (cls < 1 || cls > 6) return;
  std::size_t index = (static_cast<std::size_t>(method) * 6 + static_cast<std::size_t>(cls - 1)) * 2 +
                      static_cast<std::size_t>(side);
  auto*& counter = responseCache_[index];
  if (!counter) {
    counter = &responses_.Add({{"method", std::string(methodLabel(method))},
                               {"code_class", std::string(kCodeClasses[cls - 1])},
                               {"side", std::string(sideName(side))}});
  }
  counter->Increment();
}

void GatewayMetrics::countGrpcError(std::string_view service, std::string_view method,
                                    grpc::StatusCode code) {
  // Rare path; Family::Add is thread-safe and returns the existing series.
  std::lock_guard lock(errorMutex_);
  grpcErrors_
      .Add({{"service", std::string(service)},
            {"method", std::string(method)},
            {"code", std::string(grpcCodeName(code))}})
      .Increment();
}

prometheus::Histogram& GatewayMetrics::grpcClientSeconds(std::string_view service,
                                                         std::string_view method) {
  std::lock_guard lock(histogramMutex_);
  return grpcSeconds_.Add({{"service", std::string(service)}, {"method", std::string(method)}},
                          metrics::latencyBuckets());
}

void GatewayMetrics::setTrunkUp(const std::string& trunk, bool up) {
  trunkUp_.Add({{"trunk", trunk}}).Set(up ? 1 : 0);
  trunkCounters_.try_emplace(trunk);
  trunkCallSeries(trunk);  // the call series of a known trunk exist at 0
}

void GatewayMetrics::countTrunkOptions(const std::string& trunk, std::string_view result) {
  auto& counter = trunkOptions_.Add({{"trunk", trunk}, {"result", std::string(result)}});
  counter.Increment();
  auto& known = trunkCounters_[trunk];
  if (std::find(known.begin(), known.end(), &counter) == known.end()) known.push_back(&counter);
}

void GatewayMetrics::removeTrunk(const std::string& trunk) {
  auto it = trunkCounters_.find(trunk);
  if (it == trunkCounters_.end()) return;
  for (prometheus::Counter* counter : it->second) trunkOptions_.Remove(counter);
  trunkUp_.Remove(&trunkUp_.Add({{"trunk", trunk}}));
  trunkCounters_.erase(it);
  if (auto calls = trunkCalls_.find(trunk); calls != trunkCalls_.end()) {
    trunkAttempts_.Remove(calls->second.attempts);
    trunkAnswers_.Remove(calls->second.answers);
    trunkFailures_.Remove(calls->second.failures);
    trunkActive_.Remove(calls->second.active);
    trunkCalls_.erase(calls);
  }
}

GatewayMetrics::TrunkCallSeries& GatewayMetrics::trunkCallSeries(const std::string& trunk) {
  auto it = trunkCalls_.find(trunk);
  if (it != trunkCalls_.end()) return it->second;
  const prometheus::Labels labels{{"trunk", trunk}};
  TrunkCallSeries series{&trunkAttempts_.Add(labels), &trunkAnswers_.Add(labels),
                         &trunkFailures_.Add(labels), &trunkActive_.Add(labels)};
  // removeTrunk only drops trunks it knows: a trunk first seen by a call is known from now.
  trunkCounters_.try_emplace(trunk);
  return trunkCalls_.emplace(trunk, series).first->second;
}

void GatewayMetrics::setCallsActive(std::size_t calls) {
  callsActive_.Set(static_cast<double>(calls));
}

void GatewayMetrics::countCall(std::string_view direction, std::string_view outcome) {
  const int d = indexOf(kDirections, direction);
  const int o = indexOf(kOutcomes, outcome);
  if (d < 0 || o < 0) return;
  callCounters_[static_cast<std::size_t>(d)][static_cast<std::size_t>(o)]->Increment();
}

void GatewayMetrics::countTlsHandshake(std::string_view result) {
  std::size_t other = tlsHandshakeSeries_.size() - 1;
  for (std::size_t i = 0; i < tlsHandshakeSeries_.size(); ++i) {
    if (result == kTlsHandshakeResults[i]) {
      tlsHandshakeSeries_[i]->Increment();
      return;
    }
  }
  tlsHandshakeSeries_[other]->Increment();
}

double GatewayMetrics::tlsHandshakes(std::string_view result) const {
  for (std::size_t i = 0; i < tlsHandshakeSeries_.size(); ++i) {
    if (result == kTlsHandshakeResults[i]) return tlsHandshakeSeries_[i]->Value();
  }
  return 0;
}

void GatewayMetrics::countFloodDrop(std::string_view reason) {
  floodDropped_[reason == "scanner" ? 1 : 0]->Increment();
}

void GatewayMetrics::countFloodReject(std::string_view reason) {
  floodRejected_[reason == "rate" ? 1 : 0]->Increment();
}

void GatewayMetrics::setFloodSources(std::size_t sources, std::size_t banned) {
  floodSources_.Set(static_cast<double>(sources));
  floodBanned_.Set(static_cast<double>(banned));
}

void GatewayMetrics::observeCallSetup(double seconds) { callSetup_.Observe(seconds); }

void GatewayMetrics::countTrunkAttempt(const std::string& trunk) {
  trunkCallSeries(trunk).attempts->Increment();
}

void GatewayMetrics::countTrunkAnswer(const std::string& trunk) {
  trunkCallSeries(trunk).answers->Increment();
}

void GatewayMetrics::countTrunkFailure(const std::string& trunk) {
  trunkCallSeries(trunk).failures->Increment();
}

void GatewayMetrics::setTrunkActiveCalls(const std::string& trunk, std::uint32_t calls) {
  trunkCallSeries(trunk).active->Set(static_cast<double>(calls));
}

namespace {

template <std::size_t N>
bool oneOf(const std::array<std::string_view, N>& values, std::string_view v) {
  for (auto x : values) {
    if (x == v) return true;
  }
  return false;
}
}  // namespace

void GatewayMetrics::countCstaRequest(std::string_view request, std::string_view outcome) {
  if (!oneOf(kCstaRequests, request) || !oneOf(kCstaOutcomes, outcome)) return;
  cstaRequests_.Add({{"request", std::string(request)}, {"outcome", std::string(outcome)}})
      .Increment();
}

void GatewayMetrics::countRccDialogEvent(std::string_view what) {
  bool known = false;
  for (auto w : kRccDialogEvents) known = known || w == what;
  if (!known) return;
  rccDialogEvents_.Add({{"event", std::string(what)}}).Increment();
}

}  // namespace medius::gateway
