#include "medius/gateway/gateway.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>
#include <stdexcept>
#include <string_view>

#include <sofia-sip/msg.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/su_strlst.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url_tag.h>

#include "medius/common/logging.hpp"
#include "medius/gateway/request_checks.hpp"
#include "medius/gateway/sip_util.hpp"

namespace medius::gateway {

namespace {

constexpr const char* kInternal = "internal";
constexpr const char* kTrunk = "trunk";

v1::Transport transportOf(const char* proto) {
  if (!proto) return v1::TRANSPORT_UNSPECIFIED;
  if (strcasecmp(proto, "udp") == 0) return v1::TRANSPORT_UDP;
  if (strcasecmp(proto, "tcp") == 0) return v1::TRANSPORT_TCP;
  if (strcasecmp(proto, "tls") == 0) return v1::TRANSPORT_TLS;
  if (strcasecmp(proto, "ws") == 0) return v1::TRANSPORT_WS;
  if (strcasecmp(proto, "wss") == 0) return v1::TRANSPORT_WSS;
  return v1::TRANSPORT_UNSPECIFIED;
}

// nta reports a bind failure with whatever errno its last attempt left (often EFAULT).
std::string errnoText() {
  return std::string(std::strerror(errno)) + " (is the address local and the port free?)";
}

}  // namespace

Gateway::Gateway(SipLoop& loop, const GatewayConfig& config, RegistrarClient& registrar,
                 GatewayMetrics& metrics, GatewayState& state, std::optional<CallServices> calls)
    : loop_(loop),
      config_(config),
      registrar_(registrar),
      metrics_(metrics),
      state_(state),
      authRealm_(config.authRealm.empty() ? config.domain : config.authRealm),
      flood_(config.flood, SystemClock::instance()),
      authGuard_(config.authLimits, SystemClock::instance()),
      registerTx_(SystemClock::instance()),
      challengePool_(SystemClock::instance()),
      self_(std::make_shared<Gateway*>(this)),
      flows_(FlowSettings{static_cast<std::uint32_t>(config.flowTimerSeconds),
                          config.flowPingIntervalMs, config.flowUdpTimeoutMs,
                          std::max<std::int64_t>(600000, config.flowUdpTimeoutMs), 86400000}) {
  assert(loop_.isLoopThread());
  redirectSofiaLogs();
  const std::string& first = config_.internalListen.at(0);
  // NTATAG_SERVER_RPORT(2): answer to the source address and port of every request, as
  // if it had asked for rport (RFC 3581). Internal clients sit behind NATs and the load
  // balancer; the sent-by port in their Via is often unreachable. nta already does this
  // on TCP. The default (1) would only do it for clients that asked.
  // TPTAG_PONG2PING(1): a CRLFCRLF keepalive ping on a TCP/TLS connection (RFC 5626 section
  // 4.4.1) gets its CRLF pong. TPTAG_STUN_SERVER(1): a STUN Binding request on a UDP SIP
  // socket (RFC 5626 section 4.4.2 keepalive) is answered by Sofia's built-in STUN server
  // with the mapped address (without it Sofia answers an error).
  // NTATAG_BAD_REQ_MASK(0): requests with unparsable headers reach us instead of getting
  // nta's stateless "400 Bad X Header" (no Server header, not counted). Fatal errors and
  // missing essential headers (sip_sanity_check) are still answered by nta.
  // NTATAG_UA(1): we are a user agent on both legs (a B2BUA), not a proxy: nta
  // retransmits our 2xx to INVITE until the ACK and hands that ACK to the transaction,
  // and ACKs+BYEs stray 2xx of INVITEs we destroyed.
  // NTATAG_SIPFLAGS(... MSG_DO_EXTRACT_COPY): every parsed header keeps the text it was
  // read from (h_data/h_len), so the request checks (request_checks.hpp) can refuse what
  // Sofia's liberal parser accepts: extra spaces in the Request-Line, LWS inside <>
  // (RFC 4475 3.1.2.9, 3.1.2.10, 3.1.2.14). MSG_DO_CANONIC is nta's default.
  // The message callback gets every request that matches no transaction and no dialog leg
  // (there is no default leg): the flood guard sees it before a transaction exists.
  agent_ = nta_agent_create(loop_.root(), URL_STRING_MAKE(first.c_str()), &Gateway::messageCallback,
                            reinterpret_cast<nta_agent_magic_t*>(this),
                            TPTAG_IDENT(kInternal), NTATAG_SERVER_RPORT(2),
                            TPTAG_PONG2PING(1), TPTAG_STUN_SERVER(1),
                            NTATAG_BAD_REQ_MASK(0), NTATAG_UA(1),
                            NTATAG_SIPFLAGS(MSG_DO_CANONIC | MSG_DO_EXTRACT_COPY), TAG_END());
  if (!agent_) {
    throw std::runtime_error("cannot listen on " + first + " (internal side): " + errnoText());
  }
  auto addTport = [this](const std::string& url, const char* ident) {
    if (nta_agent_add_tport(agent_, URL_STRING_MAKE(url.c_str()), TPTAG_IDENT(ident),
                            TAG_END()) < 0) {
      std::string why = errnoText();
      nta_agent_destroy(agent_);
      agent_ = nullptr;
      throw std::runtime_error("cannot listen on " + url + " (" + ident + " side): " + why);
    }
  };
  for (std::size_t i = 1; i < config_.internalListen.size(); ++i) {
    addTport(config_.internalListen[i], kInternal);
  }
  for (const auto& url : config_.trunkListen) addTport(url, kTrunk);
  // SIP over TLS (sip_tls.hpp): the files are checked, Sofia binds with a directory made
  // from them, and SipTls takes over the SSL_CTX Sofia created. Peer certificates are
  // verified by SipTls's own callback; Sofia's policy only adds its post-handshake check
  // (a certificate is required, and must verify) when client certificates are required.
  auto bindTls = [this](const SipTlsSettings& tls, const char* ident, SipTlsSide tlsSide) {
    std::unique_ptr<SipTls> made;
    try {
      made = std::make_unique<SipTls>(
          tls, metrics_,
          [&](const char* dir) {
            return nta_agent_add_tport(
                agent_, URL_STRING_MAKE(tls.listen.c_str()), TPTAG_IDENT(ident),
                TPTAG_CERTIFICATE(dir),
                TPTAG_TLS_VERIFY_POLICY(tls.requireClientCert ? TPTLS_VERIFY_IN : TPTLS_VERIFY_NONE),
                TAG_END());
          },
          tlsSide);
    } catch (const std::exception& e) {
      std::string why = e.what();
      nta_agent_destroy(agent_);
      agent_ = nullptr;
      throw std::runtime_error("cannot listen on " + tls.listen + " (" + ident + " side, TLS): " +
                               why);
    }
    log::get("sip")->info(
        "TLS on the {} side: certificate {} (serial {}), client certificates {}{}", ident,
        made->credentials().subject, made->credentials().serial,
        tls.caFile.empty()         ? "not asked for"
        : tls.requireClientCert    ? "required"
                                   : "verified when presented",
        tlsSide == SipTlsSide::Trunk ? ", each trunk's pinned to its tls_name"
        : tls.trustedNames.empty()   ? ""
                                     : ", trusted peers named in trusted_names");
    made->setConnectionGate([this](const std::string& host, std::uint32_t port) {
      return admitConnection(host, port);
    });
    return made;
  };
  if (config_.internalTls) tls_ = bindTls(*config_.internalTls, kInternal, SipTlsSide::Internal);
  if (config_.trunkTls) {
    try {
      trunkTls_ = bindTls(*config_.trunkTls, kTrunk, SipTlsSide::Trunk);
    } catch (...) {
      tls_.reset();  // the agent is gone
      throw;
    }
  }
  std::int64_t reloadS = 0;
  for (const auto* tls : {&config_.internalTls, &config_.trunkTls}) {
    if (*tls && (*tls)->reloadIntervalS > 0) {
      reloadS = reloadS == 0 ? (*tls)->reloadIntervalS : std::min(reloadS, (*tls)->reloadIntervalS);
    }
  }
  if (reloadS > 0) {
    tlsTimer_ = su_timer_create(su_root_task(loop_.root()), static_cast<su_duration_t>(reloadS * 1000));
    if (tlsTimer_) {
      su_timer_set_for_ever(tlsTimer_, &Gateway::tlsReloadTimer,
                            reinterpret_cast<su_timer_arg_t*>(this));
    }
  }

  // Flows of registered clients: one round a second (flow_table.hpp).
  flowTimer_ = su_timer_create(su_root_task(loop_.root()),
                               static_cast<su_duration_t>(std::min<std::int64_t>(
                                   1000, config_.flowPingIntervalMs)));
  if (flowTimer_) {
    su_timer_set_for_ever(flowTimer_, &Gateway::flowTimer, reinterpret_cast<su_timer_arg_t*>(this));
  }

  // The probes' leg. Without a URL it would become nta's default leg, which takes every
  // request before the message callback; with this URL and method it matches no request
  // that a peer sends in practice (and one that does gets 501).
  leg_ = nta_leg_tcreate(agent_, &Gateway::outgoingLegCallback, nullptr, NTATAG_NO_DIALOG(1),
                         URLTAG_URL("sip:outgoing.medius.invalid"),
                         NTATAG_METHOD("X-MEDIUS-OUTGOING"), TAG_END());
  if (!leg_) {
    nta_agent_destroy(agent_);
    agent_ = nullptr;
    throw std::runtime_error("cannot create the outgoing nta leg");
  }

  state_.listeners.clear();
  LocalContacts contacts;
  for (tport_t* tp = tport_primaries(nta_agent_tports(agent_)); tp; tp = tport_next(tp)) {
    const tp_name_t* name = tport_name(tp);
    if (name->tpn_ident && name->tpn_proto && name->tpn_host && name->tpn_port) {
      std::string host = name->tpn_host;
      if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
      contacts.hostPort.emplace(std::string(name->tpn_ident) + "/" + name->tpn_proto,
                                host + ":" + name->tpn_port);
    }
    v1::SocketAddress address;
    address.set_host(name->tpn_host ? name->tpn_host : "");
    address.set_port(static_cast<std::uint32_t>(name->tpn_port ? std::atoi(name->tpn_port) : 0));
    address.set_transport(transportOf(name->tpn_proto));
    state_.listeners.push_back(address);
    log::get("sip")->info("listening on {}:{}/{} ({} side)", address.host(), address.port(),
                          name->tpn_proto ? name->tpn_proto : "?",
                          name->tpn_ident ? name->tpn_ident : "?");
  }

  if (calls) {
    b2bua_ = std::make_unique<B2bua>(B2bua::Deps{loop_, agent_, config_, calls->routing, registrar_,
                                                 calls->media, metrics_, calls->directory,
                                                 calls->cdr, contacts});
    rcc_ = std::make_unique<Rcc>(
        Rcc::Deps{loop_, agent_, config_, calls->routing, metrics_, calls->directory,
                  std::move(contacts)});
  }
}

void Gateway::setTrunkLocator(const TrunkLocator* locator) {
  trunks_ = locator;
  if (trunkTls_) trunkTls_->setTrunkLocator(locator);
  if (b2bua_) b2bua_->setTrunkLocator(locator);
}

void Gateway::endAllCalls() {
  assert(loop_.isLoopThread());
  if (b2bua_) b2bua_->endAll("shutdown");
  if (rcc_) rcc_->endAll();
}

void Gateway::onMediaEvent(const std::string& worker, const v1::MediaEvent& event) {
  // B2bua::onMediaEvent only posts to the loop; the B2bua lives as long as the Gateway,
  // which main destroys only after the media client (the event source) is stopped.
  if (b2bua_) b2bua_->onMediaEvent(worker, event);
}

Gateway::~Gateway() {
  assert(loop_.isLoopThread());
  if (tlsTimer_) su_timer_destroy(tlsTimer_);
  if (flowTimer_) su_timer_destroy(flowTimer_);
  rcc_.reset();
  b2bua_.reset();
  failPending();
  self_.reset();
  for (auto& [id, p] : probes_) nta_outgoing_destroy(p->orq);
  probes_.clear();
  for (auto& [key, tp] : flowTports_) tport_unref(tp);
  flowTports_.clear();
  if (leg_) nta_leg_destroy(leg_);
  // Destroying the agent drops transactions still retransmitting; it must come after
  // the leg and before the root.
  if (agent_) nta_agent_destroy(agent_);
  tls_.reset();  // after the agent: no handshake can call into it any more
  trunkTls_.reset();
}

bool Gateway::reloadTls(bool force) {
  assert(loop_.isLoopThread());
  bool internal = tls_ && tls_->reload(force);
  bool trunk = trunkTls_ && trunkTls_->reload(force);
  return internal || trunk;
}

void Gateway::tlsReloadTimer(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) noexcept {
  try {
    reinterpret_cast<Gateway*>(arg)->reloadTls(false);
  } catch (const std::exception& e) {
    log::get("sip")->error("TLS reload failed: {}", e.what());
  }
}

std::uint16_t Gateway::tlsPort(Side side) const {
  const char* ident = side == Side::Internal ? kInternal : kTrunk;
  for (tport_t* tp = tport_primaries(nta_agent_tports(agent_)); tp; tp = tport_next(tp)) {
    const tp_name_t* name = tport_name(tp);
    if (name->tpn_proto && strcasecmp(name->tpn_proto, "tls") == 0 && name->tpn_port &&
        name->tpn_ident && std::strcmp(name->tpn_ident, ident) == 0) {
      return static_cast<std::uint16_t>(std::atoi(name->tpn_port));
    }
  }
  return 0;
}

Gateway::TlsPeer Gateway::tlsPeerOf(msg_t* msg, Side side) const {
  TlsPeer peer;
  tport_t* tp = nta_incoming_transport(agent_, nullptr, msg);
  if (!tp) return peer;
  peer.tls = tport_has_tls(tp);
  peer.verified = peer.tls && tport_is_verified(tp);
  if (peer.verified && side == Side::Internal && config_.internalTls &&
      !config_.internalTls->trustedNames.empty()) {
    // The connection's certificate names (CN, SAN DNS), valid while msg is being delivered.
    std::vector<std::string> subjects;
    if (const su_strlst_t* list = tport_delivered_from_subjects(tp, msg)) {
      for (usize_t i = 0; i < su_strlst_len(list); ++i) {
        if (const char* item = su_strlst_item(list, i)) subjects.emplace_back(item);
      }
    }
    peer.trusted = subjectsTrusted(subjects, config_.internalTls->trustedNames);
  }
  tport_unref(tp);
  return peer;
}

void Gateway::startDraining() {
  assert(loop_.isLoopThread());
  if (draining_) return;
  draining_ = true;
  state_.draining = true;
  if (b2bua_) b2bua_->stopAccepting();
  log::get("sip")->info("draining: new INVITEs and OPTIONS get 503, {} call(s) go on",
                        activeCalls());
}

void Gateway::stopAccepting() {
  assert(loop_.isLoopThread());
  accepting_ = false;
  if (b2bua_) b2bua_->stopAccepting();
}

std::uint16_t Gateway::boundPort(Side side) const {
  const char* ident = side == Side::Internal ? kInternal : kTrunk;
  for (tport_t* tp = tport_primaries(nta_agent_tports(agent_)); tp; tp = tport_next(tp)) {
    const tp_name_t* name = tport_name(tp);
    if (name->tpn_ident && std::strcmp(name->tpn_ident, ident) == 0 && name->tpn_port) {
      return static_cast<std::uint16_t>(std::atoi(name->tpn_port));
    }
  }
  return 0;
}

std::size_t Gateway::serverTransactions() const {
  usize_t created = 0;
  nta_agent_get_stats(agent_, NTATAG_S_SERVER_TR_REF(created), TAG_END());
  return created;
}

std::uint64_t Gateway::probe(const v1::SocketAddress& address, Done done) {
  return sendOptions(address, kTrunk, "", std::move(done));
}

std::uint64_t Gateway::sendOptions(const v1::SocketAddress& address, const char* ident,
                                   const std::string& requestUri, Done done) {
  assert(loop_.isLoopThread());
  const char* transport = address.transport() == v1::TRANSPORT_TCP   ? "tcp"
                          : address.transport() == v1::TRANSPORT_TLS ? "tls"
                                                                     : "udp";
  bool ipv6 = address.host().find(':') != std::string::npos;
  std::string hostPort = (ipv6 ? "[" + address.host() + "]" : address.host()) + ":" +
                         std::to_string(address.port());
  std::string uri = (address.transport() == v1::TRANSPORT_TLS ? "sips:" : "sip:") + hostPort +
                    ";transport=" + transport;
  std::string from = "<sip:medius@" + config_.domain + ">";
  auto p = std::make_unique<Probe>();
  p->gateway = this;
  p->id = nextProbe_++;
  p->done = std::move(done);
  // nta adds the From tag, To (from the Request-URI), Call-ID, CSeq and Via. The default
  // leg (NTATAG_NO_DIALOG) is only the vehicle: nta_outgoing_tcreate needs a leg.
  // A flow's ping names the client's Contact and goes to the flow's address (the route).
  const bool routed = !requestUri.empty();
  p->orq = nta_outgoing_tcreate(leg_, &Gateway::probeCallback,
                                reinterpret_cast<nta_outgoing_magic_t*>(p.get()),
                                routed ? URL_STRING_MAKE(uri.c_str()) : nullptr,
                                SIP_METHOD_OPTIONS,
                                URL_STRING_MAKE(routed ? requestUri.c_str() : uri.c_str()),
                                SIPTAG_FROM_STR(from.c_str()), SIPTAG_MAX_FORWARDS_STR("70"),
                                SIPTAG_USER_AGENT_STR(config_.userAgent.c_str()),
                                SIPTAG_ACCEPT_STR("application/sdp"), TPTAG_IDENT(ident),
                                TAG_END());
  if (!p->orq) {
    log::get("sip")->warn("cannot send OPTIONS to {}", uri);
    return 0;
  }
  std::uint64_t id = p->id;
  probes_.emplace(id, std::move(p));
  return id;
}

void Gateway::cancel(std::uint64_t handle) {
  assert(loop_.isLoopThread());
  auto it = probes_.find(handle);
  if (it == probes_.end()) return;
  // For a non-INVITE that is not completed, nta detaches our callback and lets the
  // transaction run out its own timer F (T1x64) internally; nothing reaches us again.
  nta_outgoing_destroy(it->second->orq);
  probes_.erase(it);
}

int Gateway::probeCallback(nta_outgoing_magic_t* magic, nta_outgoing_t* orq,
                           const sip_t* sip) noexcept {
  auto* p = reinterpret_cast<Probe*>(magic);
  int status = sip && sip->sip_status ? static_cast<int>(sip->sip_status->st_status)
                                      : nta_outgoing_status(orq);
  if (status < 200) return 0;
  Gateway* self = p->gateway;
  // Responses nta made itself (timeout, transport error) carry its internal flag
  // (kNtaInternalMsg, sip_util.hpp).
  bool local = !sip || (sip->sip_flags & kNtaInternalMsg) != 0;
  ProbeResult result = !local ? ProbeResult::Ok
                       : status == 408 ? ProbeResult::Timeout
                                       : ProbeResult::Error;
  std::uint32_t code = local ? 0 : static_cast<std::uint32_t>(status);
  auto it = self->probes_.find(p->id);
  if (it == self->probes_.end()) return 0;
  Done done = std::move(it->second->done);
  nta_outgoing_destroy(orq);
  self->probes_.erase(it);  // frees p
  // nta delays its own answers until tcreate has returned; posting keeps the promise
  // "never inside probe()" without relying on that.
  self->loop_.post([done = std::move(done), result, code] { done(result, code); });
  return 0;
}

int Gateway::outgoingLegCallback(nta_leg_magic_t*, nta_leg_t*, nta_incoming_t*,
                                 const sip_t*) noexcept {
  return 501;
}

int Gateway::messageCallback(nta_agent_magic_t* magic, nta_agent_t* agent, msg_t* msg,
                             sip_t* sip) noexcept {
  auto* self = reinterpret_cast<Gateway*>(magic);
  if (!sip || !sip->sip_request) {
    // A response that matches no client transaction: nta discarded those before we had
    // a message callback.
    nta_msg_discard(agent, msg);
    return 0;
  }
  try {
    self->onMessage(msg, sip);
  } catch (const std::exception& e) {
    log::get("sip")->error("request handling failed: {}", e.what());
  } catch (...) {
    log::get("sip")->error("request handling failed");
  }
  return 0;
}

Side Gateway::sideOfMessage(msg_t* msg) const {
  // During the message callback nta knows the transport that delivered msg.
  Side side = Side::Internal;
  if (tport_t* tp = nta_incoming_transport(agent_, nullptr, msg)) {
    const tp_name_t* name = tport_name(tp);
    if (name && name->tpn_ident && std::strcmp(name->tpn_ident, kTrunk) == 0) side = Side::Trunk;
    tport_unref(tp);
  }
  return side;
}

void Gateway::onMessage(msg_t* msg, sip_t* sip) {
  const sip_request_t* rq = sip->sip_request;
  Method method = methodFromName(rq->rq_method_name ? rq->rq_method_name : "");
  Side side = sideOfMessage(msg);
  if (rq->rq_method == sip_method_ack) {
    // An ACK that matched no transaction and no dialog: never answered (an ACK of our
    // stateless 503 lands here too).
    metrics_.countRequest(method, side);
    nta_msg_discard(agent_, msg);
    return;
  }
  // Asked now: the certificate names are readable only while msg is being delivered.
  TlsPeer peer = tlsPeerOf(msg, side);
  if (!admit(msg, sip, method, side, peer.trusted)) return;
  if (rq->rq_method == sip_method_register) {
    onRegister(msg, sip, side, peer);
    return;
  }

  // From here on as nta's leg_recv does for a leg callback: a server transaction, our
  // handler, then the returned status answered and the transaction released.
  nta_incoming_t* irq = nta_incoming_create(agent_, nullptr, msg, sip, TAG_END());
  if (!irq) {  // msg is consumed even on failure
    log::get("sip")->warn("cannot create a server transaction for {}", methodLabel(method));
    return;
  }
  int status = 500;
  try {
    status = onRequest(irq, sip, peer);
  } catch (const std::exception& e) {
    log::get("sip")->error("request handling failed: {}", e.what());
  } catch (...) {
    log::get("sip")->error("request handling failed");
  }
  if (status == 0) return;
  if (status < 100 || status > 699 || (rq->rq_method == sip_method_invite && status < 300 &&
                                       status >= 200)) {
    status = 500;
  }
  if (nta_incoming_status(irq) < 200) nta_incoming_treply(irq, status, nullptr, TAG_END());
  if (status >= 200) nta_incoming_destroy(irq);
}

void Gateway::noteFloodBans(const std::string& host) {
  metrics_.setFloodSources(flood_.sources(), flood_.bannedSources());
  if (flood_.bansTotal() != floodBans_) {
    metrics_.countFloodBans(flood_.bansTotal() - floodBans_);
    floodBans_ = flood_.bansTotal();
    log::get("sip")->warn("flood: source {} banned for {} s ({} requests or TLS handshakes in "
                          "{} ms)",
                          host, flood_.settings().banSeconds, flood_.settings().maxRequests,
                          flood_.settings().windowMs);
  }
}

bool Gateway::admitConnection(const std::string& host, std::uint32_t port) {
  auto ip = IpAddress::parse(host);
  if (!ip) return true;
  bool trusted = trunks_ && !trunks_->trunkAt(host, port).empty();
  FloodVerdict verdict = flood_.checkConnection(*ip, trusted);
  noteFloodBans(host);
  if (verdict == FloodVerdict::Pass) return true;
  log::get("sip")->debug("TLS handshake from {}:{} refused: the source is banned", host, port);
  return false;
}

bool Gateway::admit(msg_t* msg, const sip_t* sip, Method method, Side side, bool trustedPeer) {
  FloodRequest request;
  std::string host;
  std::uint32_t port = 0;
  if (su_addrinfo_t* ai = msg_addrinfo(msg); ai && ai->ai_addr) {
    char text[INET6_ADDRSTRLEN] = "";
    if (ai->ai_addr->sa_family == AF_INET) {
      sockaddr_in sin{};
      std::memcpy(&sin, ai->ai_addr, sizeof sin);
      inet_ntop(AF_INET, &sin.sin_addr, text, sizeof text);
      port = ntohs(sin.sin_port);
      request.source.bytes[10] = request.source.bytes[11] = 0xff;
      std::memcpy(request.source.bytes.data() + 12, &sin.sin_addr, 4);
    } else if (ai->ai_addr->sa_family == AF_INET6) {
      sockaddr_in6 sin6{};
      std::memcpy(&sin6, ai->ai_addr, sizeof sin6);
      inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof text);
      port = ntohs(sin6.sin6_port);
      std::memcpy(request.source.bytes.data(), &sin6.sin6_addr, 16);
    }
    host = text;
  }
  request.userAgent = sip->sip_user_agent && sip->sip_user_agent->g_string
                          ? std::string_view(sip->sip_user_agent->g_string)
                          : std::string_view();
  request.inDialog = sip->sip_to && sip->sip_to->a_tag;
  request.newDialog = sip->sip_request->rq_method == sip_method_invite && !request.inDialog;
  // Trunks and peers with a trusted TLS client certificate are never banned per source.
  request.trusted = (trunks_ && !host.empty() && !trunks_->trunkAt(host, port).empty()) ||
                    trustedPeer;
  request.activeDialogs = b2bua_ ? b2bua_->activeCalls() : 0;
  FloodVerdict verdict = flood_.check(request);
  noteFloodBans(host);
  metrics_.countRequest(method, side);
  switch (verdict) {
    case FloodVerdict::Pass:
      return true;
    case FloodVerdict::DropScanner:
    case FloodVerdict::DropBanned:
      // No answer: a scanner learns nothing, a flood gets nothing to amplify (Kamailio's
      // pike and sanity practice).
      metrics_.countFloodDrop(verdict == FloodVerdict::DropScanner ? "scanner" : "banned");
      log::get("sip")->debug("flood: {} from {} dropped ({})", methodLabel(method), host,
                             verdict == FloodVerdict::DropScanner ? "scanner" : "banned");
      nta_msg_discard(agent_, msg);
      return false;
    case FloodVerdict::RejectDialogs:
    case FloodVerdict::RejectRate: {
      bool dialogs = verdict == FloodVerdict::RejectDialogs;
      metrics_.countFloodReject(dialogs ? "dialogs" : "rate");
      if (method == Method::Invite) {
        metrics_.countCall(side == Side::Trunk ? "inbound" : "outbound", "rejected");
      }
      std::string retryAfter = std::to_string(flood_.settings().retryAfterSeconds);
      // Stateless: no transaction is kept for a request we refuse for load. A retransmitted
      // INVITE gets the same answer again; its ACK comes back to onMessage and is dropped.
      nta_msg_treply(agent_, msg, 503, dialogs ? "Too Many Calls" : "Overloaded",
                     SIPTAG_RETRY_AFTER_STR(retryAfter.c_str()),
                     SIPTAG_SERVER_STR(config_.userAgent.c_str()), TAG_END());
      metrics_.countResponse(method, 503, side);
      return false;
    }
  }
  nta_msg_discard(agent_, msg);
  return false;
}

