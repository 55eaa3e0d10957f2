#include "medius/gateway/b2bua.hpp"

#include <array>
#include <cassert>
#include <chrono>
#include <cstring>
#include <random>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include "medius/common/logging.hpp"
#include "medius/gateway/sip_util.hpp"

namespace medius::gateway {

namespace {

constexpr const char* kCompletedElsewhere = "SIP;cause=200;text=\"Call completed elsewhere\"";
constexpr const char* kRequestTerminated = "SIP;cause=487;text=\"Request Terminated\"";
constexpr const char* kMediaTimeout = "SIP;cause=408;text=\"Media timeout\"";
constexpr const char* kShutdown = "SIP;cause=503;text=\"Gateway shutting down\"";
constexpr const char* kAllow = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE";

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* identOf(Side side) { return side == Side::Internal ? "internal" : "trunk"; }

bool hasOption(const msg_list_t* list, const char* option) {
  for (; list; list = list->k_next) {
    for (const msg_param_t* p = list->k_items; p && *p; ++p) {
      if (strcasecmp(*p, option) == 0) return true;
    }
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Call state

struct B2bua::Fork {
  B2bua* b2bua = nullptr;
  Call* call = nullptr;
  std::uint64_t id = 0;
  std::uint32_t group = 0;
  nta_leg_t* leg = nullptr;        // owned
  nta_outgoing_t* orq = nullptr;   // the INVITE, owned
  nta_outgoing_t* cancel = nullptr;
  nta_outgoing_t* ack = nullptr;
  Side side = Side::Trunk;
  std::string requestUri;
  std::string callId;
  std::string trunk;
  std::string proto = "udp";
  std::vector<std::uint32_t> failoverCodes;
  int status = 0;
  bool final = false;
  bool cancelled = false;
  bool timedOut = false;
  bool counted = false;            // counted in the directory's trunk calls
  int transfer = 0;                // a REFER's target replacing leg A (1) or leg B (2)
  std::string userAor;             // the user this device fork rings ("" for trunks)
  std::string calledNumber;        // the number sent to the trunk ("" for devices)
  std::size_t record = 0;          // index into call->record.forks
  // What the INVITE is made of, kept to send it again after a 422 (RFC 4028 8.1).
  std::string nextHop;
  std::string route;
  std::string contact;
  // The flow of a registered device without Path (its binding's received address): where
  // requests in its dialog go when its Contact is behind NAT (contactAtFlow).
  v1::SocketAddress flow;
  std::string offer;
  std::uint32_t offerId = 0;       // which of the worker's offers toward B (its answer says it)
  std::string assertedIdentity;    // P-Asserted-Identity value (trusted trunks only), or ""
  std::uint32_t sessionExpires = 0;
  std::uint32_t minSe = 0;
  bool retried422 = false;
};

// RFC 4028 on one leg: who refreshes, how often, and the timer that refreshes or
// supervises.
struct SessionTimer {
  B2bua::Call* call = nullptr;
  bool aSide = true;
  std::uint32_t interval = 0;      // seconds; 0: no session timer on this leg
  bool weRefresh = false;
  bool requireTimer = false;       // the peer supports "timer": our 2xx carries Require
  bool peerAllowsUpdate = false;   // refresh with UPDATE rather than re-INVITE
  su_timer_t* timer = nullptr;
};

struct B2bua::Call {
  enum class State { Routing, Media, Calling, Answering, Confirmed, Ending };
  B2bua* b2bua = nullptr;
  std::string id;
  State state = State::Routing;
  Side aSide = Side::Internal;
  std::string aProto = "udp";
  nta_leg_t* aLeg = nullptr;       // owned
  // An internal caller without Record-Route: where its requests come from (contactAtFlow).
  v1::SocketAddress aFlow;
  nta_incoming_t* aIrq = nullptr;  // the caller's INVITE, owned until reaped
  bool aAnswered = false;          // a final response went to the INVITE
  std::string aCallId;
  std::string callerUri;           // the authenticated AOR, else a trusted trunk's PAI, else the From URI
  std::string callerUser;          // its user part (From of a fork routing gave no caller ID)
  bool authenticated = false;      // callerUri is an authenticated user's AOR
  bool privacyId = false;          // the caller sent Privacy: id (RFC 3323/3325)
  std::string callerDisplay;
  std::string calleeUri;           // Request-URI as received
  std::string sourceTrunk;
  std::string offer;               // the caller's SDP
  // The media worker's offers toward the forks, one per media policy among the targets
  // (index = offer id: leg_b's, then leg_b_alternatives'), and those policies.
  std::vector<std::string> offersToB;
  v1::CreateSessionRequest offerPolicies;  // only its leg_b and leg_b_alternatives
  std::string lastSdpToA;
  std::string lastSdpToB;
  std::uint32_t maxForwards = 69;
  v1::RoutePlan plan;
  int group = -1;
  std::uint32_t generation = 0;    // bumped per group: late lookups of old groups are dropped
  int pendingLookups = 0;
  std::vector<std::unique_ptr<Fork>> forks;
  Fork* winner = nullptr;
  su_timer_t* groupTimer = nullptr;
  std::set<std::string> trunksTried;
  bool relayedProvisional = false;
  bool ringing = false;            // a fork of the current group sent 18x
  bool setupObserved = false;
  bool failoverBlocked = false;    // a failure in this group that forbids failover
  std::vector<int> failures;       // final statuses of every failed fork
  std::string mediaWorker;
  bool mediaSession = false;
  bool mediaUpdating = false;      // an early/final answer is being applied
  std::string direction = "outbound";
  CallRecord record;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // A re-INVITE being relayed.
  struct Relay {
    bool active = false;
    bool fromA = false;
    bool update = false;           // UPDATE (RFC 3311) rather than re-INVITE
    nta_incoming_t* irq = nullptr;
    std::uint64_t tx = 0;
  } relay;
  std::vector<std::uint64_t> txs;  // dialog transactions we sent
  SessionTimer stA;
  SessionTimer stB;
  struct Transfer {
    bool active = false;
    bool fromA = false;             // the transferor is on leg A
    bool transferorGone = false;    // it hung up while the target was being called
    Fork* target = nullptr;
  } transfer;
  std::vector<nta_leg_t*> retiredLegs;  // replaced by a transfer; answer 481/200 until reaped
  bool aReliable = false;          // the caller supports 100rel: early media goes reliably
  bool aOwnCallId = false;         // leg A's Call-ID is ours (a transfer target became leg A)
  // A re-INVITE/UPDATE of ours that got 491, sent again when the timer fires (RFC 3261
  // 14.1); one per leg (0 = A, 1 = B).
  struct Glare {
    Call* call = nullptr;
    su_timer_t* timer = nullptr;
    std::function<void()> retry;
  };
  std::array<Glare, 2> glare;
  bool finished = false;
  bool reapQueued = false;
};

namespace {

// Session-Expires (and Require: timer) of a 2xx we send on a leg whose peer is the UAC.
std::string sessionHeaders(const SessionTimer& st) {
  if (st.interval == 0) return {};
  std::string h = "Session-Expires: " + std::to_string(st.interval) +
                  (st.weRefresh ? ";refresher=uas" : ";refresher=uac") + "\r\n";
  if (st.requireTimer) h += "Require: timer\r\n";
  return h;
}

}  // namespace


// ---------------------------------------------------------------------------------------

std::string LocalContacts::contact(Side side, const std::string& proto,
                                   const std::string& user) const {
  // "sips": a dialog its peer started with a sips: Request-URI, over TLS.
  bool sips = proto == "sips";
  std::string key = std::string(identOf(side)) + "/" + (sips ? "tls" : proto);
  auto it = hostPort.find(key);
  if (it == hostPort.end()) it = hostPort.find(std::string(identOf(side)) + "/udp");
  std::string hp = it != hostPort.end() ? it->second : "127.0.0.1";
  // RFC 3261 12.1.1: a dialog started with a SIPS Request-URI gets a SIPS Contact; over
  // TLS otherwise the Contact says ";transport=tls" (19.1.5), so that the peer's requests
  // in the dialog come back over TLS, to the TLS listener.
  std::string uri = (sips ? "<sips:" : "<sip:") + user + "@" + hp;
  if (proto == "tcp" || proto == "tls") uri += ";transport=" + proto;
  return uri + ">";
}

std::string LocalContacts::hostOf(Side side, const std::string& proto) const {
  auto it = hostPort.find(std::string(identOf(side)) + "/" + (proto == "sips" ? "tls" : proto));
  if (it == hostPort.end()) it = hostPort.find(std::string(identOf(side)) + "/udp");
  if (it == hostPort.end()) return "127.0.0.1";
  const std::string& hp = it->second;
  if (!hp.empty() && hp.front() == '[') return hp.substr(0, hp.find(']') + 1);
  return hp.substr(0, hp.rfind(':'));
}

bool LocalContacts::isOwn(const std::string& host, std::uint32_t port) const {
  std::string hp = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                   std::to_string(port);
  for (const auto& [key, value] : hostPort) {
    if (value == hp) return true;
  }
  return false;
}

B2bua::B2bua(Deps deps) : d_(std::move(deps)), self_(std::make_shared<B2bua*>(this)) {
  std::random_device rd;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
  idPrefix_ = d_.config.gatewayId + "-" + buf + "-";
}

B2bua::~B2bua() {
  endAll("shutdown");
  self_.reset();
  std::vector<std::string> ids;
  for (auto& [id, call] : calls_) ids.push_back(id);
  for (const auto& id : ids) reap(id);
  for (auto& [id, tx] : dialogTx_) nta_outgoing_destroy(tx->orq);
  dialogTx_.clear();
}

B2bua::Call* B2bua::find(const std::string& id) {
  auto it = calls_.find(id);
  return it == calls_.end() || it->second->finished ? nullptr : it->second.get();
}

int B2bua::replyStateless(nta_incoming_t* irq, const SipReply& reply, Side side) {
  std::string extra = reply.headerText();
  nta_incoming_treply(irq, reply.status, reply.phrase.c_str(),
                      SIPTAG_SERVER_STR(d_.config.userAgent.c_str()),
                      TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())), TAG_END());
  d_.metrics.countResponse(Method::Invite, reply.status, side);
  return reply.status;
}

void B2bua::respondA(Call& call, const SipReply& reply) {
  if (!call.aIrq || call.aAnswered) return;
  std::string extra = reply.headerText();
  nta_incoming_treply(call.aIrq, reply.status, reply.phrase.c_str(),
                      SIPTAG_SERVER_STR(d_.config.userAgent.c_str()),
                      TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())), TAG_END());
  d_.metrics.countResponse(Method::Invite, reply.status, call.aSide);
  if (reply.status >= 200) call.aAnswered = true;
}

// ---------------------------------------------------------------------------------------
// A new call

