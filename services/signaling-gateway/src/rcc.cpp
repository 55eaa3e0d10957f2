#include "medius/gateway/rcc.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstring>
#include <deque>
#include <strings.h>
#include <utility>

#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/tport_tag.h>

#include "medius/common/logging.hpp"
#include "medius/gateway/sip_util.hpp"

namespace medius::gateway {

namespace {

constexpr const char* kRccAllow = "INVITE, ACK, BYE, INFO, OPTIONS";
constexpr const char* kCallAllow = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY";

std::string payloadOf(const sip_t* sip) {
  if (!sip || !sip->sip_payload || !sip->sip_payload->pl_data) return {};
  return std::string(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
}

bool isCstaType(const sip_t* sip) {
  if (!sip || !sip->sip_content_type || !sip->sip_content_type->c_type) return false;
  return strcasecmp(sip->sip_content_type->c_type, "application/csta+xml") == 0;
}

// A request callback's handler, run for Sofia: an exception is logged ("rcc <who>: <what>
// failed: ...") and the request answered 500; nothing escapes into Sofia.
template <class Handler>
int guardedRequest(const std::string& who, const char* what, Handler&& handler) noexcept {
  try {
    handler();
  } catch (const std::exception& e) {
    log::get("call")->error("rcc {}: {} failed: {}", who, what, e.what());
    return 500;
  }
  return 0;
}

int statusOf(nta_outgoing_t* orq, const sip_t* sip) {
  return sip && sip->sip_status ? static_cast<int>(sip->sip_status->st_status)
                                : nta_outgoing_status(orq);
}

}  // namespace

// An outgoing transaction of ours.
struct Rcc::Tx {
  Rcc* rcc = nullptr;
  enum class Kind { PhoneInvite, FarInvite, Reinvite, Refer, Event, Subscribe, Answer } kind = Kind::Event;
  std::string owner;  // call id or session id
  nta_outgoing_t* orq = nullptr;
  std::uint64_t pending = 0;  // Reinvite/Refer: the client's request waiting for it
  bool hold = false;          // Reinvite: hold (true) or retrieve
  bool final = false;
  nta_leg_t* leg = nullptr;  // Answer: the leg of its out-of-dialog NOTIFY
  ~Tx() {
    if (orq) nta_outgoing_destroy(orq);
    if (leg) nta_leg_destroy(leg);
  }
};

struct Pending {
  nta_incoming_t* irq = nullptr;
  bool invite = false;
  csta::Request request;
};

// The dialog-event subscription (RFC 4235) of a monitoring session on its PBX phone.
struct Rcc::Subscription {
  Rcc* rcc = nullptr;
  std::string sessionId;
  v1::TrunkTarget phone;
  nta_leg_t* leg = nullptr;
  std::unique_ptr<Tx> tx;                   // the SUBSCRIBE in flight
  std::vector<std::unique_ptr<Tx>> done;    // answered ones, destroyed by sweep()
  su_timer_t* refresh = nullptr;
  std::string contact;
  std::string hop;
  bool confirmed = false;  // the PBX accepted it (2xx): in-dialog refreshes from now on
  bool ending = false;     // unsubscribed, refused or terminated: NOTIFYs are only answered
  ~Subscription() {
    tx.reset();
    done.clear();
    if (refresh) su_timer_destroy(refresh);
    if (leg) nta_leg_destroy(leg);
  }
};

struct Rcc::Session {
  Session(Rcc* r, std::string sid, std::string user) : rcc(r), id(sid), logic(std::move(user), sid) {}
  Rcc* rcc;
  std::string id;
  RccSession logic;
  nta_leg_t* leg = nullptr;
  nta_incoming_t* inviteIrq = nullptr;
  std::string proto = "udp";
  bool ended = false;
  std::map<std::uint64_t, Pending> pending;
  std::deque<std::string> events;
  std::unique_ptr<Tx> eventTx;  // the event INFO in flight
  std::int64_t startedAtMs = 0;
  std::string sipCallId;
  std::vector<std::unique_ptr<Tx>> finished;  // answered event INFOs, destroyed by sweep()
  std::vector<std::unique_ptr<Tx>> answers;   // AnswerCall NOTIFYs (Event: talk) in flight
  std::unique_ptr<Subscription> sub;          // the dialog subscription of the monitor
  std::vector<std::unique_ptr<Subscription>> oldSubs;  // ended ones, destroyed with the session
};

struct Rcc::Call {
  struct LegMagic {
    Call* call = nullptr;
    bool phone = false;
  };
  Rcc* rcc = nullptr;
  std::string id;
  std::string sessionId;
  std::string user;
  std::string device;
  std::string called;
  enum class State { PhoneRinging, FarCalling, Connected, Ended } state = State::PhoneRinging;
  v1::TrunkTarget phone;
  std::string farTrunk;
  nta_leg_t* phoneLeg = nullptr;
  nta_leg_t* farLeg = nullptr;
  LegMagic phoneMagic;
  LegMagic farMagic;
  std::unique_ptr<Tx> phoneInvite;
  std::unique_ptr<Tx> farInvite;
  std::vector<std::unique_ptr<Tx>> txs;  // re-INVITEs and REFERs
  std::vector<nta_outgoing_t*> cancels;  // our CANCELs, destroyed with the call
  std::string phoneOffer;
  std::string farAnswer;
  std::string phoneSipCallId;  // skipped in the phone's dialog events
  std::uint32_t phoneCseq = 0;  // the CSeq of the phone's 2xx (its ACK's)
  bool phoneAcked = false;
  bool phoneRang = false;
  bool farRang = false;
  std::uint64_t sdpVersion = 0;
  std::string phoneContact;
  std::string farContact;
  std::string farUri;
  std::int64_t startedAtMs = 0;
  std::int64_t answeredAtMs = 0;
  // calls.no_answer_timeout_ms for each ringing phase (the phone, then the far end).
  su_timer_t* ringTimer = nullptr;
};

Rcc::Rcc(Deps deps) : d_(std::move(deps)), self_(std::make_shared<Rcc*>(this)) {}

Rcc::~Rcc() {
  shuttingDown_ = true;
  self_.reset();
  for (auto& [id, c] : calls_) {
    if (c->state != Call::State::Ended) endCall(*c, 0, "shutdown");
  }
  for (auto& [id, s] : sessions_) {
    if (!s->ended) endSession(*s, "shutdown", true);
  }
  sweep();
}

void Rcc::endAll() {
  for (auto& [id, c] : calls_) {
    if (c->state != Call::State::Ended) endCall(*c, 0, "shutdown");
  }
  for (auto& [id, s] : sessions_) {
    if (!s->ended) endSession(*s, "shutdown", true);
  }
}

bool Rcc::isControlInvite(const sip_t* sip) {
  return sip && sip->sip_request && sip->sip_request->rq_method == sip_method_invite &&
         !(sip->sip_to && sip->sip_to->a_tag) && isCstaType(sip);
}

Rcc::Session* Rcc::findSession(const std::string& id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() || it->second->ended ? nullptr : it->second.get();
}

Rcc::Call* Rcc::findCall(const std::string& id) {
  auto it = calls_.find(id);
  return it == calls_.end() || it->second->state == Call::State::Ended ? nullptr : it->second.get();
}

namespace {
std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void Rcc::publish(const Session& s) {
  if (s.ended) {
    d_.directory.remove(s.id);
    return;
  }
  v1::CallInfo info;
  info.set_id(s.id);
  info.set_caller(s.logic.user());
  info.set_callee(s.logic.monitoring() ? "uaCSTA session (monitoring)" : "uaCSTA session");
  info.set_started_at_ms(s.startedAtMs);
  info.set_answered_at_ms(s.startedAtMs);
  v1::CallLeg* leg = info.add_legs();
  leg->set_side(v1::SIDE_INTERNAL);
  leg->set_call_id(s.sipCallId);
  leg->set_state("confirmed");
  d_.directory.publish(info);
}

void Rcc::publish(const Call& c) {
  if (c.state == Call::State::Ended) {
    d_.directory.remove(c.id);
    return;
  }
  v1::CallInfo info;
  info.set_id(c.id);
  info.set_caller(c.device + " (remote call control by " + c.user + ")");
  info.set_callee(c.called);
  info.set_started_at_ms(c.startedAtMs);
  info.set_answered_at_ms(c.answeredAtMs);
  info.set_trunk(c.farTrunk);
  const char* phoneState = c.state == Call::State::PhoneRinging ? "calling" : "confirmed";
  v1::CallLeg* phone = info.add_legs();
  phone->set_side(v1::SIDE_TRUNK);
  phone->set_target(c.phone.request_uri());
  phone->set_state(phoneState);
  if (c.farLeg) {
    v1::CallLeg* far = info.add_legs();
    far->set_side(v1::SIDE_TRUNK);
    far->set_target(c.farUri);
    far->set_state(c.state == Call::State::Connected ? "confirmed" : "calling");
  }
  d_.directory.publish(info);
}

// ---------------------------------------------------------------------------------------
// The control dialog

int Rcc::onInvite(nta_incoming_t* irq, const sip_t* sip, const RequestSource& source,
                  const CallerIdentity& caller) {
  assert(d_.loop.isLoopThread());  // (the Gateway counted the request)
  auto refuse = [&](int status, const char* phrase) {
    nta_incoming_treply(irq, status, phrase, SIPTAG_SERVER_STR(d_.config.userAgent.c_str()),
                        TAG_END());
    d_.metrics.countResponse(Method::Invite, status, Side::Internal);
    return status;
  };
  std::string user = caller.aor;
  if (user.empty() && d_.config.authCalls == CallAuthMode::Off && sip->sip_from) {
    user = aorOf(sip->sip_from->a_url);
  }
  if (user.empty()) return refuse(403, "Remote Call Control Needs An Authenticated User");
  if (!sdpBody(sip).empty()) return refuse(488, "Not Acceptable Here");
  std::string id = "rcc" + randomToken(10);
  auto owned = std::make_unique<Session>(this, id, user);
  Session& s = *owned;
  s.proto = transportName(source.transport);
  s.leg = nta_leg_tcreate(d_.agent, &Rcc::sessionLegCallback, reinterpret_cast<nta_leg_magic_t*>(&s),
                          SIPTAG_CALL_ID(sip->sip_call_id), SIPTAG_FROM(sip->sip_to),
                          SIPTAG_TO(sip->sip_from), NTATAG_REMOTE_CSEQ(sip->sip_cseq->cs_seq),
                          TAG_END());
  if (!s.leg) return refuse(500, "Cannot Create Dialog");
  nta_leg_server_route(s.leg, sip->sip_record_route, sip->sip_contact);
  nta_leg_tag(s.leg, nullptr);
  nta_incoming_tag(irq, nta_leg_get_tag(s.leg));
  s.inviteIrq = irq;
  // nta reports the INVITE transaction's end without an ACK (sip NULL): the client is gone.
  nta_incoming_bind(irq, &Rcc::inviteIrqCallback, reinterpret_cast<nta_incoming_magic_t*>(&s));
  s.startedAtMs = nowMs();
  s.sipCallId = sip->sip_call_id && sip->sip_call_id->i_id ? sip->sip_call_id->i_id : "";
  sessions_.emplace(id, std::move(owned));
  publish(s);
  d_.metrics.setRccSessions(sessions_.size());
  log::get("call")->info("rcc {}: control session of {} (Call-ID {})", id, user,
                         sip->sip_call_id ? sip->sip_call_id->i_id : "-");
  onCsta(s, irq, payloadOf(sip), true);
  return 0;
}

int Rcc::inviteIrqCallback(nta_incoming_magic_t* magic, nta_incoming_t*, const sip_t* sip) noexcept {
  auto* s = reinterpret_cast<Session*>(magic);
  if (sip || s->ended) return 0;
  try {
    s->rcc->endSession(*s, "no ACK for the 200 of its INVITE");
  } catch (const std::exception& e) {
    log::get("call")->error("rcc {}: {}", s->id, e.what());
  }
  return 0;
}

int Rcc::sessionLegCallback(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq,
                            const sip_t* sip) noexcept {
  auto* s = reinterpret_cast<Session*>(magic);
  return guardedRequest(s->id, "request handling", [&] { s->rcc->onSessionRequest(*s, irq, sip); });
}

void Rcc::onSessionRequest(Session& s, nta_incoming_t* irq, const sip_t* sip) {
  sip_method_t method = sip->sip_request->rq_method;
  Method label = methodFromName(sip->sip_request->rq_method_name);
  d_.metrics.countRequest(label, Side::Internal);
  auto reply = [&](int status, const char* phrase = nullptr) {
    nta_incoming_treply(irq, status, phrase ? phrase : sip_status_phrase(status),
                        SIPTAG_SERVER_STR(d_.config.userAgent.c_str()), TAG_END());
    d_.metrics.countResponse(label, status, Side::Internal);
    nta_incoming_destroy(irq);
  };
  if (method == sip_method_ack) {
    nta_incoming_destroy(irq);
    return;
  }
  if (s.ended) {
    reply(method == sip_method_bye ? 200 : 481);
    return;
  }
  switch (method) {
    case sip_method_bye:
      reply(200);
      endSession(s, "BYE from the client");
      return;
    case sip_method_info:
      if (!isCstaType(sip)) {
        reply(415, "Unsupported Media Type");
        return;
      }
      onCsta(s, irq, payloadOf(sip), false);
      return;
    case sip_method_options:
    case sip_method_update:
      reply(200);
      return;
    case sip_method_invite:
      // A re-INVITE (session refresh): nothing to negotiate.
      nta_incoming_treply(irq, SIP_200_OK,
                          SIPTAG_CONTACT_STR(d_.contacts.contact(Side::Internal, s.proto, "rcc").c_str()),
                          SIPTAG_SERVER_STR(d_.config.userAgent.c_str()), TAG_END());
      d_.metrics.countResponse(label, 200, Side::Internal);
      nta_incoming_destroy(irq);
      return;
    default:
      reply(501);
      return;
  }
}

void Rcc::onCsta(Session& s, nta_incoming_t* irq, const std::string& body, bool invite) {
  csta::Request request;
  RccReply reply;
  if (body.empty() && invite) {
    request.kind = csta::RequestKind::RequestSystemStatus;
    request.ns = std::string(csta::kNamespaceEd3);
    reply = s.logic.onRequest(request);
  } else {
    try {
      request = csta::parseRequest(body);
      reply = s.logic.onRequest(request);
    } catch (const csta::BadRequest& bad) {
      request = bad.request;
      reply = s.logic.onBadRequest(bad);
      log::get("call")->info("rcc {}: {}", s.id, bad.what());
    } catch (const csta::NotCsta& e) {
      log::get("call")->info("rcc {}: body is not CSTA: {}", s.id, e.what());
      d_.metrics.countCstaRequest("malformed", "refused");
      if (invite) {
        // The dialog was not set up: refuse the INVITE, forget the session.
        nta_incoming_treply(irq, 400, "Bad CSTA Body", TAG_END());
        d_.metrics.countResponse(Method::Invite, 400, Side::Internal);
        endSession(s, "bad INVITE body");
      } else {
        nta_incoming_treply(irq, 400, "Bad CSTA Body", TAG_END());
        d_.metrics.countResponse(Method::Info, 400, Side::Internal);
        nta_incoming_destroy(irq);
      }
      return;
    }
  }
  if (invite && reply.outcome == "pending") {
    // The INVITE is answered at once; requests that need routing or the PBX go in INFO.
    RccReply refused;
    refused.body = csta::errorResponse(
        request.ns, {csta::ErrorCategory::Operation, "requestIncompatibleWithObject"});
    refused.outcome = "refused";
    answer(s, irq, true, refused, csta::requestName(request.kind));
    return;
  }
  act(s, irq, invite, request, reply);
}

void Rcc::answer(Session& s, nta_incoming_t* irq, bool invite, const RccReply& reply,
                 std::string_view request) {
  d_.metrics.countCstaRequest(request, reply.outcome);
  log::get("call")->info("rcc {}: {} -> {}", s.id, request, reply.outcome);
  publish(s);  // MonitorStart/Stop change the session's entry
  if (invite) {
    std::string contact = d_.contacts.contact(Side::Internal, s.proto, "rcc");
    nta_incoming_treply(irq, SIP_200_OK, SIPTAG_CONTACT_STR(contact.c_str()),
                        SIPTAG_SERVER_STR(d_.config.userAgent.c_str()),
                        SIPTAG_ALLOW_STR(kRccAllow),
                        SIPTAG_CONTENT_TYPE_STR("application/csta+xml"),
                        SIPTAG_PAYLOAD_STR(reply.body.c_str()), TAG_END());
    d_.metrics.countResponse(Method::Invite, 200, Side::Internal);
    return;  // the INVITE transaction is kept until the session is reaped
  }
  nta_incoming_treply(irq, SIP_200_OK, SIPTAG_SERVER_STR(d_.config.userAgent.c_str()),
                      SIPTAG_CONTENT_TYPE_STR("application/csta+xml"),
                      SIPTAG_PAYLOAD_STR(reply.body.c_str()), TAG_END());
  d_.metrics.countResponse(Method::Info, 200, Side::Internal);
  nta_incoming_destroy(irq);
}

void Rcc::act(Session& s, nta_incoming_t* irq, bool invite, const csta::Request& request,
              const RccReply& reply) {
  const RccAction& action = reply.action;
  std::string_view name = csta::requestName(request.kind);
  switch (action.kind) {
    case RccAction::Kind::None:
      answer(s, irq, invite, reply, name);
      return;
    case RccAction::Kind::Authorize: {
      std::uint64_t pid = nextPending_++;
      s.pending.emplace(pid, Pending{irq, invite, request});
      v1::ControlLineRequest q;
      q.set_user_aor(s.logic.user());
      q.set_device(action.device);
      q.set_call_id(s.id);
      std::weak_ptr<Rcc*> weak = self_;
      SipLoop* loop = &d_.loop;
      std::string sid = s.id;
      d_.routing.controlLineAsync(std::move(q), [weak, loop, sid, pid](const grpc::Status& st,
                                                                       v1::ControlLineResponse r) {
        loop->post([weak, sid, pid, st, r = std::move(r)] {
          if (auto self = weak.lock()) (*self)->onControlLine(sid, pid, st, r);
        });
      });
      return;
    }
    case RccAction::Kind::ClearCall: {
      answer(s, irq, invite, reply, name);
      if (Call* c = findCall(action.callId)) endCall(*c, 0, "ClearConnection");
      return;
    }
    case RccAction::Kind::Hold:
    case RccAction::Kind::Retrieve:
    case RccAction::Kind::Transfer: {
      Call* c = findCall(action.callId);
      if (!c || c->state != Call::State::Connected) {
        RccReply gone = s.logic.actionDone(request, 481);
        answer(s, irq, invite, gone, name);
        return;
      }
      if (action.kind == RccAction::Kind::Transfer) {
        transfer(s, *c, irq, request);
      } else {
        holdOrRetrieve(s, *c, irq, request, action.kind == RccAction::Kind::Hold);
      }
      return;
    }
    case RccAction::Kind::Unsubscribe:
      answer(s, irq, invite, reply, name);
      unsubscribe(s, "MonitorStop");
      return;
    case RccAction::Kind::Answer:
      answerPhone(s, irq, invite, request);
      return;
    case RccAction::Kind::StartCall:
    case RccAction::Kind::Subscribe:
      break;  // only from authorized()
  }
  answer(s, irq, invite, reply, name);
}

void Rcc::onControlLine(const std::string& sessionId, std::uint64_t pendingId,
                        const grpc::Status& status, const v1::ControlLineResponse& response) {
  Session* s = findSession(sessionId);
  if (!s) return;
  auto it = s->pending.find(pendingId);
  if (it == s->pending.end()) return;
  Pending p = std::move(it->second);
  s->pending.erase(it);
  const bool monitor = p.request.kind == csta::RequestKind::MonitorStart;
  std::string error;
  RccReply reply;
  if (!status.ok()) {
    log::get("call")->warn("rcc {}: ControlLine failed: {}", s->id, status.error_message());
    reply.body = csta::errorResponse(
        s->logic.ns(), {csta::ErrorCategory::SystemResourceAvailability, "serviceBusy"});
    reply.outcome = "failed";
    answer(*s, p.irq, p.invite, reply, csta::requestName(p.request.kind));
    return;
  }
  switch (response.outcome()) {
    case v1::ControlLineResponse::OUTCOME_ALLOWED: break;
    case v1::ControlLineResponse::OUTCOME_NOT_OWNER:
      error = "privilegeViolationOnSpecifiedDevice";
      break;
    case v1::ControlLineResponse::OUTCOME_NO_PBX_PHONE:
      error = "requestIncompatibleWithObject";
      break;
    default:
      error = monitor ? "invalidDeviceIdentifier" : "invalidCallingDevice";
      break;
  }
  if (!error.empty()) {
    log::get("call")->info("rcc {}: {} may not control {}: {}", s->id, s->logic.user(),
                           monitor ? p.request.monitorDevice : p.request.callingDevice,
                           response.reason());
  }
  reply = s->logic.authorized(p.request, response.line_number(), error);
  answer(*s, p.irq, p.invite, reply, csta::requestName(p.request.kind));
  if (reply.action.kind == RccAction::Kind::StartCall) {
    startCall(*s, reply.action.callId, response.pbx_phone(), reply.action.called);
  }
  // A MonitorStart on the monitored line again renews a subscription the PBX refused or ended.
  const bool renew = monitor && error.empty() && reply.action.kind == RccAction::Kind::None &&
                     (!s->sub || s->sub->ending);
  if ((reply.action.kind == RccAction::Kind::Subscribe || renew) && d_.config.rccDialogEvents) {
    subscribe(*s, response.pbx_phone());
  }
}

void Rcc::sendEvents(Session& s, std::vector<std::string> events) {
  for (auto& e : events) s.events.push_back(std::move(e));
  pumpEvents(s);
}

void Rcc::pumpEvents(Session& s) {
  if (s.ended || s.eventTx || s.events.empty()) return;
  auto tx = std::make_unique<Tx>();
  tx->rcc = this;
  tx->kind = Tx::Kind::Event;
  tx->owner = s.id;
  const std::string body = std::move(s.events.front());
  s.events.pop_front();
  tx->orq = nta_outgoing_tcreate(s.leg, &Rcc::txResponse, reinterpret_cast<nta_outgoing_magic_t*>(tx.get()),
                                 nullptr, SIP_METHOD_INFO, nullptr,
                                 SIPTAG_CONTENT_TYPE_STR("application/csta+xml"),
                                 SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()),
                                 SIPTAG_PAYLOAD_STR(body.c_str()), TPTAG_IDENT("internal"), TAG_END());
  if (!tx->orq) {
    log::get("call")->warn("rcc {}: cannot send an event INFO: session ended", s.id);
    endSession(s, "cannot send events");
    return;
  }
  s.eventTx = std::move(tx);
}

void Rcc::endSession(Session& s, const char* why, bool bye) {
  if (s.ended) return;
  unsubscribe(s, why);
  s.ended = true;
  publish(s);
  if (bye && s.leg) {
    nta_outgoing_destroy(nta_outgoing_tcreate(s.leg, nullptr, nullptr, nullptr, SIP_METHOD_BYE,
                                              nullptr, TPTAG_IDENT("internal"), TAG_END()));
  }
  log::get("call")->info("rcc {}: session of {} ended: {}", s.id, s.logic.user(), why);
  for (auto& [pid, p] : s.pending) {
    if (p.invite) continue;
    nta_incoming_treply(p.irq, 481, "Call/Transaction Does Not Exist", TAG_END());
    nta_incoming_destroy(p.irq);
  }
  s.pending.clear();
  s.events.clear();
  reap();
}

// ---------------------------------------------------------------------------------------
// The phone's own calls: a dialog-event subscription (RFC 4235) on its line

namespace {
constexpr unsigned kSubscribeExpires = 600;
}  // namespace

void Rcc::subscribe(Session& s, const v1::TrunkTarget& phone) {
  if (s.sub) unsubscribe(s, "a new MonitorStart");
  auto sub = std::make_unique<Subscription>();
  sub->rcc = this;
  sub->sessionId = s.id;
  sub->phone = phone;
  std::string proto = phone.address().transport() == v1::TRANSPORT_TCP ? "tcp" : "udp";
  std::string from = "<sip:rcc@" + d_.contacts.hostOf(Side::Trunk, proto) + ">";
  std::string to = phone.request_uri();
  if (auto semi = to.find(';'); semi != std::string::npos) to.resize(semi);
  to = "<" + to + ">";
  std::string sipCallId = randomToken(24) + "@" + d_.config.domain;
  sub->leg = nta_leg_tcreate(d_.agent, &Rcc::subscriptionLegCallback,
                             reinterpret_cast<nta_leg_magic_t*>(sub.get()),
                             SIPTAG_CALL_ID_STR(sipCallId.c_str()), SIPTAG_FROM_STR(from.c_str()),
                             SIPTAG_TO_STR(to.c_str()), TAG_END());
  if (sub->leg) nta_leg_tag(sub->leg, nullptr);
  sub->contact = d_.contacts.contact(Side::Trunk, proto, "rcc");
  sub->hop = nextHopOf(phone.address());
  Subscription& ref = *sub;
  s.sub = std::move(sub);
  if (!ref.leg || !sendSubscribe(ref, kSubscribeExpires)) {
    d_.metrics.countRccDialogEvent("failed");
    log::get("call")->warn("rcc {}: cannot SUBSCRIBE to the dialogs of PBX phone {}: the phone's own "
                           "calls will not be reported",
                           s.id, phone.request_uri());
    ref.ending = true;
    return;
  }
  log::get("call")->info("rcc {}: SUBSCRIBE (Event: dialog) -> PBX phone {} on trunk {}", s.id,
                         phone.request_uri(), phone.trunk());
}

bool Rcc::sendSubscribe(Subscription& sub, unsigned expires) {
  auto tx = std::make_unique<Tx>();
  tx->rcc = this;
  tx->kind = Tx::Kind::Subscribe;
  tx->owner = sub.sessionId;
  tx->pending = expires;
  std::string exp = std::to_string(expires);
  const bool initial = !sub.confirmed;
  tx->orq = nta_outgoing_tcreate(
      sub.leg, &Rcc::txResponse, reinterpret_cast<nta_outgoing_magic_t*>(tx.get()),
      initial ? URL_STRING_MAKE(sub.hop.c_str()) : nullptr, SIP_METHOD_SUBSCRIBE,
      initial ? URL_STRING_MAKE(sub.phone.request_uri().c_str()) : nullptr,
      SIPTAG_EVENT_STR("dialog"), SIPTAG_ACCEPT_STR("application/dialog-info+xml"),
      SIPTAG_EXPIRES_STR(exp.c_str()), SIPTAG_CONTACT_STR(sub.contact.c_str()),
      SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()), TPTAG_IDENT("trunk"), TAG_END());
  if (!tx->orq) return false;
  if (sub.tx) sub.done.push_back(std::move(sub.tx));
  sub.tx = std::move(tx);
  return true;
}

void Rcc::unsubscribe(Session& s, const char* why) {
  if (!s.sub) return;
  Subscription& sub = *s.sub;
  s.logic.phoneDialogsReset();
  if (!sub.ending) {
    sub.ending = true;
    if (sub.refresh) su_timer_reset(sub.refresh);
    if (sub.confirmed) sendSubscribe(sub, 0);
    log::get("call")->info("rcc {}: dialog subscription to {} ended: {}", s.id,
                           sub.phone.request_uri(), why);
  }
  s.oldSubs.push_back(std::move(s.sub));
}

void Rcc::onSubscribeResponse(Tx& tx, int status, const sip_t* sip) {
  if (status < 200) return;
  tx.final = true;
  auto it = sessions_.find(tx.owner);
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  // The subscription this transaction belongs to (current or ended).
  Subscription* sub = nullptr;
  auto owns = [&](Subscription* x) {
    return x && (x->tx.get() == &tx);
  };
  if (owns(s.sub.get())) sub = s.sub.get();
  for (auto& old : s.oldSubs) {
    if (owns(old.get())) sub = old.get();
  }
  if (!sub) return;
  const unsigned asked = static_cast<unsigned>(tx.pending);
  if (status < 300) {
    if (!sub->confirmed) {
      if (sip && sip->sip_to && sip->sip_to->a_tag) nta_leg_rtag(sub->leg, sip->sip_to->a_tag);
      if (sip) nta_leg_client_reroute(sub->leg, sip->sip_record_route, sip->sip_contact, 1);
      sub->confirmed = true;
      if (!sub->ending) {
        d_.metrics.countRccDialogEvent("subscribed");
        log::get("call")->info("rcc {}: PBX phone {} accepted the dialog subscription ({})", s.id,
                               sub->phone.request_uri(), status);
      }
    }
    if (sub->ending) {
      if (asked != 0) sendSubscribe(*sub, 0);  // MonitorStop came before the PBX's answer
      return;
    }
    unsigned granted = sip && sip->sip_expires ? static_cast<unsigned>(sip->sip_expires->ex_delta) : asked;
    if (granted == 0 || granted > asked) granted = asked;
    // Refresh at three quarters of the granted time (at least 5 s away).
    su_duration_t in = static_cast<su_duration_t>(std::max(5000u, granted * 750u));
    if (!sub->refresh) sub->refresh = su_timer_create(su_root_task(d_.loop.root()), in);
    if (sub->refresh) {
      su_timer_set_interval(sub->refresh, &Rcc::onRefreshTimer,
                            reinterpret_cast<su_timer_arg_t*>(sub), in);
    }
    return;
  }
  if (sub->ending) return;
  sub->ending = true;
  s.logic.phoneDialogsReset();
  const bool refused = status == 403 || status == 405 || status == 489 || status == 501;
  d_.metrics.countRccDialogEvent(refused ? "refused" : "failed");
  log::get("call")->warn(
      "rcc {}: the PBX answered {} to the dialog SUBSCRIBE for phone {}: the phone's own calls "
      "will not be reported (the monitor reports the gateway's MakeCall calls only)",
      s.id, status, sub->phone.request_uri());
}

void Rcc::onRefreshTimer(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) noexcept {
  auto* sub = reinterpret_cast<Subscription*>(arg);
  try {
    if (sub->ending) return;
    if (!sub->rcc->sendSubscribe(*sub, kSubscribeExpires)) {
      log::get("call")->warn("rcc {}: cannot refresh the dialog subscription", sub->sessionId);
    }
  } catch (const std::exception& e) {
    log::get("call")->error("rcc {}: subscription refresh failed: {}", sub->sessionId, e.what());
  }
}

int Rcc::subscriptionLegCallback(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq,
                                 const sip_t* sip) noexcept {
  auto* sub = reinterpret_cast<Subscription*>(magic);
  return guardedRequest(sub->sessionId, "NOTIFY handling",
                        [&] { sub->rcc->onSubscriptionRequest(*sub, irq, sip); });
}

void Rcc::onSubscriptionRequest(Subscription& sub, nta_incoming_t* irq, const sip_t* sip) {
  Method label = methodFromName(sip->sip_request->rq_method_name);
  d_.metrics.countRequest(label, Side::Trunk);
  auto reply = [&](int status, const char* phrase = nullptr) {
    nta_incoming_treply(irq, status, phrase ? phrase : sip_status_phrase(status),
                        SIPTAG_SERVER_STR(d_.config.userAgent.c_str()), TAG_END());
    d_.metrics.countResponse(label, status, Side::Trunk);
    nta_incoming_destroy(irq);
  };
  if (sip->sip_request->rq_method != sip_method_notify) {
    reply(405);
    return;
  }
  Session* s = findSession(sub.sessionId);
  if (!s || sub.ending) {
    reply(200);  // the final NOTIFY of an ended subscription
    return;
  }
  const bool terminated = sip->sip_subscription_state && sip->sip_subscription_state->ss_substate &&
                          strcasecmp(sip->sip_subscription_state->ss_substate, "terminated") == 0;
  std::string body = payloadOf(sip);
  if (!body.empty()) {
    if (!sip->sip_content_type || !sip->sip_content_type->c_type ||
        strcasecmp(sip->sip_content_type->c_type, "application/dialog-info+xml") != 0) {
      reply(415);
      return;
    }
    dialog_info::Document doc;
    try {
      doc = dialog_info::parse(body);
    } catch (const dialog_info::BadDialogInfo& e) {
      d_.metrics.countRccDialogEvent("notify_bad");
      log::get("call")->info("rcc {}: NOTIFY from the PBX: {}", s->id, e.what());
      reply(400, "Bad dialog-info Body");
      return;
    }
    reply(200);
    d_.metrics.countRccDialogEvent("notify");
    auto ownLeg = [this](const std::string& sipCallId) {
      for (const auto& [id, c] : calls_) {
        if (c->phoneSipCallId == sipCallId) return true;
      }
      return false;
    };
    sendEvents(*s, s->logic.phoneDialogs(doc, ownLeg));
  } else {
    reply(200);
  }
  if (terminated) {
    log::get("call")->warn("rcc {}: the PBX terminated the dialog subscription to {}: the phone's "
                           "own calls are no longer reported",
                           s->id, sub.phone.request_uri());
    sub.ending = true;
    if (sub.refresh) su_timer_reset(sub.refresh);
    s->logic.phoneDialogsReset();
  }
}

// ---------------------------------------------------------------------------------------
// Third-party calls

void Rcc::startCall(Session& s, const std::string& callId, const v1::TrunkTarget& phone,
                    const std::string& called) {
  auto owned = std::make_unique<Call>();
  Call& c = *owned;
  c.rcc = this;
  c.id = callId;
  c.sessionId = s.id;
  c.user = s.logic.user();
  c.device = s.logic.calls().count(callId) ? s.logic.calls().at(callId).device : "";
  c.called = called;
  c.phone = phone;
  c.phoneMagic = {&c, true};
  c.farMagic = {&c, false};
  c.startedAtMs = nowMs();
  calls_.emplace(callId, std::move(owned));
  publish(c);

  std::string proto = phone.address().transport() == v1::TRANSPORT_TCP ? "tcp" : "udp";
  std::string fromHost = d_.contacts.hostOf(Side::Trunk, proto);
  // The phone shows whom it is calling.
  std::string from = "<sip:" + escapeUser(rccNumberOf(called)) + "@" + fromHost + ">";
  std::string to = phone.request_uri();
  if (auto semi = to.find(';'); semi != std::string::npos) to.resize(semi);
  to = "<" + to + ">";
  std::string sipCallId = randomToken(24) + "@" + d_.config.domain;
  c.phoneSipCallId = sipCallId;
  c.phoneLeg = nta_leg_tcreate(d_.agent, &Rcc::callLegCallback,
                               reinterpret_cast<nta_leg_magic_t*>(&c.phoneMagic),
                               SIPTAG_CALL_ID_STR(sipCallId.c_str()), SIPTAG_FROM_STR(from.c_str()),
                               SIPTAG_TO_STR(to.c_str()), TAG_END());
  if (c.phoneLeg) nta_leg_tag(c.phoneLeg, nullptr);
  c.phoneContact = d_.contacts.contact(Side::Trunk, proto, "rcc");
  c.phoneInvite = std::make_unique<Tx>();
  c.phoneInvite->rcc = this;
  c.phoneInvite->kind = Tx::Kind::PhoneInvite;
  c.phoneInvite->owner = callId;
  std::string hop = nextHopOf(phone.address());
  if (c.phoneLeg) {
    // RFC 3725 flow I: no SDP; the phone's 200 makes the offer.
    c.phoneInvite->orq = nta_outgoing_tcreate(
        c.phoneLeg, &Rcc::txResponse, reinterpret_cast<nta_outgoing_magic_t*>(c.phoneInvite.get()),
        URL_STRING_MAKE(hop.c_str()), SIP_METHOD_INVITE, URL_STRING_MAKE(phone.request_uri().c_str()),
        SIPTAG_CONTACT_STR(c.phoneContact.c_str()),
        SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()), SIPTAG_ALLOW_STR(kCallAllow),
        TPTAG_IDENT("trunk"), TAG_END());
  }
  if (!c.phoneInvite->orq) {
    log::get("call")->warn("rcc {}: call {}: cannot send INVITE to the PBX phone {}", s.id, callId,
                           phone.request_uri());
    endCall(c, 503, "cannot send");
    return;
  }
  armRingTimer(c);
  log::get("call")->info("rcc {}: call {}: INVITE (no SDP) -> PBX phone {} on trunk {}, then {}",
                         s.id, callId, phone.request_uri(), phone.trunk(), called);
}