Side Gateway::sideOf(nta_incoming_t* irq) const {
  tport_t* tp = nta_incoming_transport(agent_, irq, nullptr);
  if (!tp) {
    // ACK transactions keep no transport: ask the transport that delivers the message.
    msg_t* msg = nta_incoming_getrequest(irq);
    tp = nta_incoming_transport(agent_, nullptr, msg);
    msg_destroy(msg);
  }
  Side side = Side::Internal;
  if (tp) {
    const tp_name_t* name = tport_name(tp);
    if (name && name->tpn_ident && std::strcmp(name->tpn_ident, kTrunk) == 0) side = Side::Trunk;
    tport_unref(tp);
  }
  return side;
}

RequestSource Gateway::sourceOf(nta_incoming_t* irq) const {
  msg_t* msg = nta_incoming_getrequest(irq);
  if (!msg) return RequestSource{};
  tport_t* tp = nta_incoming_transport(agent_, irq, nullptr);
  RequestSource source = sourceOfMessage(msg, tp);
  if (tp) tport_unref(tp);
  msg_destroy(msg);
  return source;
}

RequestSource Gateway::sourceOfMessage(msg_t* msg, tport_t* tp) const {
  RequestSource source;
  if (su_addrinfo_t* ai = msg_addrinfo(msg); ai && ai->ai_addr) {
    char host[INET6_ADDRSTRLEN] = "";
    if (ai->ai_addr->sa_family == AF_INET) {
      sockaddr_in sin{};
      std::memcpy(&sin, ai->ai_addr, sizeof sin);
      inet_ntop(AF_INET, &sin.sin_addr, host, sizeof host);
      source.port = ntohs(sin.sin_port);
    } else if (ai->ai_addr->sa_family == AF_INET6) {
      sockaddr_in6 sin6{};
      std::memcpy(&sin6, ai->ai_addr, sizeof sin6);
      inet_ntop(AF_INET6, &sin6.sin6_addr, host, sizeof host);
      source.port = ntohs(sin6.sin6_port);
    }
    source.host = host;
    source.transport = ai->ai_protocol == IPPROTO_TCP ? v1::TRANSPORT_TCP : v1::TRANSPORT_UDP;
  }
  if (tp) {
    if (const tp_name_t* name = tport_name(tp); name && name->tpn_proto) {
      v1::Transport t = transportOf(name->tpn_proto);
      if (t != v1::TRANSPORT_UNSPECIFIED) source.transport = t;
    }
  }
  return source;
}