int B2bua::onInvite(nta_incoming_t* irq, const sip_t* sip, Side side,
                    const RequestSource& source, const CallerIdentity& caller) {
  // The Gateway authenticates every internal-side INVITE before it gets here.
  assert(side == Side::Trunk || d_.config.authCalls == CallAuthMode::Off ||
         caller.authenticated());
  // Every refusal before a call exists: one response, counted and logged, no CDR line.
  auto refuse = [&](int status, std::string phrase, const char* header = nullptr,
                    std::string value = {}) {
    SipReply r;
    r.status = status;
    r.phrase = std::move(phrase);
    if (header) r.headers.emplace_back(header, std::move(value));
    replyStateless(irq, r, side);
    d_.metrics.countCall(side == Side::Trunk ? "inbound" : "outbound", "rejected");
    log::get("call")->info("INVITE {} refused: {} {}",
                           sip->sip_call_id ? sip->sip_call_id->i_id : "-", status, r.phrase);
    return status;
  };
  const std::string retryAfter = std::to_string(d_.config.retryAfterSeconds);
  if (!accepting_) return refuse(503, "Shutting Down", "Retry-After", retryAfter);
  if (calls_.size() >= static_cast<std::size_t>(d_.config.maxCalls)) {
    return refuse(503, "Too Many Calls", "Retry-After", retryAfter);
  }
  std::optional<std::uint32_t> mf;
  if (sip->sip_max_forwards) mf = static_cast<std::uint32_t>(sip->sip_max_forwards->mf_count);
  auto next = nextMaxForwards(mf);
  if (!next) return refuse(483, "Too Many Hops");
  if (d_.contacts.isOwn(source.host, source.port)) return refuse(482, "Loop Detected");
  if (!sip->sip_from || !sip->sip_from->a_url->url_host || !sip->sip_request->rq_url->url_user) {
    return refuse(400, "Missing Caller Or Callee");
  }
  if (sip->sip_require) {
    // The extensions calls support: "timer" (RFC 4028) and "100rel" (RFC 3262, unless
    // calls.rel100 is off).
    std::string unsupported;
    for (const msg_list_t* l = sip->sip_require; l; l = l->k_next) {
      for (const msg_param_t* p = l->k_items; p && *p; ++p) {
        if (strcasecmp(*p, "timer") == 0) continue;
        if (d_.config.rel100 && strcasecmp(*p, "100rel") == 0) continue;
        unsupported += (unsupported.empty() ? "" : ", ") + sanitizeHeaderValue(*p, 40);
      }
    }
    if (!unsupported.empty()) return refuse(420, "Bad Extension", "Unsupported", unsupported);
  }
  std::string sdp = sdpBody(sip);
  if (sdp.empty()) return refuse(488, "An SDP Offer Is Required");
  if (sip->sip_session_expires &&
      sip->sip_session_expires->x_delta < static_cast<unsigned long>(d_.config.minSeS)) {
    return refuse(422, "Session Interval Too Small", "Min-SE", std::to_string(d_.config.minSeS));
  }
  std::string sourceTrunk;
  if (side == Side::Trunk) {
    sourceTrunk = trunks_ ? trunks_->trunkAt(source.host, source.port) : std::string();
    if (sourceTrunk.empty()) return refuse(403, "Not A Configured Trunk");
  }

  auto owned = std::make_unique<Call>();
  Call& call = *owned;
  call.b2bua = this;
  call.id = idPrefix_ + std::to_string(nextCall_++);
  call.aSide = side;
  call.aProto = transportName(source.transport);
  if (call.aProto == "tls" && sip->sip_request->rq_url->url_type == url_sips) call.aProto = "sips";
  call.maxForwards = *next;
  call.aCallId = sip->sip_call_id->i_id;
  call.stA.call = &call;
  call.stA.aSide = true;
  call.stB.call = &call;
  call.stB.aSide = false;
  call.stA.peerAllowsUpdate = hasOption(reinterpret_cast<const msg_list_t*>(sip->sip_allow), "UPDATE");
  // nta itself sends every 18x reliably to a caller that requires 100rel; one that only
  // supports it gets its early media reliably (RFC 6337 3.1.1: an answer in an unreliable
  // 18x may be lost), plain 180s unreliably.
  call.aReliable = d_.config.rel100 && (hasOption(sip->sip_supported, "100rel") ||
                                        hasOption(sip->sip_require, "100rel"));
  if (const sip_session_expires_t* se = sip->sip_session_expires) {
    // RFC 4028 9: honour the caller's refresher; when it named none, a caller that
    // supports timer refreshes itself, otherwise we do.
    bool supportsTimer = hasOption(sip->sip_supported, "timer");
    call.stA.interval = static_cast<std::uint32_t>(se->x_delta);
    call.stA.requireTimer = supportsTimer;
    call.stA.weRefresh = se->x_refresher ? strcasecmp(se->x_refresher, "uas") == 0 : !supportsTimer;
  }
  call.offer = std::move(sdp);
  call.sourceTrunk = sourceTrunk;
  // Who calls: the authenticated user, never the From a client made up; on a trusted
  // trunk its P-Asserted-Identity (RFC 3325 9.1), on any other the From.
  call.callerUri = urlText(sip->sip_from->a_url, true);
  call.callerUser = sip->sip_from->a_url->url_user ? sip->sip_from->a_url->url_user : "";
  if (caller.authenticated()) {
    call.callerUri = caller.aor;
    call.authenticated = true;
    auto at = caller.aor.find('@');
    auto colon = caller.aor.find(':');
    if (at != std::string::npos && colon != std::string::npos && colon < at) {
      call.callerUser = caller.aor.substr(colon + 1, at - colon - 1);
    }
  } else if (side == Side::Trunk && trunks_ && trunks_->trusted(sourceTrunk)) {
    if (std::string asserted = assertedIdentity(sip); !asserted.empty()) call.callerUri = asserted;
  }
  call.callerDisplay = sip->sip_from->a_display ? unquote(sip->sip_from->a_display) : "";
  call.privacyId = privacyId(sip);
  call.calleeUri = urlText(sip->sip_request->rq_url, true);
  call.record.id = call.id;
  call.record.gatewayId = d_.config.gatewayId;
  call.record.callerDialled = sip->sip_from->a_url->url_user ? sip->sip_from->a_url->url_user : "";
  call.record.calleeDialled = sip->sip_request->rq_url->url_user;
  call.record.sourceTrunk = sourceTrunk;
  call.record.callerAuthenticated = caller.aor;
  call.record.startedAtMs = nowMs();
  call.direction = side == Side::Trunk ? "inbound" : "outbound";

  // Leg A: the caller's dialog as its UAS. nta keeps From/To from our point of view:
  // local = the request's To, remote = its From.
  call.aLeg = nta_leg_tcreate(d_.agent, &B2bua::aLegCallback,
                              reinterpret_cast<nta_leg_magic_t*>(&call),
                              SIPTAG_CALL_ID(sip->sip_call_id), SIPTAG_FROM(sip->sip_to),
                              SIPTAG_TO(sip->sip_from),
                              NTATAG_REMOTE_CSEQ(sip->sip_cseq->cs_seq), TAG_END());
  if (!call.aLeg) return refuse(500, "Cannot Create Dialog");
  if (side == Side::Internal && !sip->sip_record_route) {
    call.aFlow.set_host(source.host);
    call.aFlow.set_port(source.port);
    call.aFlow.set_transport(source.transport);
  }
  {
    su_home_t home[1] = {SU_HOME_INIT(home)};
    nta_leg_server_route(call.aLeg, sip->sip_record_route,
                         contactAtFlow(home, sip->sip_contact, call.aFlow));
    su_home_deinit(home);
  }
  nta_leg_tag(call.aLeg, nullptr);
  nta_incoming_tag(irq, nta_leg_get_tag(call.aLeg));
  call.aIrq = irq;
  nta_incoming_bind(irq, &B2bua::inviteIrqCallback, reinterpret_cast<nta_incoming_magic_t*>(&call));
  nta_incoming_treply(irq, SIP_100_TRYING, TAG_END());

  std::string id = call.id;
  calls_.emplace(id, std::move(owned));
  d_.metrics.setCallsActive(calls_.size());
  if (!sourceTrunk.empty()) d_.directory.addTrunkCall(sourceTrunk);
  publish(call);
  log::get("call")->info("call {}: INVITE {} -> {} from the {} side{}{}, Call-ID {}", id,
                         call.callerUri, call.calleeUri, sideName(side),
                         sourceTrunk.empty() ? "" : ", trunk ", sourceTrunk,
                         sip->sip_call_id->i_id);

  v1::RouteCallRequest request;
  request.set_caller(call.callerUri);
  request.set_callee(call.calleeUri);
  request.set_call_id(id);
  if (side == Side::Trunk) {
    request.mutable_source()->set_trunk(sourceTrunk);
  } else {
    request.mutable_source()->set_internal_user(caller.authenticated() ? caller.aor
                                                                       : aorOf(sip->sip_from->a_url));
  }
  std::weak_ptr<B2bua*> weak = self_;
  SipLoop* loop = &d_.loop;
  d_.routing.routeCallAsync(std::move(request),
                            [weak, loop, id](const grpc::Status& status, v1::RoutePlan plan) {
                              loop->post([weak, id, status, plan = std::move(plan)] {
                                if (auto self = weak.lock()) (*self)->onRoute(id, status, plan);
                              });
                            });
  return 0;
}

void B2bua::onRoute(const std::string& id, const grpc::Status& status, const v1::RoutePlan& plan) {
  Call* found = find(id);
  if (!found || found->state != Call::State::Routing) return;
  Call& call = *found;
  if (!status.ok()) {
    log::get("call")->warn("call {}: routing failed: {} {}", id, grpcCodeName(status.error_code()),
                           status.error_message());
    reject(call, dependencyFailureReply("Routing", status, d_.config.retryAfterSeconds), "rejected");
    return;
  }
  call.plan = plan;
  call.record.callerNormalized = plan.calling_number();
  call.record.calleeNormalized = plan.called_number();
  std::string routes;
  for (const auto& g : plan.groups()) {
    if (g.route().empty() || routes.find(g.route()) != std::string::npos) continue;
    routes += (routes.empty() ? "" : ",") + g.route();
  }
  call.record.route = routes;
  call.direction = std::string(callDirection(call.aSide, !plan.callee_user().empty()));
  if (plan.outcome() != v1::RoutePlan::OUTCOME_ROUTED || plan.groups_size() == 0) {
    SipReply reply = routeOutcomeReply(plan, d_.config.retryAfterSeconds);
    log::get("call")->info("call {}: {} ({})", id, reply.status, plan.reason());
    reject(call, reply, "rejected");
    return;
  }
  call.state = Call::State::Media;
  v1::CreateSessionRequest request;
  request.set_session_id(id);
  request.set_gateway_id(d_.config.gatewayId);
  // Each leg's SRTP policy and codecs: the caller's side, and every policy among the
  // targets (one offer toward B each; a fork gets the one of its target's policy).
  v1::TrunkMedia sourceMedia;
  if (call.aSide == Side::Trunk && trunks_) sourceMedia = trunks_->media(call.sourceTrunk);
  fillLegParams(request, call.aSide, call.sourceTrunk, sourceMedia, plan, d_.config.internalSrtp,
                d_.config.internalCodecs);
  *call.offerPolicies.mutable_leg_b() = request.leg_b();
  *call.offerPolicies.mutable_leg_b_alternatives() = request.leg_b_alternatives();
  request.set_offer_sdp(call.offer);
  request.set_media_timeout_ms(static_cast<std::uint32_t>(d_.config.mediaInactivityMs));
  std::weak_ptr<B2bua*> weak = self_;
  SipLoop* loop = &d_.loop;
  MediaClient* media = &d_.media;
  d_.media.createAsync(
      std::move(request), [weak, loop, media, id](const grpc::Status& st,
                                                  v1::CreateSessionResponse response,
                                                  std::string worker) {
        bool posted = loop->post([weak, id, st, response = std::move(response), worker] {
          if (auto self = weak.lock()) {
            (*self)->onMediaCreated(id, st, response, worker);
          }
        });
        if (!posted && st.ok()) {
          v1::DeleteSessionRequest del;
          del.set_session_id(id);
          media->deleteAsync(worker, del, [](const grpc::Status&, v1::SessionStats) {});
        }
      });
}

void B2bua::onMediaCreated(const std::string& id, const grpc::Status& status,
                           const v1::CreateSessionResponse& response, const std::string& worker) {
  Call* found = find(id);
  if (!found || found->state != Call::State::Media) {
    if (status.ok()) {
      // The call ended while the session was being made: release it.
      v1::DeleteSessionRequest del;
      del.set_session_id(id);
      d_.media.deleteAsync(worker, del, [](const grpc::Status&, v1::SessionStats) {});
    }
    return;
  }
  Call& call = *found;
  if (!status.ok()) {
    log::get("call")->warn("call {}: no media session: {} {}", id, grpcCodeName(status.error_code()),
                           status.error_message());
    if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      SipReply r;
      r.status = 488;
      r.phrase = "Not Acceptable Here";
      r.headers.emplace_back("Warning", "399 medius \"" + sanitizeHeaderValue(status.error_message()) + "\"");
      reject(call, r, "rejected");
    } else {
      reject(call, dependencyFailureReply("Media", status, d_.config.retryAfterSeconds), "rejected");
    }
    return;
  }
  call.mediaSession = true;
  call.mediaWorker = worker;
  call.record.mediaWorker = worker;
  call.offersToB.assign(1, response.offer_sdp());
  call.offersToB.insert(call.offersToB.end(), response.alternative_offer_sdp().begin(),
                        response.alternative_offer_sdp().end());
  call.lastSdpToB = call.offersToB.front();
  call.state = Call::State::Calling;
  publish(call);
  startGroup(call);
}

// ---------------------------------------------------------------------------------------
// Forks

void B2bua::startGroup(Call& call) {
  call.group += 1;
  call.generation += 1;
  call.ringing = false;
  call.failoverBlocked = false;
  if (call.groupTimer) {
    su_timer_destroy(call.groupTimer);
    call.groupTimer = nullptr;
  }
  if (call.group >= call.plan.groups_size()) {
    int status = bestFailure(call.failures);
    SipReply r;
    r.status = status;
    r.phrase = statusPhrase(status);
    respondA(call, r);
    finish(call, "failed", status);
    return;
  }
  const v1::TargetGroup& group = call.plan.groups(call.group);
  log::get("call")->debug("call {}: group {} ({} targets): {}", call.id, call.group,
                          group.targets_size(), group.reason());
  std::uint32_t timeout = group.timeout_ms() > 0
                              ? group.timeout_ms()
                              : static_cast<std::uint32_t>(d_.config.noAnswerTimeoutMs);
  call.groupTimer = su_timer_create(su_root_task(d_.loop.root()), timeout);
  su_timer_set(call.groupTimer, &B2bua::onGroupTimer, reinterpret_cast<su_timer_arg_t*>(&call));
  for (const auto& target : group.targets()) {
    if (target.has_trunk()) {
      const auto& t = target.trunk();
      if (!call.trunksTried.insert(t.trunk()).second) {
        log::get("call")->info("call {}: trunk {} already tried, skipped", call.id, t.trunk());
        continue;
      }
      std::uint32_t max = trunks_ ? trunks_->maxCalls(t.trunk()) : 0;
      if (max > 0 && d_.directory.trunkCalls(t.trunk()) >= max) {
        // Full: counts as a failover failure (the next group may have room).
        log::get("call")->warn("call {}: trunk {} is full ({} calls), skipped", call.id,
                               t.trunk(), max);
        ForkAttempt full;
        full.target = t.request_uri();
        full.trunk = t.trunk();
        full.status = 503;
        full.reason = "trunk full (max_concurrent_calls " + std::to_string(max) + ")";
        call.record.forks.push_back(full);
        call.failures.push_back(503);
        d_.metrics.countTrunkFailure(t.trunk());
        continue;
      }
      std::string to = t.request_uri();
      if (auto semi = to.find(';'); semi != std::string::npos) to.resize(semi);
      sendFork(call, target, t.request_uri(), "<" + to + ">", nextHopOf(t.address()), Side::Trunk,
               {});
    } else if (!target.user_aor().empty()) {
      call.pendingLookups += 1;
      v1::LookupRequest lookup;
      lookup.set_aor(target.user_aor());
      std::weak_ptr<B2bua*> weak = self_;
      SipLoop* loop = &d_.loop;
      std::string id = call.id;
      std::uint32_t generation = call.generation;
      d_.registrar.lookupAsync(std::move(lookup), [weak, loop, id, generation, target](
                                                      const grpc::Status& st,
                                                      v1::LookupResponse response) {
        loop->post([weak, id, generation, target, st, response = std::move(response)] {
          if (auto self = weak.lock()) (*self)->onLookup(id, generation, target, st, response);
        });
      });
    }
  }
  checkGroup(call);
}