int Rcc::txResponse(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip) noexcept {
  auto* tx = reinterpret_cast<Tx*>(magic);
  try {
    tx->rcc->onTxResponse(*tx, orq, sip);
  } catch (const std::exception& e) {
    log::get("call")->error("rcc: response handling failed: {}", e.what());
  }
  return 0;
}

void Rcc::onTxResponse(Tx& tx, nta_outgoing_t* orq, const sip_t* sip) {
  const int status = statusOf(orq, sip);
  if (tx.kind == Tx::Kind::Subscribe) {
    onSubscribeResponse(tx, status, sip);
    return;
  }
  if (tx.kind == Tx::Kind::Answer) {
    if (status < 200 || tx.final) return;
    tx.final = true;
    Session* s = findSession(tx.owner);
    if (!s) return;
    auto pit = s->pending.find(tx.pending);
    if (pit != s->pending.end()) {
      Pending p = std::move(pit->second);
      s->pending.erase(pit);
      if (status >= 300) {
        log::get("call")->warn("rcc {}: the PBX answered {} to NOTIFY (Event: talk) for AnswerCall: "
                               "it cannot make its phone answer; CSTA error to the client",
                               s->id, status);
      }
      answer(*s, p.irq, p.invite, s->logic.actionDone(p.request, status),
             csta::requestName(p.request.kind));
    }
    // Destroyed by the next sweep, not inside its own callback.
    for (auto& a : s->answers) {
      if (a.get() == &tx) {
        s->finished.push_back(std::move(a));
        break;
      }
    }
    std::erase(s->answers, nullptr);
    reap();
    return;
  }
  if (tx.kind == Tx::Kind::Event) {
    if (status < 200) return;
    Session* s = findSession(tx.owner);
    if (!s) return;
    if (status == 481 || status == 408) {
      endSession(*s, status == 481 ? "event INFO answered 481" : "event INFO timed out");
      return;
    }
    // Keep the finished transaction until the next sweep (not destroyed inside its own
    // callback); send the next event.
    tx.final = true;
    if (s->eventTx) s->finished.push_back(std::move(s->eventTx));
    pumpEvents(*s);
    reap();
    return;
  }
  auto cit = calls_.find(tx.owner);
  if (cit == calls_.end()) return;
  Call& c = *cit->second;
  const bool ended = c.state == Call::State::Ended;
  auto ackAndBye = [&](nta_leg_t* leg, const char* sdp) {
    if (sip && sip->sip_to && sip->sip_to->a_tag) nta_leg_rtag(leg, sip->sip_to->a_tag);
    if (sip) nta_leg_client_reroute(leg, sip->sip_record_route, sip->sip_contact, 1);
    std::string cseq = std::to_string(sip && sip->sip_cseq ? sip->sip_cseq->cs_seq : 1) + " ACK";
    nta_outgoing_destroy(nta_outgoing_tcreate(
        leg, nullptr, nullptr, nullptr, SIP_METHOD_ACK, nullptr, SIPTAG_CSEQ_STR(cseq.c_str()),
        TAG_IF(sdp, SIPTAG_CONTENT_TYPE_STR("application/sdp")), TAG_IF(sdp, SIPTAG_PAYLOAD_STR(sdp)),
        TPTAG_IDENT("trunk"), TAG_END()));
    nta_outgoing_destroy(nta_outgoing_tcreate(leg, nullptr, nullptr, nullptr, SIP_METHOD_BYE, nullptr,
                                              TPTAG_IDENT("trunk"), TAG_END()));
  };
  switch (tx.kind) {
    case Tx::Kind::PhoneInvite: {
      if (tx.final) return;  // a 2xx retransmission
      if (status < 200) {
        if (status > 100 && !c.phoneRang && !ended) {
          c.phoneRang = true;
          progress(c, RccProgress::DeskRinging);
        }
        return;
      }
      tx.final = true;
      if (status >= 300) {
        log::get("call")->info("rcc call {}: PBX phone answered {}", c.id, status);
        if (!ended) endCall(c, status, "the PBX phone failed the call");
        return;
      }
      std::string offer = sdpBody(sip);
      if (ended || offer.empty()) {
        // Answered after a CANCEL, or without the offer flow I needs.
        if (!ended) {
          log::get("call")->warn("rcc call {}: the PBX phone answered without an SDP offer", c.id);
        }
        ackAndBye(c.phoneLeg, offer.empty() ? nullptr : rccRejectAnswer(offer).c_str());
        c.phoneAcked = true;
        if (!ended) endCall(c, 488, "no offer from the PBX phone");
        return;
      }
      if (sip->sip_to && sip->sip_to->a_tag) nta_leg_rtag(c.phoneLeg, sip->sip_to->a_tag);
      nta_leg_client_reroute(c.phoneLeg, sip->sip_record_route, sip->sip_contact, 1);
      c.phoneCseq = sip->sip_cseq ? sip->sip_cseq->cs_seq : 1;
      c.phoneOffer = offer;
      c.state = Call::State::FarCalling;
      if (!c.phoneRang) {
        c.phoneRang = true;
        progress(c, RccProgress::DeskRinging);
      }
      progress(c, RccProgress::DeskAnswered);
      v1::RouteCallRequest q;
      q.set_caller(c.user);
      q.set_callee(c.called);
      q.mutable_source()->set_internal_user(c.user);
      q.set_call_id(c.id);
      std::weak_ptr<Rcc*> weak = self_;
      SipLoop* loop = &d_.loop;
      std::string id = c.id;
      d_.routing.routeCallAsync(std::move(q), [weak, loop, id](const grpc::Status& st, v1::RoutePlan plan) {
        loop->post([weak, id, st, plan = std::move(plan)] {
          if (auto self = weak.lock()) (*self)->onFarRoute(id, st, plan);
        });
      });
      return;
    }
    case Tx::Kind::FarInvite: {
      if (tx.final) return;
      if (status < 200) {
        if (status > 100 && !c.farRang && !ended) {
          c.farRang = true;
          progress(c, RccProgress::FarRinging);
        }
        return;
      }
      tx.final = true;
      if (status >= 300) {
        log::get("call")->info("rcc call {}: far end {} answered {}", c.id, c.called, status);
        if (!ended) endCall(c, status, "the far end failed the call");
        return;
      }
      std::string answerSdp = sdpBody(sip);
      if (ended || answerSdp.empty()) {
        ackAndBye(c.farLeg, nullptr);
        if (!ended) endCall(c, 488, "no answer SDP from the far end");
        return;
      }
      if (sip->sip_to && sip->sip_to->a_tag) nta_leg_rtag(c.farLeg, sip->sip_to->a_tag);
      nta_leg_client_reroute(c.farLeg, sip->sip_record_route, sip->sip_contact, 1);
      std::string cseq = std::to_string(sip->sip_cseq ? sip->sip_cseq->cs_seq : 1) + " ACK";
      nta_outgoing_destroy(nta_outgoing_tcreate(c.farLeg, nullptr, nullptr, nullptr, SIP_METHOD_ACK,
                                                nullptr, SIPTAG_CSEQ_STR(cseq.c_str()),
                                                TPTAG_IDENT("trunk"), TAG_END()));
      // RFC 3725 flow I: the far end's answer goes to the phone in its ACK.
      c.farAnswer = answerSdp;
      std::string phoneAck = std::to_string(c.phoneCseq) + " ACK";
      nta_outgoing_destroy(nta_outgoing_tcreate(
          c.phoneLeg, nullptr, nullptr, nullptr, SIP_METHOD_ACK, nullptr,
          SIPTAG_CSEQ_STR(phoneAck.c_str()), SIPTAG_CONTENT_TYPE_STR("application/sdp"),
          SIPTAG_PAYLOAD_STR(answerSdp.c_str()), TPTAG_IDENT("trunk"), TAG_END()));
      c.phoneAcked = true;
      c.state = Call::State::Connected;
      c.answeredAtMs = nowMs();
      if (c.ringTimer) su_timer_reset(c.ringTimer);
      publish(c);
      c.sdpVersion = 1000;
      log::get("call")->info("rcc call {}: connected: PBX phone <-> {}", c.id, c.called);
      progress(c, RccProgress::FarAnswered);
      return;
    }
    case Tx::Kind::Reinvite:
    case Tx::Kind::Refer: {
      if (status < 200 || tx.final) return;
      tx.final = true;
      if (tx.kind == Tx::Kind::Reinvite && status < 300) {
        std::string cseq = std::to_string(sip && sip->sip_cseq ? sip->sip_cseq->cs_seq : 1) + " ACK";
        nta_outgoing_destroy(nta_outgoing_tcreate(c.phoneLeg, nullptr, nullptr, nullptr,
                                                  SIP_METHOD_ACK, nullptr,
                                                  SIPTAG_CSEQ_STR(cseq.c_str()),
                                                  TPTAG_IDENT("trunk"), TAG_END()));
      }
      Session* s = findSession(c.sessionId);
      if (!s) return;
      auto pit = s->pending.find(tx.pending);
      if (pit == s->pending.end()) return;
      Pending p = std::move(pit->second);
      s->pending.erase(pit);
      if (status >= 300) {
        log::get("call")->warn("rcc call {}: the PBX phone answered {} to {}: CSTA error", c.id,
                               status, tx.kind == Tx::Kind::Refer ? "REFER" : "re-INVITE");
      }
      RccReply reply = s->logic.actionDone(p.request, status);
      answer(*s, p.irq, p.invite, reply, csta::requestName(p.request.kind));
      if (status < 300 && tx.kind == Tx::Kind::Reinvite && !ended) {
        progress(c, tx.hold ? RccProgress::Held : RccProgress::Retrieved);
      }
      return;
    }
    case Tx::Kind::Event:
    case Tx::Kind::Subscribe:
    case Tx::Kind::Answer:
      return;
  }
}