std::string Gateway::allowFor(Side side) const {
  std::string calls = b2bua_ ? "INVITE, ACK, CANCEL, BYE, UPDATE, " : "";
  return side == Side::Internal ? calls + "REGISTER, OPTIONS" : calls + "OPTIONS";
}

SipReply Gateway::optionsReply(Side side) const {
  SipReply r;
  r.status = 200;
  r.phrase = "OK";
  r.headers = {{"Allow", allowFor(side)},
               {"Accept", "application/sdp"},
               {"Accept-Language", "en"},
               {"Supported", "path"}};
  return r;
}

SipReply Gateway::notImplementedReply(Side side) const {
  SipReply r;
  r.status = 501;
  r.phrase = "Not Implemented";
  r.headers = {{"Allow", allowFor(side)}};
  return r;
}

void Gateway::respond(nta_incoming_t* irq, Method method, Side side, const SipReply& reply) {
  std::string extra = reply.headerText();
  int rc = nta_incoming_treply(irq, reply.status, reply.phrase.c_str(),
                               SIPTAG_SERVER_STR(config_.userAgent.c_str()),
                               TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())),
                               TAG_END());
  if (rc < 0) {
    log::get("sip")->warn("could not send {} to {}", reply.status, methodLabel(method));
    return;
  }
  metrics_.countResponse(method, reply.status, side);
}