void B2bua::onLookup(const std::string& id, std::uint32_t generation, const v1::RouteTarget& target,
                     const grpc::Status& status, const v1::LookupResponse& response) {
  Call* found = find(id);
  if (!found || found->generation != generation || found->state != Call::State::Calling) return;
  Call& call = *found;
  call.pendingLookups -= 1;
  if (!status.ok()) {
    log::get("call")->warn("call {}: registrar lookup of {} failed: {}", id, target.user_aor(),
                           grpcCodeName(status.error_code()));
    call.failures.push_back(480);
  } else {
    std::string to = "<" + target.user_aor() + ">";
    for (const auto& binding : response.bindings()) {
      if (flowOnOtherGateway(binding, d_.config.gatewayId)) {
        log::get("call")->warn(
            "call {}: {} ({}) is behind a NAT whose flow is on gateway {} (no Path): not "
            "reachable from here, fork skipped (503)",
            id, binding.contact_uri(), target.user_aor(), binding.gateway_id());
        call.failures.push_back(503);
        continue;
      }
      std::string hop;
      if (binding.path_size() == 0 && binding.has_received() && !binding.received().host().empty()) {
        hop = nextHopOf(binding.received());
      }
      std::vector<std::string> path(binding.path().begin(), binding.path().end());
      Fork* f = sendFork(call, target, binding.contact_uri(), to, hop, Side::Internal, path);
      if (f && !hop.empty()) f->flow = binding.received();
    }
    if (response.bindings_size() == 0) call.failures.push_back(480);
  }
  checkGroup(call);
}

B2bua::Fork* B2bua::sendFork(Call& call, const v1::RouteTarget& target,
                             const std::string& requestUri, const std::string& toUri,
                             const std::string& nextHop, Side side,
                             const std::vector<std::string>& path, const std::string* sdp,
                             int transfer) {
  auto fork = std::make_unique<Fork>();
  Fork& f = *fork;
  f.b2bua = this;
  f.call = &call;
  f.id = nextTx_++;
  f.group = static_cast<std::uint32_t>(call.group);
  f.side = side;
  f.requestUri = requestUri;
  f.transfer = transfer;
  f.userAor = target.user_aor();
  if (target.has_trunk()) f.calledNumber = target.trunk().called_number();
  if (target.has_trunk()) {
    f.trunk = target.trunk().trunk();
    f.failoverCodes.assign(target.trunk().failover_codes().begin(),
                           target.trunk().failover_codes().end());
    if (target.trunk().address().transport() == v1::TRANSPORT_TCP) f.proto = "tcp";
  } else if (requestUri.rfind("sips:", 0) == 0) {
    f.proto = "sips";  // a SIPS Contact for a SIPS target (RFC 3261 12.1.1)
  } else if (nextHop.rfind("sips:", 0) == 0 || requestUri.find("transport=tls") != std::string::npos) {
    // A user registered over TLS: its binding's received address is a TLS connection
    // (nextHopOf gives "sips:"), and the INVITE goes back over it.
    f.proto = "tls";
  } else if (requestUri.find("transport=tcp") != std::string::npos) {
    f.proto = "tcp";
  }
  ForkAttempt attempt;
  attempt.target = requestUri;
  attempt.trunk = f.trunk;
  call.record.forks.push_back(attempt);
  f.record = call.record.forks.size() - 1;

  std::string callerUser = target.caller_id().empty() ? call.callerUser : target.caller_id();
  std::string display = target.caller_display_name().empty() ? call.callerDisplay
                                                            : target.caller_display_name();
  std::string fromHost = side == Side::Trunk ? d_.contacts.hostOf(Side::Trunk, f.proto)
                                             : d_.config.domain;
  // RFC 3325 7: a caller who asked for Privacy: id is anonymous to every fork; only a
  // trusted trunk learns who it is, from the P-Asserted-Identity below.
  std::string from = call.privacyId
                         ? std::string(kAnonymousFrom)
                         : (display.empty() ? std::string() : quoteDisplay(display) + " ") +
                               "<sip:" + escapeUser(callerUser) + "@" + fromHost + ">";
  std::string callId = randomToken(24) + "@" + d_.config.domain;
  f.callId = callId;
  // A transfer target that replaces the caller gets leg A's callback (its requests are
  // the caller's from now on); every other fork is a leg B.
  f.leg = transfer == 1
              ? nta_leg_tcreate(d_.agent, &B2bua::aLegCallback, reinterpret_cast<nta_leg_magic_t*>(&call),
                                SIPTAG_CALL_ID_STR(callId.c_str()), SIPTAG_FROM_STR(from.c_str()),
                                SIPTAG_TO_STR(toUri.c_str()), TAG_END())
              : nta_leg_tcreate(d_.agent, &B2bua::bLegCallback, reinterpret_cast<nta_leg_magic_t*>(&f),
                                SIPTAG_CALL_ID_STR(callId.c_str()), SIPTAG_FROM_STR(from.c_str()),
                                SIPTAG_TO_STR(toUri.c_str()), TAG_END());
  if (f.leg) nta_leg_tag(f.leg, nullptr);
  f.contact = d_.contacts.contact(side, f.proto, "medius");
  // RFC 3325: a trusted trunk learns who the authenticated caller is (the PSTN shows and
  // bills that number; with Privacy: id it withholds it from the called party); nobody
  // else gets a P-Asserted-Identity from us, and none a client sent ever reaches a fork
  // (legs share no headers).
  if (call.authenticated && !f.trunk.empty() && trunks_ && trunks_->trusted(f.trunk)) {
    f.assertedIdentity = assertedIdentityValue(display, callerUser, fromHost);
  }
  for (const auto& p : path) f.route += (f.route.empty() ? "" : ", ") + p;
  f.nextHop = nextHop;
  if (sdp) {
    f.offer = *sdp;
  } else {
    // The offer made for this target's media policy (the first one when the worker made
    // fewer than asked).
    f.offerId = offerIndexFor(call.offerPolicies, targetLegParams(target, d_.config.internalSrtp,
                                                                  d_.config.internalCodecs));
    if (f.offerId >= call.offersToB.size()) f.offerId = 0;
    f.offer = call.offersToB.empty() ? std::string() : call.offersToB[f.offerId];
  }
  f.sessionExpires = static_cast<std::uint32_t>(d_.config.sessionExpiresS);
  f.minSe = static_cast<std::uint32_t>(d_.config.minSeS);
  if (f.leg) sendInvite(f);
  if (!f.trunk.empty()) d_.metrics.countTrunkAttempt(f.trunk);
  if (!f.orq) {
    log::get("call")->warn("call {}: cannot send INVITE to {}", call.id, requestUri);
    f.final = true;
    f.status = 503;
    call.record.forks[f.record].status = 503;
    call.record.forks[f.record].reason = "cannot send";
    if (!transfer) call.failures.push_back(503);
    if (!f.trunk.empty()) d_.metrics.countTrunkFailure(f.trunk);
    call.forks.push_back(std::move(fork));
    return nullptr;
  }
  if (!f.trunk.empty()) {
    d_.directory.addTrunkCall(f.trunk);
    d_.metrics.setTrunkActiveCalls(f.trunk, d_.directory.trunkCalls(f.trunk));
    f.counted = true;
  }
  log::get("call")->info("call {}: INVITE -> {}{}{} (Call-ID {})", call.id, requestUri,
                         f.trunk.empty() ? "" : " trunk ", f.trunk, callId);
  call.forks.push_back(std::move(fork));
  publish(call);
  return &f;
}

bool B2bua::sendInvite(Fork& f) {
  std::string maxForwards = std::to_string(f.call->maxForwards);
  std::string sessionExpires = std::to_string(f.sessionExpires);
  std::string minSe = std::to_string(f.minSe);
  // With the caller's Privacy: id, the trusted trunk is told to withhold the identity.
  std::string assertedHeader = "P-Asserted-Identity: " + f.assertedIdentity +
                               (f.call->privacyId ? "\r\nPrivacy: id" : "");
  url_string_t const* hop = f.nextHop.empty() ? nullptr : URL_STRING_MAKE(f.nextHop.c_str());
  f.orq = nta_outgoing_tcreate(
      f.leg, &B2bua::forkResponse, reinterpret_cast<nta_outgoing_magic_t*>(&f), hop,
      SIP_METHOD_INVITE, URL_STRING_MAKE(f.requestUri.c_str()),
      SIPTAG_CONTACT_STR(f.contact.c_str()), SIPTAG_MAX_FORWARDS_STR(maxForwards.c_str()),
      SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()), SIPTAG_ALLOW_STR(kAllow),
      SIPTAG_SUPPORTED_STR(d_.config.rel100 ? "timer, 100rel" : "timer"),
      SIPTAG_SESSION_EXPIRES_STR(sessionExpires.c_str()), SIPTAG_MIN_SE_STR(minSe.c_str()),
      TAG_IF(!f.route.empty(), SIPTAG_ROUTE_STR(f.route.c_str())),
      TAG_IF(!f.assertedIdentity.empty(), SIPTAG_HEADER_STR(assertedHeader.c_str())),
      SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(f.offer.c_str()),
      TPTAG_IDENT(identOf(f.side)), TAG_END());
  return f.orq != nullptr;
}

int B2bua::forkResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip) noexcept {
  auto* fork = reinterpret_cast<Fork*>(magic);
  try {
    fork->b2bua->onForkResponse(*fork, orq, sip);
  } catch (const std::exception& e) {
    log::get("call")->error("response handling failed: {}", e.what());
  }
  return 0;
}

void B2bua::onForkResponse(Fork& fork, nta_outgoing_t* orq, const sip_t* sip) {
  Call& call = *fork.call;
  int status = sip && sip->sip_status ? static_cast<int>(sip->sip_status->st_status)
                                      : nta_outgoing_status(orq);
  bool local = !sip || (sip->sip_flags & kNtaInternalMsg) != 0;
  if (fork.final) {
    // A 2xx after a final (a retransmission nta did not absorb, or a 2xx racing a 487).
    return;
  }
  if (status < 200) {
    if (status > 100 && sip && sip->sip_rseq && !fork.cancelled) prack(fork, orq, sip);
    if (status > 100 && !fork.transfer) onProvisional(fork, sip, status);
    return;
  }
  if (status == 422 && sip && sip->sip_min_se && !fork.retried422 && !fork.cancelled &&
      !fork.timedOut && call.state == Call::State::Calling &&
      sip->sip_min_se->min_delta > fork.sessionExpires && sip->sip_min_se->min_delta <= 86400) {
    // RFC 4028 8.1: the called side wants a longer interval; ask again with its Min-SE,
    // in the same dialog (nta takes the next CSeq). Only once per fork.
    fork.retried422 = true;
    fork.sessionExpires = static_cast<std::uint32_t>(sip->sip_min_se->min_delta);
    fork.minSe = fork.sessionExpires;
    log::get("call")->info("call {}: 422 from {}: INVITE again with Session-Expires {}",
                           call.id, fork.requestUri, fork.sessionExpires);
    nta_outgoing_t* old = fork.orq;
    if (sendInvite(fork)) {
      nta_outgoing_destroy(old);
      return;
    }
    fork.orq = old;  // could not resend: the 422 is this fork's answer
  }
  fork.final = true;
  fork.status = status;
  if (fork.counted) {
    d_.directory.removeTrunkCall(fork.trunk);
    d_.metrics.setTrunkActiveCalls(fork.trunk, d_.directory.trunkCalls(fork.trunk));
    fork.counted = false;
  }
  std::string finalPhrase = sip && sip->sip_status && sip->sip_status->st_phrase
                                ? sip->sip_status->st_phrase
                                : statusPhrase(status);
  if (fork.transfer && status >= 300) {
    onTransferResponse(fork, status, finalPhrase, sip);
    return;
  }
  if (status < 300) {
    if (sip && sip->sip_to && sip->sip_to->a_tag) nta_leg_rtag(fork.leg, sip->sip_to->a_tag);
    if (sip) {
      su_home_t home[1] = {SU_HOME_INIT(home)};
      nta_leg_client_reroute(fork.leg, sip->sip_record_route,
                             sip->sip_record_route ? sip->sip_contact
                                                   : contactAtFlow(home, sip->sip_contact, fork.flow),
                             1);
      su_home_deinit(home);
    }
    // ACK at once: each leg is its own dialog (the caller's ACK is not waited for).
    fork.ack = nta_outgoing_tcreate(fork.leg, nullptr, nullptr, nullptr, SIP_METHOD_ACK, nullptr,
                                    SIPTAG_CSEQ(sip ? sip->sip_cseq : nullptr),
                                    SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()),
                                    TPTAG_IDENT(identOf(fork.side)), TAG_END());
    if (fork.transfer) {
      onTransferResponse(fork, status, finalPhrase, sip);
      return;
    }
    if (call.winner || call.state != Call::State::Calling) {
      // A second 2xx (or one after the caller gave up): ACK and BYE it.
      log::get("call")->info("call {}: late 2xx from {}: ACK and BYE", call.id, fork.requestUri);
      call.record.forks[fork.record].status = status;
      call.record.forks[fork.record].reason = "answered late, released";
      nta_outgoing_t* bye = nta_outgoing_tcreate(
          fork.leg, nullptr, nullptr, nullptr, SIP_METHOD_BYE, nullptr,
          SIPTAG_REASON_STR(call.winner ? kCompletedElsewhere : kRequestTerminated),
          SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()), TPTAG_IDENT(identOf(fork.side)),
          TAG_END());
      nta_outgoing_destroy(bye);  // nta finishes it on its own
      if (!call.winner) checkGroup(call);
      return;
    }
    onForkAnswered(fork, sip);
    return;
  }
  std::string phrase = sip && sip->sip_status && sip->sip_status->st_phrase
                           ? sip->sip_status->st_phrase
                           : statusPhrase(status);
  onForkFailed(fork, status, phrase, local);
}