void Rcc::onFarRoute(const std::string& callId, const grpc::Status& status,
                     const v1::RoutePlan& plan) {
  Call* c = findCall(callId);
  if (!c) return;
  if (!status.ok()) {
    log::get("call")->warn("rcc call {}: routing failed: {}", callId, status.error_message());
    endCall(*c, 503, "routing failed");
    return;
  }
  const v1::RouteTarget* target = nullptr;
  for (const auto& g : plan.groups()) {
    for (const auto& t : g.targets()) {
      if (t.has_trunk() && !target) target = &t;
    }
  }
  if (plan.outcome() != v1::RoutePlan::OUTCOME_ROUTED || !target) {
    int sipStatus = 404;
    switch (plan.outcome()) {
      case v1::RoutePlan::OUTCOME_FORBIDDEN: sipStatus = 403; break;
      case v1::RoutePlan::OUTCOME_INCOMPLETE: sipStatus = 484; break;
      case v1::RoutePlan::OUTCOME_ALL_TRUNKS_DOWN: sipStatus = 503; break;
      case v1::RoutePlan::OUTCOME_UNAVAILABLE: sipStatus = 480; break;
      default: break;
    }
    log::get("call")->info("rcc call {}: {} cannot be called: {} {}", callId, c->called,
                           v1::RoutePlan::Outcome_Name(plan.outcome()),
                           target ? "" : "(remote call control reaches trunk targets only)");
    endCall(*c, sipStatus, "far end not routable");
    return;
  }
  const v1::TrunkTarget& t = target->trunk();
  c->farTrunk = t.trunk();
  std::string proto = t.address().transport() == v1::TRANSPORT_TCP ? "tcp" : "udp";
  std::string fromHost = d_.contacts.hostOf(Side::Trunk, proto);
  std::string callerId = target->caller_id().empty() ? rccNumberOf(c->device) : target->caller_id();
  std::string from = "<sip:" + escapeUser(callerId) + "@" + fromHost + ">";
  std::string to = t.request_uri();
  if (auto semi = to.find(';'); semi != std::string::npos) to.resize(semi);
  to = "<" + to + ">";
  std::string sipCallId = randomToken(24) + "@" + d_.config.domain;
  c->farLeg = nta_leg_tcreate(d_.agent, &Rcc::callLegCallback,
                              reinterpret_cast<nta_leg_magic_t*>(&c->farMagic),
                              SIPTAG_CALL_ID_STR(sipCallId.c_str()), SIPTAG_FROM_STR(from.c_str()),
                              SIPTAG_TO_STR(to.c_str()), TAG_END());
  if (c->farLeg) nta_leg_tag(c->farLeg, nullptr);
  c->farContact = d_.contacts.contact(Side::Trunk, proto, "rcc");
  c->farInvite = std::make_unique<Tx>();
  c->farInvite->rcc = this;
  c->farInvite->kind = Tx::Kind::FarInvite;
  c->farInvite->owner = c->id;
  std::string hop = nextHopOf(t.address());
  if (c->farLeg) {
    c->farInvite->orq = nta_outgoing_tcreate(
        c->farLeg, &Rcc::txResponse, reinterpret_cast<nta_outgoing_magic_t*>(c->farInvite.get()),
        URL_STRING_MAKE(hop.c_str()), SIP_METHOD_INVITE, URL_STRING_MAKE(t.request_uri().c_str()),
        SIPTAG_CONTACT_STR(c->farContact.c_str()),
        SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()), SIPTAG_ALLOW_STR(kCallAllow),
        SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(c->phoneOffer.c_str()),
        TPTAG_IDENT("trunk"), TAG_END());
  }
  if (!c->farInvite->orq) {
    endCall(*c, 503, "cannot send INVITE to the far end");
    return;
  }
  c->farUri = t.request_uri();
  armRingTimer(*c);
  publish(*c);
  log::get("call")->info("rcc call {}: INVITE -> {} on trunk {} with the phone's offer", callId,
                         t.request_uri(), t.trunk());
}