void Gateway::respondStateless(msg_t* msg, tport_t* tport, Method method, Side side,
                               const SipReply& reply) {
  std::string extra = reply.headerText();
  // nta_msg_treply consumes msg. NTATAG_TPORT: the connection (or socket) that delivered
  // the request; nta would look it up only while the request is being delivered.
  int rc = nta_msg_treply(agent_, msg, reply.status, reply.phrase.c_str(),
                          TAG_IF(tport, NTATAG_TPORT(tport)),
                          SIPTAG_SERVER_STR(config_.userAgent.c_str()),
                          TAG_IF(!extra.empty(), SIPTAG_HEADER_STR(extra.c_str())), TAG_END());
  if (rc < 0) {
    log::get("sip")->warn("could not send {} to {}", reply.status, methodLabel(method));
    return;
  }
  metrics_.countResponse(method, reply.status, side);
}

std::optional<SipReply> Gateway::refusal(const sip_t* sip, Side side, const RequestSource& source,
                                         const TlsPeer& peer) {
  const sip_request_t* rq = sip->sip_request;
  if (side == Side::Trunk && trunks_) {
    std::string trunk = trunks_->trunkAt(source.host, source.port);
    if (trunk.empty()) {
      // The trunk ACL, for every request (not only INVITE): a scanner on the trunk port
      // learns nothing but this, and nothing acts on what it sent.
      metrics_.countRefused(Refusal::UnknownTrunk);
      log::get("sip")->info("{} from {}:{} on the trunk side refused: not a configured trunk",
                            rq->rq_method_name, source.host, source.port);
      return unknownTrunkReply();
    }
    // A TLS trunk is its certificate: its requests come over a connection whose handshake
    // verified the certificate and found its tls_name (SipTls), never over UDP or TCP.
    if (auto name = trunks_->tlsName(trunk); name && !peer.verified) {
      metrics_.countRefused(Refusal::TrunkTls);
      log::get("sip")->warn("{} from trunk {} ({}:{}) refused: the trunk uses TLS (certificate "
                            "name {}), this came {}",
                            rq->rq_method_name, trunk, source.host, source.port, *name,
                            peer.tls ? "without a verified certificate" : "without TLS");
      return trunkTlsRequiredReply();
    }
  }
  // RFC 3261 8.2 and the RFC 4475 verdicts (request_checks.hpp): before credentials are
  // asked for, so a malformed request costs no registrar round trip.
  if (auto bad = requestErrorReply(
          sip, RequestCheckOptions{config_.rel100, side == Side::Internal && rcc_ != nullptr})) {
    metrics_.countRefused(Refusal::Malformed);
    log::get("sip")->info("{} from {}:{} refused: {} {}", rq->rq_method_name, source.host,
                          source.port, bad->status, bad->phrase);
    return bad;
  }
  if (draining_ && !(sip->sip_to && sip->sip_to->a_tag) &&
      (rq->rq_method == sip_method_invite || rq->rq_method == sip_method_options)) {
    // A new call goes to another gateway: Kamailio fails a 503 over (its failure_route),
    // a trunk tries its next address; the 503 to OPTIONS takes us out of the dispatcher set.
    SipReply reply;
    reply.status = 503;
    reply.phrase = "Service Unavailable";
    reply.headers.emplace_back("Retry-After", std::to_string(config_.retryAfterSeconds));
    if (rq->rq_method == sip_method_invite) {
      metrics_.countCall(side == Side::Trunk ? "inbound" : "outbound", "rejected");
      log::get("call")->info("INVITE {} refused: draining",
                             sip->sip_call_id ? sip->sip_call_id->i_id : "-");
    }
    return reply;
  }
  return std::nullopt;
}