void B2bua::prack(Fork& fork, nta_outgoing_t* orq, const sip_t* sip) {
  if (!hasOption(sip->sip_require, "100rel") || !sip->sip_to || !sip->sip_to->a_tag) return;
  // The early dialog: remote tag, route set and target from this 18x (RFC 3262 4: the
  // PRACK goes in it). nta drops retransmissions of an 18x already PRACKed (RSeq).
  nta_leg_rtag(fork.leg, sip->sip_to->a_tag);
  {
    su_home_t home[1] = {SU_HOME_INIT(home)};
    nta_leg_client_reroute(fork.leg, sip->sip_record_route,
                           sip->sip_record_route ? sip->sip_contact
                                                 : contactAtFlow(home, sip->sip_contact, fork.flow),
                           0);
    su_home_deinit(home);
  }
  nta_outgoing_t* pr = nta_outgoing_prack(
      fork.leg, orq, nullptr, nullptr, nullptr, nullptr, NTATAG_RSEQ(sip->sip_rseq->rs_response),
      SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()), TPTAG_IDENT(identOf(fork.side)),
      TAG_END());
  if (!pr) {
    log::get("call")->warn("call {}: cannot PRACK the {} of {}", fork.call->id,
                           sip->sip_status->st_status, fork.requestUri);
    return;
  }
  nta_outgoing_destroy(pr);  // nta completes it; its answer changes nothing here
}

void B2bua::relayProvisional(Call& call, int status, const std::string& phrase,
                             const std::string& body) {
  if (!call.aIrq || call.aAnswered) return;
  std::string contact = d_.contacts.contact(call.aSide, call.aProto, "medius");
  bool sent = false;
  if (call.aReliable && !body.empty()) {
    // nta adds Require: 100rel and RSeq, answers the PRACK, queues a further reliable 18x
    // until the previous one is PRACKed and holds back our 2xx until early media was
    // PRACKed (RFC 3262 3).
    sent = nta_reliable_treply(call.aIrq, nullptr, nullptr, status, phrase.c_str(),
                               SIPTAG_CONTACT_STR(contact.c_str()),
                               SIPTAG_SERVER_STR(d_.config.userAgent.c_str()),
                               SIPTAG_ALLOW_STR(kAllow), SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                               SIPTAG_PAYLOAD_STR(body.c_str()), TAG_END()) != nullptr;
  }
  if (!sent) {
    nta_incoming_treply(call.aIrq, status, phrase.c_str(), SIPTAG_CONTACT_STR(contact.c_str()),
                        SIPTAG_SERVER_STR(d_.config.userAgent.c_str()), SIPTAG_ALLOW_STR(kAllow),
                        TAG_IF(!body.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
                        TAG_IF(!body.empty(), SIPTAG_PAYLOAD_STR(body.c_str())), TAG_END());
  }
  d_.metrics.countResponse(Method::Invite, status, call.aSide);
  call.relayedProvisional = true;
  if (!call.setupObserved) {
    call.setupObserved = true;
    d_.metrics.observeCallSetup(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - call.started).count());
  }
}

void B2bua::onProvisional(Fork& fork, const sip_t* sip, int status) {
  Call& call = *fork.call;
  if (call.winner || call.state != Call::State::Calling || fork.cancelled) return;
  if (sip->sip_to && sip->sip_to->a_tag) nta_leg_rtag(fork.leg, sip->sip_to->a_tag);
  if (!call.ringing && static_cast<int>(fork.group) == call.group && call.groupTimer) {
    // A target that alerts is alive: the group's (failover) timeout becomes the
    // no-answer timeout.
    call.ringing = true;
    su_timer_set_interval(call.groupTimer, &B2bua::onGroupTimer,
                          reinterpret_cast<su_timer_arg_t*>(&call),
                          static_cast<su_duration_t>(d_.config.noAnswerTimeoutMs));
  }
  call.record.forks[fork.record].reason = std::to_string(status);
  std::string sdp = sdpBody(sip);
  std::string phrase = sip->sip_status->st_phrase ? sip->sip_status->st_phrase : statusPhrase(status);
  if (sdp.empty()) {
    relayProvisional(call, status, phrase, std::string());
    return;
  }
  // Early media: the worker takes this fork's answer (provisional) and gives the SDP for
  // the caller. The last early answer wins; the final answer replaces it.
  updateMedia(call, v1::LEG_B, sdp, true, true,
              [this, status, phrase](Call& c, const grpc::Status& st,
                                     const v1::UpdateSessionResponse& response) {
                if (c.winner || c.state != Call::State::Calling || !c.aIrq || c.aAnswered) return;
                if (!st.ok()) {
                  log::get("call")->warn("call {}: early media refused by the worker: {}", c.id,
                                         st.error_message());
                  return;
                }
                c.lastSdpToA = response.sdp();
                relayProvisional(c, status, phrase, response.sdp());
              },
              fork.offerId);
}

void B2bua::onForkAnswered(Fork& fork, const sip_t* sip) {
  Call& call = *fork.call;
  call.winner = &fork;
  call.state = Call::State::Answering;
  if (call.groupTimer) {
    su_timer_destroy(call.groupTimer);
    call.groupTimer = nullptr;
  }
  call.record.forks[fork.record].status = 200;
  call.record.forks[fork.record].reason = "answered";
  call.record.trunk = fork.trunk;
  call.record.answeredBy = fork.requestUri;
  if (!fork.trunk.empty()) {
    d_.metrics.countTrunkAnswer(fork.trunk);
    d_.directory.addTrunkCall(fork.trunk);
    d_.metrics.setTrunkActiveCalls(fork.trunk, d_.directory.trunkCalls(fork.trunk));
    fork.counted = true;
  }
  cancelForks(call, &fork, kCompletedElsewhere);
  log::get("call")->info("call {}: answered by {}", call.id, fork.requestUri);
  call.stB.peerAllowsUpdate = hasOption(reinterpret_cast<const msg_list_t*>(sip->sip_allow), "UPDATE");
  if (const sip_session_expires_t* se = sip->sip_session_expires) {
    // We are the UAC of this leg: refresher=uac (or none named) means us.
    call.stB.interval = static_cast<std::uint32_t>(se->x_delta);
    call.stB.weRefresh = !(se->x_refresher && strcasecmp(se->x_refresher, "uas") == 0);
  }
  std::string sdp = sdpBody(sip);
  if (sdp.empty()) {
    // No answer SDP in the 2xx: without one the media cannot be anchored.
    log::get("call")->warn("call {}: 2xx from {} has no SDP", call.id, fork.requestUri);
    SipReply r;
    r.status = 502;
    r.phrase = "Bad Gateway: Answer Without SDP";
    respondA(call, r);
    hangUp(call, "failed", "SIP;cause=488;text=\"No SDP answer\"", false, true);
    return;
  }
  // Leg B goes on from the offer this fork got (an offerless re-INVITE is answered with it).
  call.lastSdpToB = fork.offer;
  updateMedia(call, v1::LEG_B, sdp, true, false,
              [this](Call& now, const grpc::Status& st,
                      const v1::UpdateSessionResponse& response) {
                B2bua& b = *this;
                Call* c = &now;
                const std::string& id = c->id;
                (void)id;
                if (c->state != Call::State::Answering) return;
          if (!st.ok()) {
            log::get("call")->warn("call {}: the worker refused the answer: {}", id,
                                   st.error_message());
            if (st.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
              // The answer does not fit the caller's side (no common codec, no SRTP key
              // where it is required): 488 to the caller, the answered leg released.
              SipReply r;
              r.status = 488;
              r.phrase = "Not Acceptable Here";
              r.headers.emplace_back("Warning", "399 medius \"" +
                                                    sanitizeHeaderValue(st.error_message()) + "\"");
              b.respondA(*c, r);
              b.hangUp(*c, "failed", "SIP;cause=488;text=\"Not acceptable\"", false, true);
            } else {
              b.respondA(*c, dependencyFailureReply("Media", st, b.d_.config.retryAfterSeconds));
              b.hangUp(*c, "failed", "SIP;cause=500;text=\"Media failure\"", false, true);
            }
            return;
          }
          b.answerCaller(*c, response.sdp());
              },
              fork.offerId);
}

void B2bua::answerCaller(Call& call, const std::string& sdp) {
  if (!call.aIrq || call.aAnswered) return;
  call.lastSdpToA = sdp;
  std::string contact = d_.contacts.contact(call.aSide, call.aProto, "medius");
  std::string timer = sessionHeaders(call.stA);
  nta_incoming_treply(call.aIrq, SIP_200_OK, SIPTAG_CONTACT_STR(contact.c_str()),
                      SIPTAG_SERVER_STR(d_.config.userAgent.c_str()), SIPTAG_ALLOW_STR(kAllow),
                      SIPTAG_SUPPORTED_STR("timer"),
                      TAG_IF(!timer.empty(), SIPTAG_HEADER_STR(timer.c_str())),
                      SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp.c_str()),
                      TAG_END());
  armSessionTimer(call.stA);
  armSessionTimer(call.stB);
  d_.metrics.countResponse(Method::Invite, 200, call.aSide);
  call.aAnswered = true;
  call.state = Call::State::Confirmed;
  call.record.answeredAtMs = nowMs();
  if (!call.setupObserved) {
    call.setupObserved = true;
    d_.metrics.observeCallSetup(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - call.started).count());
  }
  publish(call);
}

void B2bua::onForkFailed(Fork& fork, int status, const std::string& phrase, bool local) {
  Call& call = *fork.call;
  auto& rec = call.record.forks[fork.record];
  rec.status = status;
  if (fork.timedOut) {
    rec.reason = "timeout";
  } else if (fork.cancelled) {
    rec.reason = "cancelled";
  } else {
    rec.reason = std::to_string(status) + " " + phrase + (local ? " (local)" : "");
  }
  if (!fork.trunk.empty() && !fork.cancelled) d_.metrics.countTrunkFailure(fork.trunk);
  log::get("call")->info("call {}: {} from {}{}", call.id, rec.reason, fork.requestUri,
                         fork.cancelled ? " (cancelled)" : "");
  if (fork.cancelled) {  // by us: another fork won, the caller gave up, or the group timed out
    checkGroup(call);
    return;
  }
  if (static_cast<int>(fork.group) != call.group) return;  // an old group's straggler
  call.failures.push_back(fork.timedOut ? 408 : status);
  ForkOutcome outcome;
  outcome.status = fork.timedOut ? 408 : status;
  outcome.local = local;
  outcome.timedOut = fork.timedOut;
  outcome.trunk = !fork.trunk.empty();
  outcome.failoverCodes = fork.failoverCodes;
  if (!failoverAllowed(outcome)) call.failoverBlocked = true;
  if (status >= 600 && call.state == Call::State::Calling) {
    // A global failure: stop every fork of the call (RFC 3261 16.7 step 5).
    cancelForks(call, &fork, nullptr);
  }
  checkGroup(call);
}

void B2bua::checkGroup(Call& call) {
  if (call.finished) return;
  bool allFinal = call.pendingLookups == 0;
  for (const auto& f : call.forks) {
    if (!f->final && !f->timedOut) allFinal = false;
  }
  if (call.state == Call::State::Ending) {
    if (allFinal) finish(call, call.record.endCause, call.record.finalStatus);
    return;
  }
  if (call.state != Call::State::Calling || !allFinal) return;
  bool last = call.group + 1 >= call.plan.groups_size();
  if (!last && !call.relayedProvisional && !call.failoverBlocked) {
    log::get("call")->info("call {}: group {} failed, trying the next", call.id, call.group);
    startGroup(call);
    return;
  }
  int status = bestFailure(call.failures);
  SipReply r;
  r.status = status;
  r.phrase = statusPhrase(status);
  respondA(call, r);
  bool timedOut = false;
  for (const auto& f : call.forks) timedOut = timedOut || f->timedOut;
  finish(call, status == 408 && timedOut ? "no-answer" : "failed", status);
}