int Rcc::callLegCallback(nta_leg_magic_t* magic, nta_leg_t*, nta_incoming_t* irq,
                         const sip_t* sip) noexcept {
  auto* m = reinterpret_cast<Call::LegMagic*>(magic);
  return guardedRequest("call " + m->call->id, "request handling",
                        [&] { m->call->rcc->onCallRequest(*m->call, m->phone, irq, sip); });
}

void Rcc::onCallRequest(Call& c, bool fromPhone, nta_incoming_t* irq, const sip_t* sip) {
  sip_method_t method = sip->sip_request->rq_method;
  Method label = methodFromName(sip->sip_request->rq_method_name);
  d_.metrics.countRequest(label, Side::Trunk);
  auto reply = [&](int status, const char* phrase = nullptr) {
    nta_incoming_treply(irq, status, phrase ? phrase : sip_status_phrase(status),
                        SIPTAG_SERVER_STR(d_.config.userAgent.c_str()), TAG_END());
    d_.metrics.countResponse(label, status, Side::Trunk);
    nta_incoming_destroy(irq);
  };
  if (method == sip_method_ack) {
    nta_incoming_destroy(irq);
    return;
  }
  if (c.state == Call::State::Ended) {
    reply(method == sip_method_bye ? 200 : 481);
    return;
  }
  switch (method) {
    case sip_method_bye:
      reply(200);
      log::get("call")->info("rcc call {}: BYE from the {}", c.id, fromPhone ? "PBX phone" : "far end");
      endCall(c, 0, fromPhone ? "the PBX phone hung up" : "the far end hung up");
      return;
    case sip_method_notify:  // REFER progress (RFC 3515)
    case sip_method_info:
    case sip_method_options:
    case sip_method_update:
      reply(200);
      return;
    case sip_method_invite:
      // A re-INVITE from a party is not relayed (the two sides negotiated end to end).
      reply(488, "Not Acceptable Here");
      return;
    default:
      reply(501);
      return;
  }
}