int Gateway::onRequest(nta_incoming_t* irq, const sip_t* sip, const TlsPeer& peer) {
  const sip_request_t* rq = sip->sip_request;
  Method method = methodFromName(rq->rq_method_name ? rq->rq_method_name : "");
  Side side = sideOf(irq);  // counted in admit()
  log::get("sip")->debug("{} from the {} side, Call-ID {}", rq->rq_method_name, sideName(side),
                         sip->sip_call_id ? sip->sip_call_id->i_id : "-");

  if (rq->rq_method == sip_method_ack) {
    // Never answered. An ACK transaction is already terminated: destroying it here
    // frees it when the callback returns (nta leg_recv).
    nta_incoming_destroy(irq);
    return 0;
  }
  RequestSource source = sourceOf(irq);
  if (side == Side::Internal) flowHeard(source);
  if (auto refused = refusal(sip, side, source, peer)) {
    respond(irq, method, side, *refused);
    return refused->status;
  }
  bool trustedPeer = side == Side::Internal && peer.trusted;
  if (trustedPeer && needsCredentials(sip, side, config_.authCalls, false)) {
    metrics_.countTrustedPeerRequest();
    log::get("sip")->debug("{} {} from a trusted TLS peer: no digest credentials needed",
                           rq->rq_method_name, sip->sip_call_id ? sip->sip_call_id->i_id : "-");
  }
  if (needsCredentials(sip, side, config_.authCalls, trustedPeer)) {
    return authenticate(irq, sip, side, method, source);
  }
  return dispatch(irq, sip, side, method, source, CallerIdentity{});
}

int Gateway::dispatch(nta_incoming_t* irq, const sip_t* sip, Side side, Method method,
                      const RequestSource& source, const CallerIdentity& caller) {
  const sip_request_t* rq = sip->sip_request;
  bool newInvite = rq->rq_method == sip_method_invite && !(sip->sip_to && sip->sip_to->a_tag);
  // Remote call control (uaCSTA): a control dialog from an internal client, not a call.
  if (newInvite && rcc_ && side == Side::Internal && Rcc::isControlInvite(sip)) {
    return rcc_->onInvite(irq, sip, source, caller);
  }
  if (newInvite && b2bua_) return b2bua_->onInvite(irq, sip, side, source, caller);

  SipReply reply;
  bool inDialog = sip->sip_to && sip->sip_to->a_tag;
  if (inDialog || rq->rq_method == sip_method_cancel || rq->rq_method == sip_method_bye) {
    // RFC 3261 12.2.2: no dialog exists here yet (a CANCEL that matched a transaction
    // never reaches this leg).
    reply.status = 481;
    reply.phrase = "Call/Transaction Does Not Exist";
  } else if (rq->rq_method == sip_method_options) {
    reply = optionsReply(side);
  } else {
    reply = notImplementedReply(side);
  }
  respond(irq, method, side, reply);
  // A final status returned to nta destroys the transaction after our reply.
  return reply.status;
}