void B2bua::cancelFork(Fork& fork, const char* reason) {
  if (fork.final || fork.cancelled || !fork.orq) return;
  fork.cancelled = true;
  // No provisional yet: RFC 3261 9.1 forbids a CANCEL; end the transaction locally.
  bool heard = nta_outgoing_status(fork.orq) >= 100;
  fork.cancel = nta_outgoing_tcancel(fork.orq, nullptr, nullptr,
                                     TAG_IF(reason != nullptr, SIPTAG_REASON_STR(reason)),
                                     TAG_IF(!heard, NTATAG_CANCEL_408(1)),
                                     SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()), TAG_END());
}

void B2bua::cancelForks(Call& call, const Fork* except, const char* reason) {
  for (auto& f : call.forks) {
    if (f.get() != except) cancelFork(*f, reason);
  }
}

void B2bua::onGroupTimer(su_root_magic_t*, su_timer_t* timer, su_timer_arg_t* arg) noexcept {
  auto* call = reinterpret_cast<Call*>(arg);
  B2bua* self = call->b2bua;
  if (call->groupTimer != timer || call->finished) return;
  su_timer_destroy(call->groupTimer);
  call->groupTimer = nullptr;
  if (call->state == Call::State::Ending) {
    // A fork never answered our CANCEL (RFC 3261 9.1: give up after 64*T1).
    log::get("call")->warn("call {}: forks did not answer CANCEL; ending", call->id);
    self->finish(*call, call->record.endCause, call->record.finalStatus);
    return;
  }
  if (call->state != Call::State::Calling) return;
  log::get("call")->info("call {}: group {} timed out", call->id, call->group);
  for (auto& f : call->forks) {
    if (!f->final && !f->cancelled && static_cast<int>(f->group) == call->group) {
      f->timedOut = true;
      self->cancelFork(*f, nullptr);
      call->record.forks[f->record].reason = "timeout";
      call->record.forks[f->record].status = 408;
      call->failures.push_back(408);
    }
  }
  self->checkGroup(*call);
}


// ---------------------------------------------------------------------------------------
// The caller's INVITE transaction: CANCEL, and the ACK of our 2xx.

int B2bua::inviteIrqCallback(nta_incoming_magic_t* magic, nta_incoming_t*, const sip_t* sip) noexcept {
  auto* call = reinterpret_cast<Call*>(magic);
  if (call->finished) return 0;
  if (!sip) {
    // nta gave up on a reliable 18x the caller never PRACKed (timer P2, RFC 3262 3); it
    // answers the INVITE 503 itself after this. Whatever was reached on leg B goes.
    try {
      log::get("call")->info("call {}: no PRACK from the caller; ending", call->id);
      call->aAnswered = true;
      call->record.finalStatus = 503;
      call->b2bua->d_.metrics.countResponse(Method::Invite, 503, call->aSide);
      call->b2bua->hangUp(*call, "failed", "SIP;cause=503;text=\"No PRACK\"", false, true);
    } catch (const std::exception& e) {
      log::get("call")->error("PRACK timeout handling failed: {}", e.what());
    }
    return 0;
  }
  if (!sip->sip_request) return 0;
  try {
    if (sip->sip_request->rq_method == sip_method_cancel) {
      call->b2bua->onCallerCancel(*call, sip);
    } else if (sip->sip_request->rq_method == sip_method_ack) {
      log::get("call")->debug("call {}: ACK from the caller", call->id);
    }
  } catch (const std::exception& e) {
    log::get("call")->error("CANCEL handling failed: {}", e.what());
  }
  return 0;
}

void B2bua::onCallerCancel(Call& call, const sip_t* sip) {
  d_.metrics.countRequest(Method::Cancel, call.aSide);
  log::get("call")->info("call {}: CANCEL from the caller", call.id);
  // nta answers the CANCEL with 200 and the INVITE with 487 when we return.
  call.aAnswered = true;
  d_.metrics.countResponse(Method::Invite, 487, call.aSide);
  std::string reason = sip->sip_reason ? headerValue(sip, reinterpret_cast<const sip_header_t*>(sip->sip_reason))
                                       : std::string(kRequestTerminated);
  hangUp(call, "caller-cancel", reason.c_str(), false, true);
  call.record.finalStatus = 487;
}

// ---------------------------------------------------------------------------------------
// In-dialog requests

int B2bua::aLegCallback(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq,
                        const sip_t* sip) noexcept {
  auto* call = reinterpret_cast<Call*>(magic);
  try {
    call->b2bua->onDialogRequest(*call, true, irq, sip);
  } catch (const std::exception& e) {
    log::get("call")->error("in-dialog request failed: {}", e.what());
    return 500;
  }
  return 0;
}

int B2bua::bLegCallback(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq,
                        const sip_t* sip) noexcept {
  auto* fork = reinterpret_cast<Fork*>(magic);
  try {
    if (fork->call->winner != fork) {
      // A request on a fork that lost (e.g. its BYE after our CANCEL crossed its 2xx).
      Side side = fork->side;
      fork->b2bua->d_.metrics.countRequest(methodFromName(sip->sip_request->rq_method_name), side);
      if (sip->sip_request->rq_method == sip_method_ack) {
        nta_incoming_destroy(irq);
        return 0;
      }
      int status = sip->sip_request->rq_method == sip_method_bye ? 200 : 481;
      nta_incoming_treply(irq, status, sip_status_phrase(status), TAG_END());
      fork->b2bua->d_.metrics.countResponse(methodFromName(sip->sip_request->rq_method_name), status, side);
      nta_incoming_destroy(irq);
      return 0;
    }
    fork->b2bua->onDialogRequest(*fork->call, false, irq, sip);
  } catch (const std::exception& e) {
    log::get("call")->error("in-dialog request failed: {}", e.what());
    return 500;
  }
  return 0;
}

void B2bua::onDialogRequest(Call& call, bool fromA, nta_incoming_t* irq, const sip_t* sip) {
  Side side = fromA ? call.aSide : (call.winner ? call.winner->side : Side::Trunk);
  sip_method_t method = sip->sip_request->rq_method;
  Method label = methodFromName(sip->sip_request->rq_method_name);
  d_.metrics.countRequest(label, side);
  auto answer = [&](int status, const char* phrase = nullptr) {
    nta_incoming_treply(irq, status, phrase ? phrase : sip_status_phrase(status),
                        SIPTAG_SERVER_STR(d_.config.userAgent.c_str()), TAG_END());
    d_.metrics.countResponse(label, status, side);
    nta_incoming_destroy(irq);
  };
  if (method == sip_method_ack) {
    nta_incoming_destroy(irq);
    return;
  }
  if (call.finished || call.state == Call::State::Ending) {
    answer(method == sip_method_bye ? 200 : 481);
    return;
  }
  switch (method) {
    case sip_method_bye: {
      answer(200);
      if (call.transfer.active && fromA == call.transfer.fromA) {
        // The transferor hangs up after its REFER (usual for a blind transfer): the call
        // goes on with the party it transferred.
        log::get("call")->info("call {}: the transferor hung up; the transfer goes on", call.id);
        call.transfer.transferorGone = true;
        return;
      }
      std::string reason = sip->sip_reason ? headerValue(sip, reinterpret_cast<const sip_header_t*>(sip->sip_reason)) : std::string();
      log::get("call")->info("call {}: BYE from the {}", call.id, fromA ? "caller" : "callee");
      if (fromA && call.state != Call::State::Confirmed) {
        // A BYE before our 2xx reached the caller: treat as a CANCEL (RFC 3261 15).
        SipReply r;
        r.status = 487;
        r.phrase = "Request Terminated";
        respondA(call, r);
      }
      hangUp(call, fromA ? "caller-bye" : "callee-bye", reason.empty() ? nullptr : reason.c_str(),
             !fromA, fromA);
      return;
    }
    case sip_method_invite:
      if (call.state != Call::State::Confirmed) {
        answer(491, "Request Pending");
        return;
      }
      onReinvite(call, fromA, irq, sip);
      return;
    case sip_method_update:
      if (call.state != Call::State::Confirmed) {
        // Early-dialog UPDATE needs PRACK support on both legs (not yet).
        answer(501);
        return;
      }
      onReinvite(call, fromA, irq, sip);
      return;
    case sip_method_options:
      answer(200);
      return;
    case sip_method_refer:
      onRefer(call, fromA, irq, sip);
      return;
    case sip_method_prack:
      // nta answers the PRACKs of our reliable 18x itself; one that matches none gets 481
      // (RFC 3262 3).
      answer(481);
      return;
    case sip_method_info:
    case sip_method_notify:
    case sip_method_message:
    default:
      answer(501);
      return;
  }
}

void B2bua::onReinvite(Call& call, bool fromA, nta_incoming_t* irq, const sip_t* sip) {
  Side side = fromA ? call.aSide : call.winner->side;
  bool update = sip->sip_request->rq_method == sip_method_update;
  Method label = update ? Method::Update : Method::Invite;
  if (call.relay.active) {
    // RFC 3261 14.2: a re-INVITE while another is in progress on the dialog.
    nta_incoming_treply(irq, 491, "Request Pending", SIPTAG_RETRY_AFTER_STR("1"),
                        SIPTAG_SERVER_STR(d_.config.userAgent.c_str()), TAG_END());
    d_.metrics.countResponse(label, 491, side);
    nta_incoming_destroy(irq);
    return;
  }
  SessionTimer& sessionTimer = fromA ? call.stA : call.stB;
  if (sessionTimer.interval > 0) {
    // A refresh from this leg's peer (any re-INVITE/UPDATE restarts the interval).
    if (const sip_session_expires_t* se = sip->sip_session_expires;
        se && se->x_delta >= static_cast<unsigned long>(d_.config.minSeS)) {
      sessionTimer.interval = static_cast<std::uint32_t>(se->x_delta);
      sessionTimer.weRefresh = se->x_refresher && strcasecmp(se->x_refresher, "uas") == 0;
    }
    armSessionTimer(sessionTimer);
  }
  std::string timerHeaders = sessionHeaders(sessionTimer);
  if (sip->sip_contact) {
    su_home_t home[1] = {SU_HOME_INIT(home)};
    if (fromA) {
      nta_leg_server_route(call.aLeg, nullptr, contactAtFlow(home, sip->sip_contact, call.aFlow));
    } else {
      nta_leg_server_route(call.winner->leg, nullptr,
                           contactAtFlow(home, sip->sip_contact, call.winner->flow));
    }
    su_home_deinit(home);
  }
  std::string sdp = sdpBody(sip);
  std::string contact = fromA ? d_.contacts.contact(call.aSide, call.aProto, "medius")
                              : d_.contacts.contact(call.winner->side, call.winner->proto, "medius");
  if (sdp.empty()) {
    // An offerless re-INVITE (session refresh): answer with the SDP this side last got.
    const std::string& last = fromA ? call.lastSdpToA : call.lastSdpToB;
    nta_incoming_treply(irq, SIP_200_OK, SIPTAG_CONTACT_STR(contact.c_str()),
                        SIPTAG_SERVER_STR(d_.config.userAgent.c_str()), SIPTAG_ALLOW_STR(kAllow),
                        TAG_IF(!timerHeaders.empty(), SIPTAG_HEADER_STR(timerHeaders.c_str())),
                        TAG_IF(!last.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
                        TAG_IF(!last.empty(), SIPTAG_PAYLOAD_STR(last.c_str())), TAG_END());
    d_.metrics.countResponse(label, 200, side);
    nta_incoming_destroy(irq);
    return;
  }
  call.relay.active = true;
  call.relay.fromA = fromA;
  call.relay.update = update;
  call.relay.irq = irq;
  log::get("call")->info("call {}: {} from the {}", call.id, update ? "UPDATE" : "re-INVITE",
                         fromA ? "caller" : "callee");
  updateMedia(call, fromA ? v1::LEG_A : v1::LEG_B, sdp, false, false,
              [this](Call& now, const grpc::Status& st,
                      const v1::UpdateSessionResponse& response) {
                B2bua& b = *this;
                Call* c = &now;
                const std::string& id = c->id;
                (void)id;
                if (!c->relay.active || c->relay.tx != 0) return;
      Side fromSide = c->relay.fromA ? c->aSide : c->winner->side;
      if (!st.ok()) {
        int status = st.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? 488 : 500;
        nta_incoming_treply(c->relay.irq, status, sip_status_phrase(status),
                            SIPTAG_SERVER_STR(b.d_.config.userAgent.c_str()), TAG_END());
        b.d_.metrics.countResponse(c->relay.update ? Method::Update : Method::Invite, status, fromSide);
        nta_incoming_destroy(c->relay.irq);
        c->relay = {};
        return;
      }
      // Relay the offer to the other side in a re-INVITE of our own.
      bool toA = !c->relay.fromA;
      nta_leg_t* leg = toA ? c->aLeg : c->winner->leg;
      Side toSide = toA ? c->aSide : c->winner->side;
      std::string proto = toA ? c->aProto : c->winner->proto;
      std::string towardContact = b.d_.contacts.contact(toSide, proto, "medius");
      auto tx = b.newTx(id, c->relay.update ? DialogTx::Kind::Update : DialogTx::Kind::Reinvite, toA, leg);
      if (toA) c->lastSdpToA = response.sdp(); else c->lastSdpToB = response.sdp();
      tx->orq = nta_outgoing_tcreate(
          leg, &B2bua::dialogResponse, reinterpret_cast<nta_outgoing_magic_t*>(tx.get()), nullptr,
          c->relay.update ? sip_method_update : sip_method_invite,
          c->relay.update ? "UPDATE" : "INVITE", nullptr, SIPTAG_CONTACT_STR(towardContact.c_str()),
          SIPTAG_USER_AGENT_STR(b.d_.config.userAgent.c_str()), SIPTAG_ALLOW_STR(kAllow),
          SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(response.sdp().c_str()),
          TPTAG_IDENT(identOf(toSide)), TAG_END());
      if (!tx->orq) {
        nta_incoming_treply(c->relay.irq, SIP_500_INTERNAL_SERVER_ERROR,
                            SIPTAG_SERVER_STR(b.d_.config.userAgent.c_str()), TAG_END());
        b.d_.metrics.countResponse(c->relay.update ? Method::Update : Method::Invite, 500, fromSide);
        nta_incoming_destroy(c->relay.irq);
        c->relay = {};
        return;
      }
      c->relay.tx = tx->id;
      c->txs.push_back(tx->id);
      b.dialogTx_.emplace(tx->id, std::move(tx));
              });
}

int B2bua::dialogResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip) noexcept {
  auto* tx = reinterpret_cast<DialogTx*>(magic);
  try {
    tx->b2bua->onDialogResponse(tx->id, orq, sip);
  } catch (const std::exception& e) {
    log::get("call")->error("in-dialog response handling failed: {}", e.what());
  }
  return 0;
}