void Rcc::progress(Call& c, RccProgress step) {
  Session* s = findSession(c.sessionId);
  if (!s) return;
  sendEvents(*s, s->logic.progress(c.id, step));
}

void Rcc::endCall(Call& c, int status, const char* why) {
  if (c.state == Call::State::Ended) return;
  const Call::State was = c.state;
  c.state = Call::State::Ended;
  publish(c);
  log::get("call")->info("rcc call {}: ended ({}{}{})", c.id, why, status ? ", " : "",
                         status ? std::to_string(status) : std::string());
  bool phoneByeSent = std::string_view(why) == "the PBX phone hung up";
  bool farByeSent = std::string_view(why) == "the far end hung up";
  // The phone's side.
  if (was == Call::State::PhoneRinging) {
    if (c.phoneInvite && c.phoneInvite->orq && !c.phoneInvite->final) {
      if (nta_outgoing_t* cancel = nta_outgoing_tcancel(
              c.phoneInvite->orq, nullptr, nullptr,
              TAG_IF(nta_outgoing_status(c.phoneInvite->orq) < 100, NTATAG_CANCEL_408(1)),
              TAG_END())) {
        c.cancels.push_back(cancel);
      }
    }
  } else if (!phoneByeSent && c.phoneLeg) {
    if (!c.phoneAcked) {
      std::string reject = rccRejectAnswer(c.phoneOffer);
      std::string cseq = std::to_string(c.phoneCseq) + " ACK";
      nta_outgoing_destroy(nta_outgoing_tcreate(
          c.phoneLeg, nullptr, nullptr, nullptr, SIP_METHOD_ACK, nullptr,
          SIPTAG_CSEQ_STR(cseq.c_str()), SIPTAG_CONTENT_TYPE_STR("application/sdp"),
          SIPTAG_PAYLOAD_STR(reject.c_str()), TPTAG_IDENT("trunk"), TAG_END()));
      c.phoneAcked = true;
    }
    nta_outgoing_destroy(nta_outgoing_tcreate(c.phoneLeg, nullptr, nullptr, nullptr, SIP_METHOD_BYE,
                                              nullptr, TPTAG_IDENT("trunk"), TAG_END()));
  }
  // The far end's side.
  if (c.farInvite && c.farInvite->orq && !farByeSent) {
    if (!c.farInvite->final) {
      if (nta_outgoing_t* cancel = nta_outgoing_tcancel(
              c.farInvite->orq, nullptr, nullptr,
              TAG_IF(nta_outgoing_status(c.farInvite->orq) < 100, NTATAG_CANCEL_408(1)),
              TAG_END())) {
        c.cancels.push_back(cancel);
      }
    } else if (was == Call::State::Connected) {
      nta_outgoing_destroy(nta_outgoing_tcreate(c.farLeg, nullptr, nullptr, nullptr, SIP_METHOD_BYE,
                                                nullptr, TPTAG_IDENT("trunk"), TAG_END()));
    }
  }
  if (Session* s = findSession(c.sessionId)) {
    // Requests waiting for this call's re-INVITE/REFER: failed.
    for (auto& tx : c.txs) {
      auto pit = s->pending.find(tx->pending);
      if (pit == s->pending.end()) continue;
      RccReply r = s->logic.actionDone(pit->second.request, 487);
      answer(*s, pit->second.irq, pit->second.invite, r, csta::requestName(pit->second.request.kind));
      s->pending.erase(pit);
    }
    sendEvents(*s, s->logic.cleared(c.id, status));
  }
  reap();
}