void Gateway::onRegister(msg_t* msg, sip_t* sip, Side side, const TlsPeer& peer) {
  log::get("sip")->debug("REGISTER from the {} side, Call-ID {}", sideName(side),
                         sip->sip_call_id ? sip->sip_call_id->i_id : "-");
  // During delivery nta knows the transport; the reference is kept until the answer.
  tport_t* tport = nta_incoming_transport(agent_, nullptr, msg);
  struct TportRef {
    tport_t* tp;
    ~TportRef() {
      if (tp) tport_unref(tp);
    }
  } held{tport};
  RequestSource source = sourceOfMessage(msg, tport);
  std::string key = RegisterTransactions::keyOf(sip);
  if (!key.empty()) {
    RegisterTransactions::Arrival arrival = registerTx_.arrive(key);
    if (arrival.seen == RegisterTransactions::Seen::Pending) {
      // A retransmission while the registrar works (RFC 3261 17.2.2, Trying): dropped.
      metrics_.countRegisterRetransmission(false);
      nta_msg_discard(agent_, msg);
      return;
    }
    if (arrival.seen == RegisterTransactions::Seen::Answered) {
      // A retransmission after the answer (Completed): the same answer again.
      metrics_.countRegisterRetransmission(true);
      respondStateless(msg, tport, Method::Register, side, *arrival.reply);
      return;
    }
  }
  // From here on the request is pending in registerTx_ until answered (or forgotten).
  const bool reliable = source.transport != v1::TRANSPORT_UDP;
  auto answerNow = [&](SipReply reply) {
    answerRegister(msg, tport, side, key, reliable, std::move(reply));
  };
  if (auto refused = refusal(sip, side, source, peer)) {
    answerNow(*refused);
    return;
  }
  SipReply reply;
  if (side == Side::Trunk) {
    reply.status = 403;
    reply.phrase = "Registration not accepted on the trunk side";
    answerNow(reply);
    return;
  }
  if (!accepting_) {
    reply.status = 503;
    reply.phrase = "Shutting Down";
    reply.headers.emplace_back("Retry-After", std::to_string(config_.retryAfterSeconds));
    answerNow(reply);
    return;
  }
  if (side == Side::Internal) flowHeard(source);
  RegisterContext ctx{source, config_.gatewayId, config_.domain,
                      static_cast<std::uint32_t>(config_.flowTimerSeconds)};
  auto parsed = buildRegisterRequest(sip, ctx);
  if (auto* rejection = std::get_if<SipReply>(&parsed)) {
    log::get("sip")->info("REGISTER rejected: {} {}", rejection->status, rejection->phrase);
    answerNow(*rejection);
    return;
  }
  auto& request = std::get<v1::RegisterRequest>(parsed);
  std::string username = request.has_credentials() ? request.credentials().username() : "";
  if (request.has_credentials() && !authAllowed(ctx.source.host, username, "REGISTER")) {
    answerNow(userLockedReply());
    return;
  }
  if (!request.has_credentials() &&
      std::string_view(request.aor()).ends_with("@" + config_.domain)) {
    // RFC 3261 10.3: a REGISTER without credentials for our domain is challenged before
    // anything else is looked at; with a set issued in advance the registrar need not be
    // asked (challenge_pool.hpp).
    auto set = challengePool_.take();
    refillChallenges();  // an empty pool starts filling, a low one fills up
    if (set) {
      v1::RegisterResponse unauthorized;
      unauthorized.set_result(v1::RegisterResponse::RESULT_UNAUTHORIZED);
      for (auto& c : *set->mutable_challenges()) *unauthorized.add_challenges() = std::move(c);
      metrics_.countLocalRegisterChallenge();
      answerNow(registerReply(unauthorized, std::time(nullptr)));
      return;
    }
  }
  std::uint64_t id = nextId_++;
  held.tp = nullptr;  // now Pending's
  pending_.emplace(id, Pending{msg, tport, side, ctx.source.host, std::move(username),
                               std::move(key), reliable,
                               FlowKey{source.transport, source.host, source.port},
                               request.flow(), request.path_size() == 0, request.aor(),
                               request.contacts_size() > 0 ? request.contacts(0).uri() : ""});
  state_.pendingRegisters = static_cast<std::uint32_t>(pending_.size());
  metrics_.registerPending().Increment();
  log::get("sip")->debug("REGISTER {} relayed to the registrar", request.aor());
  std::weak_ptr<Gateway*> weak = self_;
  SipLoop* loop = &loop_;
  registrar_.registerAsync(
      std::move(request),
      [weak, loop, id](const grpc::Status& status, v1::RegisterResponse response) {
        // gRPC thread: only hand the result over; a stopped loop drops it.
        loop->post([weak, id, status, response = std::move(response)] {
          if (auto self = weak.lock()) (*self)->completeRegister(id, status, response);
        });
      });
}

void Gateway::answerRegister(msg_t* msg, tport_t* tport, Side side, const std::string& key,
                             bool reliable, SipReply reply) {
  respondStateless(msg, tport, Method::Register, side, reply);
  if (!key.empty()) registerTx_.answered(key, std::move(reply), reliable);
}

void Gateway::refillChallenges() {
  if (!challengePool_.wantsRefill()) return;
  challengePool_.asking();
  std::weak_ptr<Gateway*> weak = self_;
  SipLoop* loop = &loop_;
  registrar_.challengeAsync(
      challengePool_.request(),
      [weak, loop](const grpc::Status& status, v1::ChallengeResponse response) {
        // gRPC thread: only hand the result over; a stopped loop drops it.
        loop->post([weak, status, response = std::move(response)] {
          auto self = weak.lock();
          if (!self) return;
          if (status.ok()) {
            (*self)->challengePool_.refilled(response);
          } else {
            (*self)->challengePool_.refillFailed();
            log::get("sip")->debug("challenge sets not refilled: {}", status.error_message());
          }
        });
      });
}

void Gateway::completeRegister(std::uint64_t id, const grpc::Status& status,
                               const v1::RegisterResponse& response) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // answered already (shutdown)
  Pending p = std::move(it->second);
  pending_.erase(it);
  state_.pendingRegisters = static_cast<std::uint32_t>(pending_.size());
  metrics_.registerPending().Decrement();
  SipReply reply = status.ok() ? registerReply(response, std::time(nullptr))
                               : registrarFailureReply(status, config_.retryAfterSeconds);
  bool accepted = status.ok() && response.result() == v1::RegisterResponse::RESULT_OK;
  if (accepted) addOutboundHeaders(reply, p.flow);
  answerRegister(p.msg, p.tport, p.side, p.key, p.reliable, std::move(reply));
  if (accepted) noteRegistered(p, response);
  if (p.tport) tport_unref(p.tport);
  if (status.ok() && !p.username.empty()) {
    if (response.result() == v1::RegisterResponse::RESULT_UNAUTHORIZED &&
        response.credentials_rejected()) {
      authFailed(p.source, p.username);
    } else if (!response.authenticated_user().empty()) {
      authSucceeded(p.source, p.username);
    }
  }
}