void B2bua::onDialogResponse(std::uint64_t txId, nta_outgoing_t* orq, const sip_t* sip) {
  auto it = dialogTx_.find(txId);
  if (it == dialogTx_.end()) return;
  DialogTx& tx = *it->second;
  int status = sip && sip->sip_status ? static_cast<int>(sip->sip_status->st_status)
                                      : nta_outgoing_status(orq);
  if (status < 200) return;
  Call* found = find(tx.callId);
  if (tx.kind == DialogTx::Kind::Bye) {
    log::get("call")->debug("call {}: {} to our BYE", tx.callId, status);
    return;  // the call ended already; the orq goes with the call
  }
  if (tx.kind == DialogTx::Kind::Notify) return;
  if (tx.kind == DialogTx::Kind::Rebridge) {
    // The re-INVITE that gave the remaining party the transfer target's media.
    if (status == 491 && found && found->state == Call::State::Confirmed) {
      bool toA = tx.toA;
      std::string id = found->id;
      retryAfterGlare(*found, toA, [this, id, toA] {
        Call* c = find(id);
        if (c && c->state == Call::State::Confirmed) {
          sendRebridge(*c, toA, toA ? c->lastSdpToA : c->lastSdpToB);
        }
      });
      return;
    }
    if (status < 300) {
      ackInDialog(tx.leg, sip);
      std::string sdp = sdpBody(sip);
      if (found && !sdp.empty()) {
        v1::UpdateSessionRequest request;
        request.set_session_id(found->id);
        request.set_from_leg(tx.toA ? v1::LEG_A : v1::LEG_B);
        request.set_sdp(sdp);
        request.set_is_answer(true);
        std::string id = found->id;
        d_.media.updateAsync(found->mediaWorker, std::move(request),
                             [id](const grpc::Status& st, v1::UpdateSessionResponse) {
                               if (!st.ok()) {
                                 log::get("call")->warn("call {}: media refused the re-bridge answer: {}",
                                                        id, st.error_message());
                               }
                             });
      }
    }
    return;
  }
  if (tx.kind == DialogTx::Kind::Refresh) {
    if (status < 300 && nta_outgoing_method(orq) == sip_method_invite) {
      ackInDialog(tx.leg, sip);
    }
    if (!found) return;
    SessionTimer& st = tx.toA ? found->stA : found->stB;
    if (status == 491 && found->state == Call::State::Confirmed) {
      // Glare with a re-INVITE/UPDATE from that side: refresh again a little later.
      bool toA = tx.toA;
      std::string id = found->id;
      retryAfterGlare(*found, toA, [this, id, toA] {
        Call* c = find(id);
        if (c && c->state == Call::State::Confirmed) sendRefresh(*c, toA);
      });
      return;
    }
    if (status == 481 || status == 408) {
      // RFC 4028 10: the session is gone on that side.
      log::get("call")->info("call {}: session refresh got {}; ending", found->id, status);
      found->record.endCause = "session-expired";
      hangUp(*found, "session-expired", "SIP;cause=408;text=\"Session refresh failed\"",
             !tx.toA, tx.toA);
      return;
    }
    if (status < 300 && sip && sip->sip_session_expires) {
      st.interval = static_cast<std::uint32_t>(sip->sip_session_expires->x_delta);
    }
    armSessionTimer(st);
    return;
  }
  // re-INVITE or UPDATE answered by the other side.
  if (status < 300 && tx.kind == DialogTx::Kind::Reinvite) {
    ackInDialog(tx.leg, sip);
  }
  if (!found || !found->relay.active || found->relay.tx != txId) return;
  Call& call = *found;
  Side fromSide = call.relay.fromA ? call.aSide : call.winner->side;
  nta_incoming_t* irq = call.relay.irq;
  std::string phrase = sip && sip->sip_status && sip->sip_status->st_phrase ? sip->sip_status->st_phrase
                                                                            : statusPhrase(status);
  std::string sdp = status < 300 ? sdpBody(sip) : std::string();
  if (status >= 300 || sdp.empty()) {
    // Refused (or answered without SDP): relay the status; the media keeps what it had
    // for the offering side.
    int relayed = status >= 300 ? status : 500;
    nta_incoming_treply(irq, relayed, status >= 300 ? phrase.c_str() : "Answer Without SDP",
                        SIPTAG_SERVER_STR(d_.config.userAgent.c_str()), TAG_END());
    d_.metrics.countResponse(call.relay.update ? Method::Update : Method::Invite, relayed, fromSide);
    nta_incoming_destroy(irq);
    call.relay = {};
    return;
  }
  updateMedia(call, call.relay.fromA ? v1::LEG_B : v1::LEG_A, sdp, true, false,
              [this, txId](Call& now, const grpc::Status& st,
                      const v1::UpdateSessionResponse& response) {
                B2bua& b = *this;
                Call* c = &now;
                const std::string& id = c->id;
                (void)id;
                if (!c->relay.active || c->relay.tx != txId) return;
      Side origin = c->relay.fromA ? c->aSide : c->winner->side;
      std::string proto = c->relay.fromA ? c->aProto : c->winner->proto;
      std::string contact = b.d_.contacts.contact(origin, proto, "medius");
      if (!st.ok()) {
        nta_incoming_treply(c->relay.irq, SIP_500_INTERNAL_SERVER_ERROR,
                            SIPTAG_SERVER_STR(b.d_.config.userAgent.c_str()), TAG_END());
        b.d_.metrics.countResponse(c->relay.update ? Method::Update : Method::Invite, 500, origin);
      } else {
        if (c->relay.fromA) c->lastSdpToA = response.sdp(); else c->lastSdpToB = response.sdp();
        std::string timer = sessionHeaders(c->relay.fromA ? c->stA : c->stB);
        nta_incoming_treply(c->relay.irq, SIP_200_OK, SIPTAG_CONTACT_STR(contact.c_str()),
                            SIPTAG_SERVER_STR(b.d_.config.userAgent.c_str()),
                            TAG_IF(!timer.empty(), SIPTAG_HEADER_STR(timer.c_str())),
                            SIPTAG_ALLOW_STR(kAllow), SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                            SIPTAG_PAYLOAD_STR(response.sdp().c_str()), TAG_END());
        b.d_.metrics.countResponse(c->relay.update ? Method::Update : Method::Invite, 200, origin);
      }
      nta_incoming_destroy(c->relay.irq);
      c->relay = {};
              });
}

void B2bua::updateMedia(Call& call, v1::LegId from, const std::string& sdp, bool answer,
                        bool provisional, MediaThen then, std::uint32_t offerId) {
  v1::UpdateSessionRequest request;
  request.set_session_id(call.id);
  request.set_from_leg(from);
  request.set_sdp(sdp);
  request.set_is_answer(answer);
  request.set_provisional(provisional);
  request.set_offer_id(offerId);
  sendMediaUpdate(call, std::move(request), std::move(then));
}

void B2bua::sendMediaUpdate(Call& call, v1::UpdateSessionRequest request, MediaThen then) {
  std::weak_ptr<B2bua*> weak = self_;
  SipLoop* loop = &d_.loop;
  std::string id = call.id;
  d_.media.updateAsync(call.mediaWorker, std::move(request),
                       [weak, loop, id, then = std::move(then)](const grpc::Status& st,
                                                                v1::UpdateSessionResponse response) {
                         loop->post([weak, id, then, st, response = std::move(response)] {
                           auto self = weak.lock();
                           if (!self) return;
                           if (Call* found = (*self)->find(id)) then(*found, st, response);
                         });
                       });
}

std::unique_ptr<B2bua::DialogTx> B2bua::newTx(const std::string& callId, DialogTx::Kind kind,
                                               bool toA, nta_leg_t* leg) {
  auto tx = std::make_unique<DialogTx>();
  tx->b2bua = this;
  tx->id = nextTx_++;
  tx->callId = callId;
  tx->kind = kind;
  tx->toA = toA;
  tx->leg = leg;
  return tx;
}

void B2bua::ackInDialog(nta_leg_t* leg, const sip_t* sip) {
  // The ACK of a 2xx to one of our in-dialog INVITEs (its own transaction, same CSeq).
  nta_outgoing_t* ack = nta_outgoing_tcreate(leg, nullptr, nullptr, nullptr, SIP_METHOD_ACK, nullptr,
                                             SIPTAG_CSEQ(sip ? sip->sip_cseq : nullptr),
                                             SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()),
                                             TAG_END());
  nta_outgoing_destroy(ack);
}

// ---------------------------------------------------------------------------------------
// The end of a call

void B2bua::hangUp(Call& call, const std::string& cause, const char* reason, bool byeA, bool byeB) {
  if (call.finished || call.state == Call::State::Ending) return;
  call.record.endCause = cause;
  if (call.record.finalStatus == 0) call.record.finalStatus = call.state == Call::State::Confirmed ? 200 : 487;
  auto sendBye = [&](nta_leg_t* leg, Side side, bool toA) {
    auto tx = newTx(call.id, DialogTx::Kind::Bye, toA, leg);
    tx->orq = nta_outgoing_tcreate(leg, &B2bua::dialogResponse,
                                   reinterpret_cast<nta_outgoing_magic_t*>(tx.get()), nullptr,
                                   SIP_METHOD_BYE, nullptr,
                                   TAG_IF(reason != nullptr, SIPTAG_REASON_STR(reason)),
                                   SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()),
                                   TPTAG_IDENT(identOf(side)), TAG_END());
    if (tx->orq) {
      call.txs.push_back(tx->id);
      dialogTx_.emplace(tx->id, std::move(tx));
    }
  };
  if (call.relay.active && call.relay.irq) {
    nta_incoming_treply(call.relay.irq, SIP_487_REQUEST_TERMINATED, TAG_END());
    nta_incoming_destroy(call.relay.irq);
    call.relay = {};
  }
  if (byeA && call.aLeg && call.state == Call::State::Confirmed) sendBye(call.aLeg, call.aSide, true);
  if (byeB && call.winner && call.winner->leg) sendBye(call.winner->leg, call.winner->side, false);
  if (!call.aAnswered) {
    SipReply r;
    r.status = 487;
    r.phrase = "Request Terminated";
    respondA(call, r);
  }
  call.state = Call::State::Ending;
  cancelForks(call, nullptr, reason ? reason : kRequestTerminated);
  if (call.groupTimer) su_timer_destroy(call.groupTimer);
  call.groupTimer = su_timer_create(su_root_task(d_.loop.root()), 32000);
  su_timer_set(call.groupTimer, &B2bua::onGroupTimer, reinterpret_cast<su_timer_arg_t*>(&call));
  checkGroup(call);  // finishes now when no fork is still waiting for its 487
}

void B2bua::reject(Call& call, const SipReply& reply, const std::string& cause) {
  respondA(call, reply);
  finish(call, cause, reply.status);
}

void B2bua::finish(Call& call, const std::string& cause, int finalStatus) {
  if (call.finished) return;
  call.finished = true;
  for (SessionTimer* st : {&call.stA, &call.stB}) {
    if (st->timer) su_timer_destroy(st->timer);
    st->timer = nullptr;
  }
  for (auto& g : call.glare) {
    if (g.timer) su_timer_destroy(g.timer);
    g.timer = nullptr;
    g.retry = nullptr;
  }
  if (call.groupTimer) {
    su_timer_destroy(call.groupTimer);
    call.groupTimer = nullptr;
  }
  for (auto& f : call.forks) {
    if (f->counted) {
      d_.directory.removeTrunkCall(f->trunk);
      d_.metrics.setTrunkActiveCalls(f->trunk, d_.directory.trunkCalls(f->trunk));
      f->counted = false;
    }
  }
  if (!call.sourceTrunk.empty()) d_.directory.removeTrunkCall(call.sourceTrunk);
  call.record.endCause = cause;
  call.record.direction = call.direction;
  call.record.finalStatus = call.record.answeredAtMs > 0 ? 200 : finalStatus;
  call.record.endedAtMs = nowMs();
  std::string outcome = call.record.answeredAtMs > 0 ? "answered"
                        : cause == "caller-cancel" ? "cancelled"
                        : cause == "rejected"      ? "rejected"
                                                   : "failed";
  d_.metrics.countCall(call.direction, outcome);
  if (call.mediaSession) {
    // The CDR line waits for the worker's final statistics (loss, jitter, MOS per leg):
    // written from the deletion's completion, which always runs (a failure or the
    // shutdown's cancellation writes the line without them).
    v1::DeleteSessionRequest del;
    del.set_session_id(call.id);
    CdrWriter* cdr = &d_.cdr;
    d_.media.deleteAsync(call.mediaWorker, del,
                         [record = call.record, cdr](const grpc::Status& st,
                                                     v1::SessionStats stats) mutable {
                           if (st.ok()) {
                             record.media = mediaQualityOf(stats);
                           } else if (st.error_code() != grpc::StatusCode::NOT_FOUND) {
                             log::get("call")->warn("call {}: media session not deleted: {}",
                                                    record.id, st.error_message());
                           }
                           cdr->write(record);
                         });
    call.mediaSession = false;
  } else {
    d_.cdr.write(call.record);
  }
  d_.directory.remove(call.id);
  log::get("call")->info("call {}: ended ({}, {})", call.id, cause, call.record.finalStatus);
  if (!call.reapQueued) {
    call.reapQueued = true;
    std::weak_ptr<B2bua*> weak = self_;
    std::string id = call.id;
    d_.loop.post([weak, id] {
      if (auto self = weak.lock()) (*self)->reap(id);
    });
  }
}