void Rcc::holdOrRetrieve(Session& s, Call& c, nta_incoming_t* irq, const csta::Request& request,
                         bool hold) {
  std::uint64_t pid = nextPending_++;
  s.pending.emplace(pid, Pending{irq, false, request});
  auto tx = std::make_unique<Tx>();
  tx->rcc = this;
  tx->kind = Tx::Kind::Reinvite;
  tx->owner = c.id;
  tx->pending = pid;
  tx->hold = hold;
  std::string sdp = rccDirectionOffer(c.farAnswer, hold, ++c.sdpVersion);
  tx->orq = nta_outgoing_tcreate(c.phoneLeg, &Rcc::txResponse, reinterpret_cast<nta_outgoing_magic_t*>(tx.get()),
                                 nullptr, SIP_METHOD_INVITE, nullptr,
                                 SIPTAG_CONTACT_STR(c.phoneContact.c_str()),
                                 SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()),
                                 SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                                 SIPTAG_PAYLOAD_STR(sdp.c_str()), TPTAG_IDENT("trunk"), TAG_END());
  if (!tx->orq) {
    s.pending.erase(pid);
    answer(s, irq, false, s.logic.actionDone(request, 500), csta::requestName(request.kind));
    return;
  }
  log::get("call")->info("rcc call {}: re-INVITE the PBX phone {}", c.id, hold ? "on hold" : "off hold");
  c.txs.push_back(std::move(tx));
}