int Gateway::authenticate(nta_incoming_t* irq, const sip_t* sip, Side side, Method method,
                          const RequestSource& source) {
  auto p = std::make_unique<AuthPending>();
  p->gateway = this;
  p->id = nextId_++;
  p->irq = irq;
  p->request = nta_incoming_getrequest(irq);
  if (!p->request) {
    // No message to act on later (out of memory): answer now, as the leg callback would.
    SipReply reply;
    reply.status = 500;
    reply.phrase = "Server Internal Error";
    respond(irq, method, side, reply);
    return reply.status;
  }
  p->side = side;
  p->method = method;
  p->source = source;
  // A CANCEL while the registrar works: nta answers it 200 and the INVITE 487 after
  // authIrqCallback; completeAuth then only releases the transaction.
  nta_incoming_bind(irq, &Gateway::authIrqCallback, reinterpret_cast<nta_incoming_magic_t*>(p.get()));
  std::uint64_t id = p->id;
  std::string methodName = sip->sip_request->rq_method_name ? sip->sip_request->rq_method_name : "";
  auto credentials = digestCredentials(sip->sip_proxy_authorization, authRealm_, methodName);
  if (credentials) {
    p->username = credentials->username();
    if (!authAllowed(source.host, p->username, methodName.c_str())) {
      nta_incoming_bind(irq, nullptr, nullptr);
      msg_destroy(p->request);
      SipReply reply = userLockedReply();
      respond(irq, method, side, reply);
      return reply.status;
    }
  }
  authPending_.emplace(id, std::move(p));
  std::weak_ptr<Gateway*> weak = self_;
  SipLoop* loop = &loop_;
  if (!credentials) {
    log::get("sip")->debug("{} without credentials for {}: challenged", methodName, authRealm_);
    v1::ChallengeRequest request;
    request.set_realm(authRealm_);
    registrar_.challengeAsync(std::move(request), [weak, loop, id](const grpc::Status& status,
                                                                   v1::ChallengeResponse response) {
      loop->post([weak, id, status, response = std::move(response)] {
        if (auto self = weak.lock()) (*self)->completeAuth(id, status, &response, nullptr);
      });
    });
    return 0;
  }
  v1::VerifyDigestRequest request;
  *request.mutable_credentials() = std::move(*credentials);
  registrar_.verifyDigestAsync(std::move(request), [weak, loop, id](const grpc::Status& status,
                                                                    v1::VerifyDigestResponse response) {
    loop->post([weak, id, status, response = std::move(response)] {
      if (auto self = weak.lock()) (*self)->completeAuth(id, status, nullptr, &response);
    });
  });
  return 0;
}

int Gateway::authIrqCallback(nta_incoming_magic_t* magic, nta_incoming_t*, const sip_t* sip) noexcept {
  auto* p = reinterpret_cast<AuthPending*>(magic);
  if (sip && sip->sip_request && sip->sip_request->rq_method == sip_method_cancel && !p->cancelled) {
    p->cancelled = true;
    p->gateway->metrics_.countRequest(Method::Cancel, p->side);
    p->gateway->metrics_.countResponse(p->method, 487, p->side);
  }
  return 0;
}

void Gateway::releaseAuth(std::unordered_map<std::uint64_t, std::unique_ptr<AuthPending>>::iterator it) {
  AuthPending& p = *it->second;
  if (p.request) msg_destroy(p.request);
  nta_incoming_destroy(p.irq);
  authPending_.erase(it);
}

void Gateway::completeAuth(std::uint64_t id, const grpc::Status& status,
                           const v1::ChallengeResponse* challenge,
                           const v1::VerifyDigestResponse* verify) {
  auto it = authPending_.find(id);
  if (it == authPending_.end()) return;  // answered already (shutdown)
  AuthPending& p = *it->second;
  const sip_t* sip = p.request ? sip_object(p.request) : nullptr;
  if (p.cancelled || !sip || !sip->sip_request) {
    releaseAuth(it);
    return;
  }
  const char* name = sip->sip_request->rq_method_name ? sip->sip_request->rq_method_name : "?";
  const char* callId = sip->sip_call_id ? sip->sip_call_id->i_id : "-";
  if (challenge) {
    SipReply reply = challengeReply(status, *challenge, config_.retryAfterSeconds);
    metrics_.countAuthFailure(reply.status == 407 ? AuthFailure::Missing : AuthFailure::Unavailable);
    if (reply.status != 407) {
      log::get("sip")->warn("{} {}: cannot challenge ({}): {}", name, callId, reply.phrase,
                            status.error_message());
    }
    respond(p.irq, p.method, p.side, reply);
    releaseAuth(it);
    return;
  }
  std::string fromAor = sip->sip_from ? aorOf(sip->sip_from->a_url) : std::string();
  AuthVerdict verdict = verifyVerdict(status, *verify, fromAor, config_.authFromMustMatch,
                                      config_.retryAfterSeconds);
  if (verdict.failure) metrics_.countAuthFailure(*verdict.failure);
  if (status.ok() && verify->result() == v1::VerifyDigestResponse::RESULT_INVALID) {
    authFailed(p.source.host, p.username);
  } else if (status.ok() && verify->result() == v1::VerifyDigestResponse::RESULT_OK) {
    authSucceeded(p.source.host, p.username);
  }
  if (!verdict.identity) {
    log::get("sip")->info("{} {} from {}:{} not authenticated: {} {}{}{}", name, callId,
                          p.source.host, p.source.port, verdict.reply.status, verdict.reply.phrase,
                          verify->reason().empty() ? "" : ": ", verify->reason());
    respond(p.irq, p.method, p.side, verdict.reply);
    releaseAuth(it);
    return;
  }
  if (fromAor != verdict.identity->aor) {
    log::get("sip")->info("{} {}: From {} but authenticated as {}: the call is {}'s", name, callId,
                          fromAor, verdict.identity->aor, verdict.identity->aor);
  }
  // Let it through: from here on the request is handled as if it had just arrived
  // (the B2bua binds the INVITE transaction to its call).
  nta_incoming_t* irq = p.irq;
  msg_t* request = p.request;
  Side side = p.side;
  Method method = p.method;
  RequestSource source = p.source;
  authPending_.erase(it);
  nta_incoming_bind(irq, nullptr, nullptr);
  int rc = 500;
  try {
    rc = dispatch(irq, sip, side, method, source, *verdict.identity);
  } catch (const std::exception& e) {
    log::get("sip")->error("request handling failed: {}", e.what());
  }
  if (rc != 0) {
    // What nta does for a leg callback's return value: answer it if nothing final went
    // out yet, then the transaction is ours to release.
    if (nta_incoming_status(irq) < 200) {
      SipReply reply;
      reply.status = rc >= 200 && rc < 700 ? rc : 500;
      reply.phrase = "Server Internal Error";
      respond(irq, method, side, reply);
    }
    nta_incoming_destroy(irq);
  }
  msg_destroy(request);
}

bool Gateway::authAllowed(const std::string& host, const std::string& user, const char* method) {
  auto ip = IpAddress::parse(host);
  if (!ip || authGuard_.allowed(*ip, user)) return true;
  metrics_.countRefused(Refusal::UserLocked);
  log::get("sip")->info("{} from {}: credentials for locked user \"{}\" refused (403)", method,
                        host, user.substr(0, 64));
  return false;
}

void Gateway::authFailed(const std::string& host, const std::string& user) {
  auto ip = IpAddress::parse(host);
  if (!ip) return;
  AuthGuard::Outcome outcome = authGuard_.failed(*ip, user);
  const AuthLimitSettings& limits = authGuard_.settings();
  if (outcome.banSource && flood_.ban(*ip, limits.sourceBanS)) {
    metrics_.countAuthBan(AuthBanScope::Source);
    metrics_.setFloodSources(flood_.sources(), flood_.bannedSources());
    log::get("sip")->warn("auth: source {} banned for {} s ({} failed authentications in {} s)",
                          host, limits.sourceBanS, limits.sourceMaxFailures, limits.sourceWindowS);
  }
  if (outcome.lockedUser) {
    metrics_.countAuthBan(AuthBanScope::User);
    log::get("sip")->warn(
        "auth: user \"{}\" locked for {} s ({} failed authentications in {} s; its known "
        "sources are still served)",
        user.substr(0, 64), limits.userLockS, limits.userMaxFailures, limits.userWindowS);
  }
}