void B2bua::reap(const std::string& id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  Call& call = *it->second;
  if (call.groupTimer) su_timer_destroy(call.groupTimer);
  call.groupTimer = nullptr;
  for (auto& g : call.glare) {
    if (g.timer) su_timer_destroy(g.timer);
    g.timer = nullptr;
  }
  for (SessionTimer* st : {&call.stA, &call.stB}) {
    if (st->timer) su_timer_destroy(st->timer);
    st->timer = nullptr;
  }
  for (auto& f : call.forks) {
    if (f->orq && !f->final && !f->cancelled) {
      nta_outgoing_tcancel(f->orq, nullptr, nullptr, SIPTAG_REASON_STR(kShutdown), TAG_END());
    }
    nta_outgoing_destroy(f->orq);
    nta_outgoing_destroy(f->cancel);
    nta_outgoing_destroy(f->ack);
    if (f->leg) nta_leg_destroy(f->leg);
  }
  for (auto tx : call.txs) {
    auto t = dialogTx_.find(tx);
    if (t == dialogTx_.end()) continue;
    nta_outgoing_destroy(t->second->orq);
    dialogTx_.erase(t);
  }
  if (call.relay.irq) nta_incoming_destroy(call.relay.irq);
  if (call.aIrq) nta_incoming_destroy(call.aIrq);
  for (nta_leg_t* leg : call.retiredLegs) nta_leg_destroy(leg);
  bool aLegIsFork = false;
  for (auto& f : call.forks) aLegIsFork = aLegIsFork || f->leg == call.aLeg;
  if (call.aLeg && !aLegIsFork) nta_leg_destroy(call.aLeg);
  calls_.erase(it);
  d_.metrics.setCallsActive(calls_.size());
}

void B2bua::endAll(const std::string& cause) {
  std::vector<std::string> ids;
  for (auto& [id, call] : calls_) {
    if (!call->finished) ids.push_back(id);
  }
  for (const auto& id : ids) {
    Call* call = find(id);
    if (!call) continue;
    if (call->state == Call::State::Routing || call->state == Call::State::Media) {
      SipReply r;
      r.status = 503;
      r.phrase = "Shutting Down";
      r.headers.emplace_back("Retry-After", std::to_string(d_.config.retryAfterSeconds));
      reject(*call, r, cause);
      continue;
    }
    hangUp(*call, cause, kShutdown, true, true);
    finish(*call, cause, call->record.finalStatus);
  }
}

void B2bua::onMediaEvent(const std::string& worker, const v1::MediaEvent& event) {
  if (event.kind() != v1::MediaEvent::KIND_MEDIA_TIMEOUT) return;
  std::weak_ptr<B2bua*> weak = self_;
  std::string id = event.session_id();
  std::string detail = event.detail();
  d_.loop.post([weak, id, worker, detail] {
    auto self = weak.lock();
    if (!self) return;
    Call* call = (*self)->find(id);
    if (!call || call->mediaWorker != worker) return;
    log::get("call")->info("call {}: media timeout ({})", id, detail);
    (*self)->hangUp(*call, "media-timeout", kMediaTimeout, true, true);
  });
}

void B2bua::armSessionTimer(SessionTimer& st) {
  if (st.timer) su_timer_destroy(st.timer);
  st.timer = nullptr;
  if (st.interval == 0 || st.call->finished) return;
  // The refresher refreshes at half the interval; the other side gives up at
  // interval - min(32, interval/3) (RFC 4028 10).
  std::uint64_t ms = st.weRefresh ? st.interval * 500ull
                                  : (st.interval - std::min<std::uint32_t>(32, st.interval / 3)) * 1000ull;
  st.timer = su_timer_create(su_root_task(d_.loop.root()), static_cast<su_duration_t>(std::max<std::uint64_t>(ms, 1)));
  su_timer_set(st.timer, &B2bua::onSessionTimer, reinterpret_cast<su_timer_arg_t*>(&st));
}

void B2bua::onSessionTimer(su_root_magic_t*, su_timer_t* timer, su_timer_arg_t* arg) noexcept {
  auto* st = reinterpret_cast<SessionTimer*>(arg);
  Call* call = st->call;
  if (st->timer != timer || call->finished) return;
  su_timer_destroy(st->timer);
  st->timer = nullptr;
  B2bua* self = call->b2bua;
  try {
    if (call->state != Call::State::Confirmed) return;
    if (!st->weRefresh) {
      log::get("call")->info("call {}: no session refresh from the {} within {} s", call->id,
                             st->aSide ? "caller" : "callee", st->interval);
      self->hangUp(*call, "session-expired", "SIP;cause=408;text=\"Session timer expired\"", true,
                   true);
      return;
    }
    self->sendRefresh(*call, st->aSide);
  } catch (const std::exception& e) {
    log::get("call")->error("session timer handling failed: {}", e.what());
  }
}

void B2bua::sendRefresh(Call& call, bool toA) {
  SessionTimer& st = toA ? call.stA : call.stB;
  if (call.relay.active) {
    armSessionTimer(st);  // the offer/answer in progress refreshes the session anyway
    return;
  }
  nta_leg_t* leg = toA ? call.aLeg : call.winner->leg;
  Side side = toA ? call.aSide : call.winner->side;
  std::string proto = toA ? call.aProto : call.winner->proto;
  std::string contact = d_.contacts.contact(side, proto, "medius");
  std::string se = std::to_string(st.interval) + ";refresher=uac";
  const std::string& sdp = toA ? call.lastSdpToA : call.lastSdpToB;
  bool update = st.peerAllowsUpdate || sdp.empty();
  auto tx = newTx(call.id, DialogTx::Kind::Refresh, toA, leg);
  // UPDATE without a body when the peer allows it (RFC 4028 9); else a re-INVITE with the
  // SDP it already has (no change of media).
  tx->orq = nta_outgoing_tcreate(
      leg, &B2bua::dialogResponse, reinterpret_cast<nta_outgoing_magic_t*>(tx.get()), nullptr,
      update ? sip_method_update : sip_method_invite, update ? "UPDATE" : "INVITE", nullptr,
      SIPTAG_CONTACT_STR(contact.c_str()), SIPTAG_SUPPORTED_STR("timer"),
      SIPTAG_SESSION_EXPIRES_STR(se.c_str()), SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()),
      SIPTAG_ALLOW_STR(kAllow), TAG_IF(!update, SIPTAG_CONTENT_TYPE_STR("application/sdp")),
      TAG_IF(!update, SIPTAG_PAYLOAD_STR(sdp.c_str())), TPTAG_IDENT(identOf(side)), TAG_END());
  if (!tx->orq) {
    armSessionTimer(st);
    return;
  }
  log::get("call")->debug("call {}: session refresh ({}) to the {}", call.id,
                          update ? "UPDATE" : "re-INVITE", toA ? "caller" : "callee");
  call.txs.push_back(tx->id);
  dialogTx_.emplace(tx->id, std::move(tx));
}

// ---------------------------------------------------------------------------------------
// Blind transfer (REFER, RFC 3515): the gateway is the transferee.

void B2bua::onRefer(Call& call, bool fromA, nta_incoming_t* irq, const sip_t* sip) {
  Side side = fromA ? call.aSide : call.winner->side;
  auto answer = [&](int status, const char* phrase) {
    nta_incoming_treply(irq, status, phrase, SIPTAG_SERVER_STR(d_.config.userAgent.c_str()),
                        TAG_END());
    d_.metrics.countResponse(Method::Refer, status, side);
    nta_incoming_destroy(irq);
  };
  if (call.state != Call::State::Confirmed || call.transfer.active || call.relay.active) {
    answer(491, "Request Pending");
    return;
  }
  if (!sip->sip_refer_to || !sip->sip_refer_to->r_url->url_host) {
    answer(400, "Missing Refer-To");
    return;
  }
  if (sip->sip_refer_to->r_url->url_headers &&
      std::strstr(sip->sip_refer_to->r_url->url_headers, "Replaces")) {
    answer(501, "Attended Transfer Not Supported");
    return;
  }
  std::string target = urlText(sip->sip_refer_to->r_url, true);
  answer(202, "Accepted");
  call.transfer = {};
  call.transfer.active = true;
  call.transfer.fromA = fromA;
  log::get("call")->info("call {}: REFER from the {} to {}", call.id, fromA ? "caller" : "callee",
                         target);
  sendNotify(call, 100, "Trying", false);

  // Routed like a new call from the transferor.
  v1::RouteCallRequest request;
  request.set_callee(target);
  request.set_call_id(call.id);
  if (fromA) {
    request.set_caller(call.callerUri);
    if (!call.sourceTrunk.empty()) {
      request.mutable_source()->set_trunk(call.sourceTrunk);
    } else {
      request.mutable_source()->set_internal_user(call.callerUri);
    }
  } else if (!call.winner->trunk.empty()) {
    request.set_caller(call.winner->calledNumber);
    request.mutable_source()->set_trunk(call.winner->trunk);
  } else {
    request.set_caller(call.winner->userAor);
    request.mutable_source()->set_internal_user(call.winner->userAor);
  }
  std::weak_ptr<B2bua*> weak = self_;
  SipLoop* loop = &d_.loop;
  std::string id = call.id;
  d_.routing.routeCallAsync(std::move(request),
                            [weak, loop, id](const grpc::Status& status, v1::RoutePlan plan) {
                              loop->post([weak, id, status, plan = std::move(plan)] {
                                if (auto self = weak.lock()) (*self)->onTransferRoute(id, status, plan);
                              });
                            });
}

void B2bua::onTransferRoute(const std::string& id, const grpc::Status& status,
                            const v1::RoutePlan& plan) {
  Call* found = find(id);
  if (!found || !found->transfer.active || found->state != Call::State::Confirmed) return;
  Call& call = *found;
  if (!status.ok()) {
    transferFailed(call, 503, "Service Unavailable");
    return;
  }
  if (plan.outcome() != v1::RoutePlan::OUTCOME_ROUTED || plan.groups_size() == 0 ||
      plan.groups(0).targets_size() == 0) {
    SipReply r = routeOutcomeReply(plan, d_.config.retryAfterSeconds);
    transferFailed(call, r.status, r.phrase);
    return;
  }
  // The first target of the first group (a blind transfer rings one destination).
  const v1::RouteTarget& target = plan.groups(0).targets(0);
  if (target.has_trunk()) {
    const auto& t = target.trunk();
    std::string to = t.request_uri();
    if (auto semi = to.find(';'); semi != std::string::npos) to.resize(semi);
    offerToTransferTarget(call, target, [this, target, to](Call& now, const std::string& offer) {
      const auto& trunk = target.trunk();
      Fork* f = sendFork(now, target, trunk.request_uri(), "<" + to + ">", nextHopOf(trunk.address()),
                         Side::Trunk, {}, &offer, now.transfer.fromA ? 1 : 2);
      if (!f) {
        transferFailed(now, 503, "Service Unavailable");
        return;
      }
      now.transfer.target = f;
    });
    return;
  }
  v1::LookupRequest lookup;
  lookup.set_aor(target.user_aor());
  std::weak_ptr<B2bua*> weak = self_;
  SipLoop* loop = &d_.loop;
  d_.registrar.lookupAsync(std::move(lookup), [weak, loop, id, target](const grpc::Status& st,
                                                                       v1::LookupResponse response) {
    loop->post([weak, id, target, st, response = std::move(response)] {
      if (auto self = weak.lock()) (*self)->onTransferLookup(id, target, st, response);
    });
  });
}

void B2bua::onTransferLookup(const std::string& id, const v1::RouteTarget& target,
                             const grpc::Status& status, const v1::LookupResponse& response) {
  Call* found = find(id);
  if (!found || !found->transfer.active || found->state != Call::State::Confirmed) return;
  Call& call = *found;
  if (!status.ok() || response.bindings_size() == 0) {
    transferFailed(call, 480, "Temporarily Unavailable");
    return;
  }
  const v1::Binding& binding = response.bindings(0);
  std::string hop;
  if (binding.path_size() == 0 && binding.has_received() && !binding.received().host().empty()) {
    hop = nextHopOf(binding.received());
  }
  std::vector<std::string> path(binding.path().begin(), binding.path().end());
  std::string contact = binding.contact_uri();
  v1::SocketAddress flow = binding.received();
  offerToTransferTarget(call, target, [this, target, contact, hop, path, flow](Call& now, const std::string& offer) {
    Fork* f = sendFork(now, target, contact, "<" + target.user_aor() + ">", hop, Side::Internal, path,
                       &offer, now.transfer.fromA ? 1 : 2);
    if (f && !hop.empty()) f->flow = flow;
    if (!f) {
      transferFailed(now, 503, "Service Unavailable");
      return;
    }
    now.transfer.target = f;
  });
}