void Rcc::transfer(Session& s, Call& c, nta_incoming_t* irq, const csta::Request& request) {
  std::uint64_t pid = nextPending_++;
  s.pending.emplace(pid, Pending{irq, false, request});
  auto tx = std::make_unique<Tx>();
  tx->rcc = this;
  tx->kind = Tx::Kind::Refer;
  tx->owner = c.id;
  tx->pending = pid;
  const auto& a = c.phone.address();
  std::string referTo = "<sip:" + escapeUser(rccNumberOf(request.transferredTo)) + "@" +
                        (a.host().find(':') != std::string::npos ? "[" + a.host() + "]" : a.host()) +
                        ":" + std::to_string(a.port()) + ">";
  tx->orq = nta_outgoing_tcreate(c.phoneLeg, &Rcc::txResponse, reinterpret_cast<nta_outgoing_magic_t*>(tx.get()),
                                 nullptr, SIP_METHOD_REFER, nullptr,
                                 SIPTAG_REFER_TO_STR(referTo.c_str()),
                                 SIPTAG_CONTACT_STR(c.phoneContact.c_str()),
                                 SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()),
                                 TPTAG_IDENT("trunk"), TAG_END());
  if (!tx->orq) {
    s.pending.erase(pid);
    answer(s, irq, false, s.logic.actionDone(request, 500), csta::requestName(request.kind));
    return;
  }
  log::get("call")->info("rcc call {}: REFER the PBX phone to {}", c.id, referTo);
  c.txs.push_back(std::move(tx));
}