void Gateway::authSucceeded(const std::string& host, const std::string& user) {
  if (auto ip = IpAddress::parse(host)) authGuard_.succeeded(*ip, user);
}

void Gateway::failPending() {
  assert(loop_.isLoopThread());
  for (auto it = authPending_.begin(); it != authPending_.end();) {
    auto next = std::next(it);
    if (!it->second->cancelled) {
      SipReply reply;
      reply.status = 503;
      reply.phrase = "Shutting Down";
      reply.headers.emplace_back("Retry-After", std::to_string(config_.retryAfterSeconds));
      respond(it->second->irq, it->second->method, it->second->side, reply);
    }
    releaseAuth(it);
    it = next;
  }
  for (auto& [id, p] : pending_) {
    SipReply reply;
    reply.status = 503;
    reply.phrase = "Shutting Down";
    reply.headers.emplace_back("Retry-After", std::to_string(config_.retryAfterSeconds));
    answerRegister(p.msg, p.tport, p.side, p.key, p.reliable, std::move(reply));
    if (p.tport) tport_unref(p.tport);
    metrics_.registerPending().Decrement();
  }
  pending_.clear();
  state_.pendingRegisters = 0;
}

namespace {

std::int64_t epochMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Gateway::noteRegistered(const Pending& p, const v1::RegisterResponse& response) {
  if (p.side != Side::Internal || !FlowTable::watched(p.flowKey, p.flow, p.direct)) return;
  bool bound = false;
  for (const auto& b : response.bindings()) {
    const auto& r = b.received();
    if (b.gateway_id() == config_.gatewayId && r.host() == p.flowKey.host &&
        r.port() == p.flowKey.port && r.transport() == p.flowKey.transport) {
      bound = true;
    }
  }
  if (flows_.registered(p.flowKey, p.aor, p.contact, p.flow, bound, epochMs())) {
    log::get("sip")->info("flow {} of {} watched ({}{})", p.flowKey.text(), p.aor,
                          p.flowKey.reliable() ? "connection" : "NAT",
                          p.flow.outbound() ? ", RFC 5626 outbound" : "");
  }
  if (bound && p.flowKey.reliable() && p.tport && !flowTports_.contains(p.flowKey)) {
    flowTports_.emplace(p.flowKey, tport_ref(p.tport));
  }
  releaseForgottenFlows();
  metrics_.setFlows(flows_.activeCount(), flows_.unreachableCount());
}

void Gateway::flowHeard(const RequestSource& source) {
  FlowKey key{source.transport, source.host, source.port};
  if (!flows_.contains(key)) return;
  metrics_.countFlowRequest();
  reportFlows(flows_.heard(key, epochMs()));
}

void Gateway::reportFlows(const std::vector<FlowReport>& reports) {
  if (reports.empty()) return;
  for (const auto& r : reports) {
    bool dead = r.state == v1::Flow::STATE_UNREACHABLE;
    log::get("sip")->info("flow {} of {} {}{}", r.key.text(), r.aor,
                          dead ? "unreachable: " : "reachable again", dead ? r.reason : "");
    v1::ReportFlowRequest req;
    req.set_aor(r.aor);
    req.mutable_received()->set_host(r.key.host);
    req.mutable_received()->set_port(r.key.port);
    req.mutable_received()->set_transport(r.key.transport);
    req.set_gateway_id(config_.gatewayId);
    req.set_state(r.state);
    req.set_reason(r.reason);
    req.set_last_keepalive_ms(r.lastHeardMs);
    std::string what = r.key.text() + " of " + r.aor;
    registrar_.reportFlowAsync(std::move(req), [what](const grpc::Status& st,
                                                      v1::ReportFlowResponse) {
      // gRPC thread: only a log line.
      if (!st.ok()) {
        log::get("sip")->warn("flow {}: the registrar was not told ({})", what,
                              grpcCodeName(st.error_code()));
      }
    });
  }
  metrics_.setFlows(flows_.activeCount(), flows_.unreachableCount());
}

void Gateway::releaseForgottenFlows() {
  for (const auto& key : flows_.forgotten()) {
    auto it = flowTports_.find(key);
    if (it == flowTports_.end()) continue;
    tport_unref(it->second);
    flowTports_.erase(it);
  }
}

void Gateway::checkFlows() {
  assert(loop_.isLoopThread());
  std::int64_t now = epochMs();
  for (const auto& key : flows_.streamKeys()) {
    auto it = flowTports_.find(key);
    tport_t* tp = it == flowTports_.end() ? nullptr : it->second;
    if (!tp || tport_is_closed(tp) || tport_is_shutdown(tp)) {
      metrics_.countFlowFailure(true);
      reportFlows(flows_.closed(key, now));
      if (tp) {
        tport_unref(tp);
        flowTports_.erase(it);
      }
    }
  }
  for (const auto& ping : flows_.duePings(now)) {
    v1::SocketAddress address;
    address.set_host(ping.key.host);
    address.set_port(ping.key.port);
    address.set_transport(ping.key.transport);
    std::weak_ptr<Gateway*> weak = self_;
    FlowKey key = ping.key;
    sendOptions(address, kInternal, ping.contact, [weak, key](ProbeResult result, std::uint32_t) {
      auto self = weak.lock();
      if (!self) return;
      Gateway& gw = **self;
      bool answered = result == ProbeResult::Ok;
      gw.metrics_.countFlowPing(answered);
      if (answered) gw.reportFlows(gw.flows_.heard(key, epochMs()));
    });
  }
  auto expired = flows_.expire(now);
  std::set<FlowKey> died;
  for (const auto& r : expired) died.insert(r.key);
  for (std::size_t i = 0; i < died.size(); ++i) metrics_.countFlowFailure(false);
  reportFlows(expired);
  releaseForgottenFlows();
  metrics_.setFlows(flows_.activeCount(), flows_.unreachableCount());
  publishFlows(now);
}

void Gateway::publishFlows(std::int64_t nowMs) {
  v1::ListFlowsResponse snapshot;
  snapshot.set_taken_at_ms(nowMs);
  for (const auto& f : flows_.view()) {
    auto* out = snapshot.add_flows();
    out->mutable_address()->set_host(f.key.host);
    out->mutable_address()->set_port(f.key.port);
    out->mutable_address()->set_transport(f.key.transport);
    for (const auto& aor : f.aors) out->add_aors(aor);
    out->set_nat(f.nat);
    out->set_outbound(f.outbound);
    out->set_flow_timer_seconds(f.flowTimerSeconds);
    out->set_state(f.state == v1::Flow::STATE_UNREACHABLE ? "unreachable" : "active");
    out->set_reason(f.reason);
    out->set_last_keepalive_ms(f.lastHeardMs);
    out->set_registered_at_ms(f.registeredAtMs);
  }
  std::lock_guard lock(state_.flowsMutex);
  state_.flows = std::move(snapshot);
}

void Gateway::flowTimer(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) noexcept {
  try {
    reinterpret_cast<Gateway*>(arg)->checkFlows();
  } catch (const std::exception& e) {
    log::get("sip")->error("flow check failed: {}", e.what());
  }
}

}  // namespace medius::gateway