void B2bua::offerToTransferTarget(Call& call, const v1::RouteTarget& target,
                                  std::function<void(Call& call, const std::string& offer)> send) {
  v1::UpdateSessionRequest request;
  request.set_session_id(call.id);
  request.set_from_leg(call.transfer.fromA ? v1::LEG_A : v1::LEG_B);
  *request.mutable_new_peer() = targetLegParams(target, d_.config.internalSrtp, d_.config.internalCodecs);
  sendMediaUpdate(call, std::move(request),
                  [this, send = std::move(send)](Call& now, const grpc::Status& st,
                                                 const v1::UpdateSessionResponse& response) {
                    // The transferor may have hung up, or the call ended, meanwhile.
                    if (!now.transfer.active || now.transfer.target || now.state != Call::State::Confirmed) return;
                    if (!st.ok()) {
                      log::get("call")->warn("call {}: no offer for the transfer target: {}", now.id,
                                             st.error_message());
                      transferFailed(now, 500, "Media Failure");
                      return;
                    }
                    send(now, response.sdp());
                  });
}

void B2bua::onTransferResponse(Fork& fork, int status, const std::string& phrase, const sip_t* sip) {
  Call& call = *fork.call;
  auto& rec = call.record.forks[fork.record];
  rec.status = status;
  if (status >= 300) {
    rec.reason = "transfer: " + std::to_string(status) + " " + phrase;
    if (!fork.trunk.empty()) d_.metrics.countTrunkFailure(fork.trunk);
    if (call.transfer.target == &fork) transferFailed(call, status, phrase);
    return;
  }
  // 2xx: onForkResponse has set the remote tag and target and sent the ACK.
  std::string sdp = sdpBody(sip);
  if (call.transfer.target != &fork || call.state != Call::State::Confirmed || sdp.empty()) {
    rec.reason = "transfer: answered, released";
    nta_outgoing_t* bye = nta_outgoing_tcreate(
        fork.leg, nullptr, nullptr, nullptr, SIP_METHOD_BYE, nullptr,
        SIPTAG_REASON_STR(kRequestTerminated), SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()),
        TPTAG_IDENT(identOf(fork.side)), TAG_END());
    nta_outgoing_destroy(bye);
    if (call.transfer.target == &fork) transferFailed(call, 502, "Answer Without SDP");
    return;
  }
  rec.reason = "transfer: answered";
  if (!fork.trunk.empty()) d_.metrics.countTrunkAnswer(fork.trunk);
  if (const sip_session_expires_t* se = sip->sip_session_expires) {
    SessionTimer& st = fork.transfer == 1 ? call.stA : call.stB;
    st.interval = static_cast<std::uint32_t>(se->x_delta);
    st.weRefresh = !(se->x_refresher && strcasecmp(se->x_refresher, "uas") == 0);
    st.requireTimer = false;
  }
  // Point the transferor's media leg at the target.
  std::uint64_t forkId = fork.id;
  updateMedia(call, fork.transfer == 1 ? v1::LEG_A : v1::LEG_B, sdp, true, false,
              [this, forkId](Call& now, const grpc::Status& st,
                      const v1::UpdateSessionResponse& response) {
                B2bua& b = *this;
                Call* c = &now;
                const std::string& id = c->id;
                (void)id;
                if (!c->transfer.active || !c->transfer.target || c->transfer.target->id != forkId) return;
      if (!st.ok()) {
        b.transferFailed(*c, 500, "Media Failure");
        return;
      }
      b.completeTransfer(*c, *c->transfer.target, response.sdp());
              });
}

void B2bua::completeTransfer(Call& call, Fork& fork, const std::string& sdpForOther) {
  bool fromA = call.transfer.fromA;
  sendNotify(call, 200, "OK", true);
  // Release the transferor, then make the target that side of the call.
  nta_leg_t* old = fromA ? call.aLeg : call.winner->leg;
  Side oldSide = fromA ? call.aSide : call.winner->side;
  if (!call.transfer.transferorGone) {
    nta_outgoing_t* bye = nta_outgoing_tcreate(
        old, nullptr, nullptr, nullptr, SIP_METHOD_BYE, nullptr,
        SIPTAG_REASON_STR("SIP;cause=200;text=\"Call transferred\""),
        SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()), TPTAG_IDENT(identOf(oldSide)), TAG_END());
    nta_outgoing_destroy(bye);
  }
  if (fromA) {
    nta_leg_bind(old, &B2bua::retiredLegCallback, reinterpret_cast<nta_leg_magic_t*>(&call));
    call.retiredLegs.push_back(old);
    call.aLeg = fork.leg;
    call.aOwnCallId = true;
    call.aSide = fork.side;
    call.aProto = fork.proto;
    call.aFlow = fork.flow;
    call.aCallId = fork.callId;
  } else {
    if (call.winner->counted) {
      d_.directory.removeTrunkCall(call.winner->trunk);
      d_.metrics.setTrunkActiveCalls(call.winner->trunk, d_.directory.trunkCalls(call.winner->trunk));
      call.winner->counted = false;
    }
    call.winner = &fork;
    if (!fork.trunk.empty()) {
      d_.directory.addTrunkCall(fork.trunk);
      d_.metrics.setTrunkActiveCalls(fork.trunk, d_.directory.trunkCalls(fork.trunk));
      fork.counted = true;
    }
  }
  // What the target got from us (an offer of its own side's policy) is that side's last SDP.
  if (fromA) call.lastSdpToA = fork.offer; else call.lastSdpToB = fork.offer;
  call.record.trunk = fork.trunk.empty() ? call.record.trunk : fork.trunk;
  call.record.answeredBy = fork.requestUri;
  call.transfer = {};
  log::get("call")->info("call {}: transferred to {}", call.id, fork.requestUri);
  armSessionTimer(fromA ? call.stA : call.stB);
  // The remaining party: a re-INVITE with the target's media (takes it off hold).
  sendRebridge(call, !fromA, sdpForOther);
  publish(call);
}

void B2bua::sendRebridge(Call& call, bool toA, const std::string& sdp) {
  nta_leg_t* leg = toA ? call.aLeg : call.winner->leg;
  Side side = toA ? call.aSide : call.winner->side;
  std::string proto = toA ? call.aProto : call.winner->proto;
  std::string contact = d_.contacts.contact(side, proto, "medius");
  auto tx = newTx(call.id, DialogTx::Kind::Rebridge, toA, leg);
  if (toA) call.lastSdpToA = sdp; else call.lastSdpToB = sdp;
  tx->orq = nta_outgoing_tcreate(
      leg, &B2bua::dialogResponse, reinterpret_cast<nta_outgoing_magic_t*>(tx.get()), nullptr,
      SIP_METHOD_INVITE, nullptr, SIPTAG_CONTACT_STR(contact.c_str()),
      SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()), SIPTAG_ALLOW_STR(kAllow),
      SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp.c_str()),
      TPTAG_IDENT(identOf(side)), TAG_END());
  if (tx->orq) {
    call.txs.push_back(tx->id);
    dialogTx_.emplace(tx->id, std::move(tx));
  }
}

void B2bua::retryAfterGlare(Call& call, bool toA, std::function<void()> retry) {
  // RFC 3261 14.1: T in 2.1-4 s (10 ms steps) when we generated the dialog's Call-ID,
  // 0-2 s otherwise, so that the two sides of a glare do not retry in step.
  bool ownCallId = toA ? call.aOwnCallId : true;
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> steps(ownCallId ? 210 : 0, ownCallId ? 400 : 200);
  su_duration_t delay = std::max<su_duration_t>(1, steps(rng) * 10);
  Call::Glare& g = call.glare[toA ? 0 : 1];
  if (g.timer) su_timer_destroy(g.timer);
  g.call = &call;
  g.retry = std::move(retry);
  g.timer = su_timer_create(su_root_task(d_.loop.root()), delay);
  su_timer_set(g.timer, &B2bua::onGlareTimer, reinterpret_cast<su_timer_arg_t*>(&g));
  log::get("call")->info("call {}: 491 from the {}; sending again in {} ms", call.id,
                         toA ? "caller" : "callee", delay);
}

void B2bua::onGlareTimer(su_root_magic_t*, su_timer_t* timer, su_timer_arg_t* arg) noexcept {
  auto* g = reinterpret_cast<Call::Glare*>(arg);
  if (g->timer != timer || g->call->finished) return;
  su_timer_destroy(g->timer);
  g->timer = nullptr;
  auto retry = std::move(g->retry);
  g->retry = nullptr;
  try {
    if (retry) retry();
  } catch (const std::exception& e) {
    log::get("call")->error("retry after 491 failed: {}", e.what());
  }
}

void B2bua::transferFailed(Call& call, int status, const std::string& phrase) {
  log::get("call")->info("call {}: transfer failed: {} {}", call.id, status, phrase);
  sendNotify(call, status, phrase, true);
  bool gone = call.transfer.transferorGone;
  bool fromA = call.transfer.fromA;
  call.transfer = {};
  if (gone) {
    // Nobody is left on the transferor's side: release the other party.
    hangUp(call, fromA ? "caller-bye" : "callee-bye", "SIP;cause=480;text=\"Transfer failed\"",
           fromA ? false : true, fromA ? true : false);
  }
}

void B2bua::sendNotify(Call& call, int status, const std::string& phrase, bool final) {
  if (call.transfer.transferorGone) return;
  bool toA = call.transfer.fromA;
  nta_leg_t* leg = toA ? call.aLeg : (call.winner ? call.winner->leg : nullptr);
  if (!leg) return;
  Side side = toA ? call.aSide : call.winner->side;
  std::string proto = toA ? call.aProto : call.winner->proto;
  std::string contact = d_.contacts.contact(side, proto, "medius");
  std::string frag = "SIP/2.0 " + std::to_string(status) + " " + sanitizeHeaderValue(phrase, 100) + "\r\n";
  auto tx = newTx(call.id, DialogTx::Kind::Notify, toA, leg);
  tx->orq = nta_outgoing_tcreate(
      leg, &B2bua::dialogResponse, reinterpret_cast<nta_outgoing_magic_t*>(tx.get()), nullptr,
      SIP_METHOD_NOTIFY, nullptr, SIPTAG_EVENT_STR("refer"),
      SIPTAG_SUBSCRIPTION_STATE_STR(final ? "terminated;reason=noresource" : "active;expires=60"),
      SIPTAG_CONTACT_STR(contact.c_str()), SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()),
      SIPTAG_CONTENT_TYPE_STR("message/sipfrag;version=2.0"), SIPTAG_PAYLOAD_STR(frag.c_str()),
      TPTAG_IDENT(identOf(side)), TAG_END());
  if (tx->orq) {
    call.txs.push_back(tx->id);
    dialogTx_.emplace(tx->id, std::move(tx));
  }
}

int B2bua::retiredLegCallback(nta_leg_magic_t*, nta_leg_t*, nta_incoming_t* irq,
                              const sip_t* sip) noexcept {
  // The transferor's old dialog: its BYE is welcome, anything else is out of date.
  if (sip->sip_request->rq_method == sip_method_ack) {
    nta_incoming_destroy(irq);
    return 0;
  }
  return sip->sip_request->rq_method == sip_method_bye ? 200 : 481;
}

void B2bua::publish(Call& call) {
  v1::CallInfo info;
  info.set_id(call.id);
  info.set_caller(call.callerUri);
  info.set_callee(call.calleeUri);
  info.set_started_at_ms(call.record.startedAtMs);
  info.set_answered_at_ms(call.record.answeredAtMs);
  info.set_trunk(call.record.trunk.empty() ? call.sourceTrunk : call.record.trunk);
  info.set_media_worker(call.mediaWorker);
  auto* a = info.add_legs();
  a->set_side(call.aSide == Side::Internal ? v1::SIDE_INTERNAL : v1::SIDE_TRUNK);
  if (call.aLeg) {
    if (const char* tag = nta_leg_get_tag(call.aLeg)) a->set_local_tag(tag);
  }
  a->set_target(call.callerUri);
  a->set_call_id(call.aCallId);
  const char* states[] = {"routing", "routing", "proceeding", "proceeding", "confirmed", "terminating"};
  a->set_state(states[static_cast<int>(call.state)]);
  for (const auto& f : call.forks) {
    if (f->final && f.get() != call.winner) continue;
    auto* b = info.add_legs();
    b->set_side(f->side == Side::Internal ? v1::SIDE_INTERNAL : v1::SIDE_TRUNK);
    b->set_target(f->requestUri);
    b->set_call_id(f->callId);
    if (f->leg) {
      if (const char* tag = nta_leg_get_tag(f->leg)) b->set_local_tag(tag);
    }
    b->set_state(f.get() == call.winner ? (call.state == Call::State::Confirmed ? "confirmed" : "early")
                                        : "calling");
  }
  d_.directory.publish(info);
}

}  // namespace medius::gateway