// AnswerCall on a call of the phone's own that rings on it: the de facto remote-control
// event of SIP desk phones and PBXs (Event: talk, as Broadsoft-style PBXs, Polycom and Yealink
// phones take it), an out-of-dialog NOTIFY to the phone's line; standard SIP has no way to
// take a phone off-hook. A PBX that does not support it answers 489 (Bad Event) or 405/501:
// the client gets requestIncompatibleWithObject and a line is logged (rcc.md).
void Rcc::answerPhone(Session& s, nta_incoming_t* irq, bool invite, const csta::Request& request) {
  if (!s.sub) {  // no subscription, no phone dialogs: RccSession refuses first; be safe
    answer(s, irq, invite, s.logic.actionDone(request, 501), csta::requestName(request.kind));
    return;
  }
  const Subscription& sub = *s.sub;
  std::uint64_t pid = nextPending_++;
  s.pending.emplace(pid, Pending{irq, invite, request});
  auto tx = std::make_unique<Tx>();
  tx->rcc = this;
  tx->kind = Tx::Kind::Answer;
  tx->owner = s.id;
  tx->pending = pid;
  std::string proto = sub.phone.address().transport() == v1::TRANSPORT_TCP ? "tcp" : "udp";
  std::string from = "<sip:rcc@" + d_.contacts.hostOf(Side::Trunk, proto) + ">";
  std::string to = sub.phone.request_uri();
  if (auto semi = to.find(';'); semi != std::string::npos) to.resize(semi);
  to = "<" + to + ">";
  std::string sipCallId = randomToken(24) + "@" + d_.config.domain;
  tx->leg = nta_leg_tcreate(d_.agent, nullptr, nullptr, SIPTAG_CALL_ID_STR(sipCallId.c_str()),
                            SIPTAG_FROM_STR(from.c_str()), SIPTAG_TO_STR(to.c_str()), TAG_END());
  if (tx->leg) nta_leg_tag(tx->leg, nullptr);
  if (tx->leg) {
    tx->orq = nta_outgoing_tcreate(
        tx->leg, &Rcc::txResponse, reinterpret_cast<nta_outgoing_magic_t*>(tx.get()),
        URL_STRING_MAKE(sub.hop.c_str()), SIP_METHOD_NOTIFY,
        URL_STRING_MAKE(sub.phone.request_uri().c_str()), SIPTAG_EVENT_STR("talk"),
        SIPTAG_SUBSCRIPTION_STATE_STR("active"), SIPTAG_CONTACT_STR(sub.contact.c_str()),
        SIPTAG_USER_AGENT_STR(d_.config.userAgent.c_str()), TPTAG_IDENT("trunk"), TAG_END());
  }
  if (!tx->orq) {
    s.pending.erase(pid);
    answer(s, irq, invite, s.logic.actionDone(request, 500), csta::requestName(request.kind));
    return;
  }
  log::get("call")->info("rcc {}: AnswerCall {}: NOTIFY (Event: talk) -> PBX phone {}", s.id,
                         request.connection.callId, sub.phone.request_uri());
  s.answers.push_back(std::move(tx));
}

void Rcc::armRingTimer(Call& c) {
  if (!c.ringTimer) {
    c.ringTimer = su_timer_create(su_root_task(d_.loop.root()),
                                  static_cast<su_duration_t>(d_.config.noAnswerTimeoutMs));
  }
  if (c.ringTimer) {
    su_timer_set(c.ringTimer, &Rcc::onRingTimer, reinterpret_cast<su_timer_arg_t*>(&c));
  }
}

void Rcc::onRingTimer(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) noexcept {
  auto* c = reinterpret_cast<Call*>(arg);
  try {
    if (c->state == Call::State::PhoneRinging || c->state == Call::State::FarCalling) {
      c->rcc->endCall(*c, 480, c->state == Call::State::PhoneRinging
                                   ? "the PBX phone did not answer in time"
                                   : "the far end did not answer in time");
    }
  } catch (const std::exception& e) {
    log::get("call")->error("rcc call {}: ring timeout handling failed: {}", c->id, e.what());
  }
}

// Sofia objects are destroyed from a posted task, never inside their own callbacks.
void Rcc::reap() {
  if (shuttingDown_ || reapPosted_) return;
  reapPosted_ = true;
  std::weak_ptr<Rcc*> weak = self_;
  d_.loop.post([weak] {
    if (auto self = weak.lock()) (*self)->sweep();
  });
}

void Rcc::sweep() {
  reapPosted_ = false;
  for (auto it = calls_.begin(); it != calls_.end();) {
    Call& c = *it->second;
    if (c.state != Call::State::Ended) {
      ++it;
      continue;
    }
    c.txs.clear();
    c.phoneInvite.reset();
    c.farInvite.reset();
    for (nta_outgoing_t* cancel : c.cancels) nta_outgoing_destroy(cancel);
    if (c.ringTimer) su_timer_destroy(c.ringTimer);
    if (c.phoneLeg) nta_leg_destroy(c.phoneLeg);
    if (c.farLeg) nta_leg_destroy(c.farLeg);
    it = calls_.erase(it);
  }
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = *it->second;
    s.finished.clear();
    if (s.sub) s.sub->done.clear();
    if (!s.ended) {
      ++it;
      continue;
    }
    s.eventTx.reset();
    s.answers.clear();
    s.sub.reset();
    s.oldSubs.clear();
    if (s.leg) nta_leg_destroy(s.leg);
    if (s.inviteIrq) nta_incoming_destroy(s.inviteIrq);
    it = sessions_.erase(it);
  }
  d_.metrics.setRccSessions(sessions_.size());
}

}  // namespace medius::gateway
