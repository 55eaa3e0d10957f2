#include "medius/media/session_manager.hpp"

#include <strings.h>

#include <array>
#include <chrono>
#include <random>

#include <algorithm>

#include "medius/common/logging.hpp"
#include "medius/common/stun.hpp"
#include "medius/media/load.hpp"
#include "medius/media/negotiation.hpp"
#include "medius/media/pipeline.hpp"
#include "medius/media/rtp/mos.hpp"

namespace medius::media {

struct SessionManager::Session {
  std::string id;
  std::string gatewayId;
  std::int64_t createdAtMs = 0;
  Worker* worker = nullptr;
  std::unique_ptr<RelaySession> relay = std::make_unique<RelaySession>();
  // Our o= toward leg A (index 0) and leg B (index 1).
  std::array<sdp::OriginState, 2> origins;
  // Serializes the control calls of this session (update against remove).
  std::mutex mutex;
  bool deleted = false;
  // Offer/answer across the legs (SRTP keys, codecs, relay or transcode).
  std::unique_ptr<Negotiator> negotiator;
  // The codec of each leg once an answer came ("" before), and whether any flow transcodes.
  std::array<std::string, 2> codecs;
  std::array<bool, 2> srtp{false, false};
  bool transcoding = false;
  // Its share of the worker's load (percent of one core; load.hpp), under the manager's
  // mutex.
  double load = 0;
  // Per offer toward leg B (0: leg_b's, then the alternatives'), until the first offer is
  // answered for good: its o= state and whether leg B latches strictly with it; the
  // answer's offer_id picks one.
  struct OfferToB {
    sdp::OriginState origin;
    bool strict = false;
  };
  std::vector<OfferToB> offersToB;
  // A new peer of a leg (a blind transfer's target) was made an offer: the leg, and the o=
  // state and strictness it goes on with once that peer's final answer comes.
  struct NewPeer {
    int leg = 0;
    sdp::OriginState origin;
    bool strict = false;
  };
  std::optional<NewPeer> newPeer;
  // ICE-lite per leg (relay.hpp): our credentials toward the leg's peer (made when it
  // first offers ICE or we first offer it ICE; new ones only when it offers a new ufrag,
  // an ICE restart), its ufrag (from its last SDP), and whether the leg is internal (our
  // offers toward an internal side carry ICE-lite lines) or awaits the answer to such an
  // offer.
  struct Ice {
    sdp::IceAdvert local;
    std::string remoteUfrag;
    bool remote = false;   // its last SDP did ICE
    bool offered = false;  // we offered it ICE; its answer has not come
    bool internal = false;
  };
  std::array<Ice, 2> ice;
};

namespace {

using Code = MediaError::Code;

RemoteSpec remoteOf(const sdp::AudioStream& audio) {
  return RemoteSpec{audio.address, audio.rtpPort, audio.rtcpAddress, audio.rtcpPort};
}

// ICE credentials of RFC 8839's minimum sizes and more: ufrag 8 ice-chars, pwd 24.
constexpr std::size_t kIceUfragChars = 8;
constexpr std::size_t kIcePwdChars = 24;

void newIceCredentials(sdp::IceAdvert& local) {
  local.ufrag = stun::randomIceString(kIceUfragChars);
  local.pwd = stun::randomIceString(kIcePwdChars);
}

// What an SDP from the leg says of its ICE (an answer or an offer, see Session::Ice).
template <typename Ice>
void learnIce(Ice& ice, const sdp::AudioStream& audio, bool isAnswer) {
  ice.offered = false;
  if (!audio.ice()) {
    ice.remote = false;
    ice.remoteUfrag.clear();
    return;
  }
  // An offer with another ufrag than its last SDP's is an ICE restart (RFC 8445 9): new
  // credentials of ours too. An answer answers our offer: its credentials stay.
  bool restart = !isAnswer && !ice.remoteUfrag.empty() && ice.remoteUfrag != audio.iceUfrag;
  if (ice.local.ufrag.empty() || restart) newIceCredentials(ice.local);
  ice.remote = true;
  ice.remoteUfrag = audio.iceUfrag;
}

// Our ICE lines in an SDP toward the leg: in answers when its offer did ICE; in offers when
// it did ICE before or is internal (a client that does no ICE ignores them).
template <typename Ice>
const sdp::IceAdvert* iceToward(Ice& ice, bool offer) {
  if (!ice.remote && !(offer && ice.internal)) return nullptr;
  if (ice.local.ufrag.empty()) newIceCredentials(ice.local);
  if (offer) ice.offered = true;
  return &ice.local;
}

template <typename Ice>
IceConfig iceConfigOf(const Ice& ice) {
  IceConfig config;
  config.enabled = (ice.remote || ice.offered) && !ice.local.ufrag.empty();
  if (config.enabled) {
    config.localUfrag = ice.local.ufrag;
    config.localPwd = ice.local.pwd;
    config.remoteUfrag = ice.remoteUfrag;
  }
  return config;
}

// The negotiation policy of one leg: the side's defaults (internal: SRTP required, Opus,
// G.722, PCMU, PCMA; trunk and unspecified: plain, PCMU, PCMA) overridden by what the
// gateway sent. Throws MediaError naming the field.
LegPolicy policyOf(const medius::v1::LegParams& leg, const char* field) {
  LegPolicy policy = leg.side() == medius::v1::SIDE_INTERNAL ? defaultInternalPolicy()
                                                               : defaultTrunkPolicy();
  switch (leg.srtp()) {
    case medius::v1::SRTP_POLICY_OFF: policy.srtp = SrtpMode::Off; break;
    case medius::v1::SRTP_POLICY_OPTIONAL: policy.srtp = SrtpMode::Optional; break;
    case medius::v1::SRTP_POLICY_REQUIRED: policy.srtp = SrtpMode::Required; break;
    default: break;
  }
  if (leg.codecs_size() > 0) {
    policy.codecs.clear();
    for (const auto& name : leg.codecs()) {
      if (strcasecmp(name.c_str(), "CN") == 0) {
        policy.comfortNoise = true;  // RFC 3389: may be offered to this side (negotiation.hpp)
        continue;
      }
      auto id = codec::codecFromName(name);
      if (!id) {
        throw MediaError(MediaError::Code::InvalidArgument,
                         std::string(field) + ".codecs: unknown codec \"" + name.substr(0, 32) + "\"");
      }
      if (std::find(policy.codecs.begin(), policy.codecs.end(), *id) == policy.codecs.end()) {
        policy.codecs.push_back(*id);
      }
    }
    if (policy.codecs.empty()) {
      throw MediaError(MediaError::Code::InvalidArgument, std::string(field) + ".codecs: no audio codec");
    }
  }
  return policy;
}

// The E-model (rtp/mos.hpp) of the audio received from one leg's peer: its codec, its loss,
// and as one-way delay half the RTCP round trip (when measured) plus twice the jitter and
// one 20 ms packet. 0 when nothing was received.
double legMos(const medius::v1::LegStats& leg) {
  if (leg.packets_in() == 0) return 0;
  auto codec = rtp::codecFromName(leg.codec());
  rtp::QualityInput input;
  input.codec = rtp::codecImpairment(codec.value_or(rtp::Codec::Pcmu));
  input.packetLossPercent = leg.loss_percent();
  input.oneWayDelayMs = leg.rtt_ms() / 2 + 2 * leg.jitter_ms() + 20;
  return rtp::estimateMos(input);
}

void fillLeg(medius::v1::LegStats& out, const RelayLeg& leg, const std::string& advertised,
             const std::string& codec, bool srtp) {
  const auto& c = leg.counters;
  auto get = [](const std::atomic<std::uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  out.set_packets_in(get(c.packetsIn));
  out.set_packets_out(get(c.packetsOut));
  out.set_bytes_in(get(c.bytesIn));
  out.set_bytes_out(get(c.bytesOut));
  out.set_packets_lost(get(c.lost));
  out.set_packets_out_of_order(get(c.outOfOrder));
  out.set_srtp_auth_failures(get(c.srtpAuthFailures));
  out.set_srtp_replays(get(c.srtpReplays));
  out.set_bad_packets(get(c.badPackets));
  out.set_payload_drops(get(c.payloadDrops));
  out.set_packets_expected(get(c.expected));
  // Without a pipeline (bare relay) only `lost` is counted: expected = received + lost.
  std::uint64_t expected = get(c.expected) != 0 ? get(c.expected) : get(c.packetsIn) + get(c.lost);
  out.set_loss_percent(expected == 0 ? 0.0 : 100.0 * static_cast<double>(get(c.lost)) /
                                                  static_cast<double>(expected));
  out.set_jitter_ms(static_cast<double>(get(c.jitterMicros)) / 1000.0);
  out.set_rtt_ms(static_cast<double>(get(c.rttMicros)) / 1000.0);
  out.set_concealed_frames(get(c.concealedFrames));
  out.set_comfort_noise_sent(get(c.comfortNoiseSent));
  out.set_events(get(c.eventsMapped));
  out.set_srtp(srtp);
  out.set_codec(codec);
  out.mutable_local()->set_host(advertised);
  out.mutable_local()->set_port(leg.localPort);
  out.mutable_local()->set_transport(medius::v1::TRANSPORT_UDP);
  std::uint64_t remote = get(c.remote);
  if (remote != 0) {
    auto ip = static_cast<std::uint32_t>(remote >> 16);
    std::string host = std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 0xff) + "." +
                       std::to_string((ip >> 8) & 0xff) + "." + std::to_string(ip & 0xff);
    out.mutable_remote()->set_host(host);
    out.mutable_remote()->set_port(static_cast<std::uint32_t>(remote & 0xffff));
    out.mutable_remote()->set_transport(medius::v1::TRANSPORT_UDP);
  }
  out.set_mos(legMos(out));
}

}  // namespace

SessionManager::SessionManager(const MediaConfig& config, MediaMetrics& metrics, const Clock& clock)
    : config_(config),
      metrics_(metrics),
      clock_(clock),
      pool_(config.portRange.min, config.portRange.max),
      loadLimit_(config.loadLimit > 0 ? config.loadLimit : 80.0 * std::max<std::uint32_t>(config.workers, 1)),
      events_(clock),
      nextOrigin_(std::random_device{}() | 1u) {
  for (std::uint32_t i = 0; i < config.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(
        static_cast<int>(i), metrics_.traffic, [this](RelaySession& relay) { onTimeout(relay); }));
  }
  for (auto& worker : workers_) worker->start();
  updatePoolGauge();
  metrics_.sessionsActive.Set(0);
  metrics_.load.Set(0);
  metrics_.loadLimit.Set(loadLimit_);
  metrics_.transcodingSessions.Set(0);
}

SessionManager::~SessionManager() { shutdown(); }

void SessionManager::updatePoolGauge() {
  metrics_.portPoolFree.Set(static_cast<double>(pool_.freePairs()));
}

std::size_t SessionManager::sessionCount() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

medius::v1::CreateSessionResponse SessionManager::create(
    const medius::v1::CreateSessionRequest& request) {
  auto refused = [](prometheus::Counter& counter, Code code, const std::string& message) {
    counter.Increment();
    return MediaError(code, message);
  };
  if (request.session_id().empty()) {
    throw refused(metrics_.sessions.invalidArgument, Code::InvalidArgument, "session_id is empty");
  }
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || draining_.load()) {
      throw refused(metrics_.sessions.unavailable, Code::Unavailable, "draining: no new sessions");
    }
    if (sessions_.contains(request.session_id())) {
      throw refused(metrics_.sessions.alreadyExists, Code::AlreadyExists,
             "session \"" + request.session_id() + "\" exists");
    }
    if (sessions_.size() + reserved_ >= config_.maxSessions) {
      throw refused(metrics_.sessions.resourceExhausted, Code::ResourceExhausted,
             "max_sessions (" + std::to_string(config_.maxSessions) + ") reached");
    }
    ++reserved_;
  }
  struct Reservation {
    SessionManager& self;
    ~Reservation() {
      std::lock_guard lock(self.mutex_);
      --self.reserved_;
    }
  } reservation{*this};

  std::optional<sdp::Description> offer;
  try {
    offer = sdp::Description::parse(request.offer_sdp());
  } catch (const sdp::SdpError& e) {
    throw refused(metrics_.sessions.invalidArgument, Code::InvalidArgument,
           std::string("offer_sdp: ") + e.what());
  }

  auto session = std::make_shared<Session>();
  session->id = request.session_id();
  session->gatewayId = request.gateway_id();
  session->createdAtMs = clock_.nowMs();
  sdp::AudioOverride towardB;
  std::vector<sdp::AudioOverride> alternatives;
  try {
    session->negotiator = std::make_unique<Negotiator>(policyOf(request.leg_a(), "leg_a"),
                                                       policyOf(request.leg_b(), "leg_b"));
    towardB = session->negotiator->offer(0, offer->audio());
    for (int i = 0; i < request.leg_b_alternatives_size(); ++i) {
      std::string field = "leg_b_alternatives[" + std::to_string(i) + "]";
      std::uint32_t offerId = 0;
      alternatives.push_back(session->negotiator->alternative(
          policyOf(request.leg_b_alternatives(i), field.c_str()), offerId));
    }
  } catch (const MediaError&) {
    metrics_.sessions.invalidArgument.Increment();
    throw;
  } catch (const NegotiationError& e) {
    throw refused(metrics_.sessions.invalidArgument, Code::InvalidArgument,
                  std::string("offer_sdp: ") + e.what());
  }
  // Capacity: a session whose offer shares no codec with leg B's side will be transcoded
  // whatever B answers; any other starts as relayed and is re-weighed at the answer.
  {
    const Negotiator::Outlook outlook = session->negotiator->outlook().value();
    session->load = estimatedLoad(outlook.transcodeOnly, outlook.codecs[0], outlook.codecs[1],
                                  outlook.srtp[0], outlook.srtp[1]);
    std::lock_guard lock(mutex_);
    if (load_ + session->load > loadLimit_) {
      throw refused(metrics_.sessions.resourceExhausted, Code::ResourceExhausted,
                    "load limit reached (" + std::to_string(static_cast<int>(load_)) + "% of " +
                        std::to_string(static_cast<int>(loadLimit_)) + "% of a core)");
    }
    load_ += session->load;
    metrics_.load.Set(load_);
  }
  struct LoadReservation {
    SessionManager& self;
    Session& session;
    bool kept = false;
    ~LoadReservation() {
      if (kept) return;
      std::lock_guard lock(self.mutex_);
      self.load_ -= session.load;
      self.metrics_.load.Set(self.load_);
    }
  } loadReservation{*this, *session};
  RelaySession& relay = *session->relay;
  relay.id = session->id;
  relay.owner = session->gatewayId;
  relay.timeoutMs = request.media_timeout_ms() != 0 ? request.media_timeout_ms() : config_.mediaTimeoutMs;
  relay.holdUntilPipeline = true;  // nothing crosses before the first answer
  relay.legs[0].strict = config_.strictSource || request.leg_a().strict_source();
  relay.legs[1].strict = config_.strictSource || request.leg_b().strict_source();

  // Two pairs; a pair another process holds goes back to the pool's tail and we try on.
  std::size_t attempts = std::min<std::size_t>(pool_.totalPairs(), 64);
  for (RelayLeg& leg : relay.legs) {
    for (std::size_t i = 0; leg.localPort == 0; ++i) {
      auto port = i < attempts ? pool_.acquire() : std::nullopt;
      if (!port) {
        for (RelayLeg& l : relay.legs) {
          if (l.localPort != 0) pool_.release(l.localPort);
        }
        updatePoolGauge();
        throw refused(metrics_.sessions.resourceExhausted, Code::ResourceExhausted, "out of media ports");
      }
      Fd rtp = bindUdp(config_.bindAddress, *port);
      Fd rtcp = rtp.get() >= 0 ? bindUdp(config_.bindAddress, static_cast<std::uint16_t>(*port + 1)) : Fd();
      if (rtp.get() < 0 || rtcp.get() < 0) {
        log::get("media")->warn("session {}: port {} or {} is taken, trying another", session->id,
                                *port, *port + 1);
        pool_.release(*port);
        continue;
      }
      leg.rtp = std::move(rtp);
      leg.rtcp = std::move(rtcp);
      leg.localPort = *port;
    }
  }

  Worker* worker = workers_.front().get();
  for (auto& w : workers_) {
    if (w->sessionCount() < worker->sessionCount()) worker = w.get();
  }
  session->worker = worker;
  RemoteSpec remoteA = remoteOf(offer->audio());
  session->ice[0].internal = request.leg_a().side() == medius::v1::SIDE_INTERNAL;
  session->ice[1].internal = request.leg_b().side() == medius::v1::SIDE_INTERNAL;
  learnIce(session->ice[0], offer->audio(), false);
  const sdp::IceAdvert* iceTowardB = iceToward(session->ice[1], true);
  // An alternative offer toward an internal target (a dual fork's devices next to a trunk)
  // carries ICE-lite too, with leg B's one set of credentials (one port for all offers).
  std::vector<const sdp::IceAdvert*> iceAlternatives;
  for (int i = 0; i < request.leg_b_alternatives_size(); ++i) {
    Session::Ice& iceB = session->ice[1];
    bool internal = request.leg_b_alternatives(i).side() == medius::v1::SIDE_INTERNAL;
    if (internal && iceTowardB == nullptr) {
      if (iceB.local.ufrag.empty()) newIceCredentials(iceB.local);
      iceB.offered = true;
    }
    iceAlternatives.push_back(internal || iceTowardB != nullptr ? &iceB.local : nullptr);
  }
  IceConfig iceA = iceConfigOf(session->ice[0]);
  IceConfig iceB = iceConfigOf(session->ice[1]);
  try {
    worker->run([&] {
      worker->attach(relay);
      worker->setIce(relay, 0, iceA);
      worker->setIce(relay, 1, iceB);
      worker->setRemote(relay, 0, remoteA);
    });
  } catch (const std::exception& e) {
    // epoll_ctl failed (out of memory or descriptors): nothing was attached.
    for (RelayLeg& leg : relay.legs) {
      leg.rtp = Fd();
      leg.rtcp = Fd();
      pool_.release(leg.localPort);
    }
    updatePoolGauge();
    throw refused(metrics_.sessions.resourceExhausted, Code::ResourceExhausted,
                  std::string("cannot watch the sockets: ") + e.what());
  }

  session->origins[0].sessionId = nextOrigin_.fetch_add(1);
  session->origins[1].sessionId = nextOrigin_.fetch_add(1);
  medius::v1::CreateSessionResponse response;
  // Each offer toward B starts from the same o= line: only the dialog that answers goes on
  // with it (update() takes its origin state).
  auto& offers = session->offersToB;
  offers.assign(alternatives.size() + 1, {session->origins[1], relay.legs[1].strict});
  response.set_offer_sdp(offer->render(
      {config_.advertisedAddress, relay.legs[1].localPort, &towardB, iceTowardB}, offers[0].origin));
  for (std::size_t i = 0; i < alternatives.size(); ++i) {
    response.add_alternative_offer_sdp(offer->render(
        {config_.advertisedAddress, relay.legs[1].localPort, &alternatives[i], iceAlternatives[i]},
        offers[i + 1].origin));
    offers[i + 1].strict =
        config_.strictSource || request.leg_b_alternatives(static_cast<int>(i)).strict_source();
  }
  session->origins[1] = offers[0].origin;
  response.set_advertised_address(config_.advertisedAddress);
  {
    std::lock_guard lock(mutex_);
    sessions_.emplace(session->id, session);
    metrics_.sessionsActive.Set(static_cast<double>(sessions_.size()));
    response.set_load(load_);
    response.set_load_limit(loadLimit_);
  }
  loadReservation.kept = true;
  metrics_.sessions.ok.Increment();
  updatePoolGauge();
  log::get("media")->info("session {}: created on worker {}, leg A port {}, leg B port {}, gateway {}",
                          session->id, worker->index(), relay.legs[0].localPort,
                          relay.legs[1].localPort, session->gatewayId);
  return response;
}

std::shared_ptr<SessionManager::Session> SessionManager::find(const std::string& sessionId) const {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(sessionId);
  if (it == sessions_.end()) throw MediaError(Code::NotFound, "no session \"" + sessionId + "\"");
  return it->second;
}

medius::v1::UpdateSessionResponse SessionManager::update(
    const medius::v1::UpdateSessionRequest& request) {
  if (request.from_leg() != medius::v1::LEG_A && request.from_leg() != medius::v1::LEG_B) {
    throw MediaError(Code::InvalidArgument, "from_leg must be LEG_A or LEG_B");
  }
  auto session = find(request.session_id());
  if (request.has_new_peer()) return offerToNewPeer(*session, request);
  std::optional<sdp::Description> description;
  try {
    description = sdp::Description::parse(request.sdp());
  } catch (const sdp::SdpError& e) {
    throw MediaError(Code::InvalidArgument, std::string("sdp: ") + e.what());
  }
  int from = request.from_leg() == medius::v1::LEG_A ? 0 : 1;
  int to = 1 - from;
  std::lock_guard lock(session->mutex);
  if (session->deleted) throw MediaError(Code::NotFound, "no session \"" + request.session_id() + "\"");
  RelaySession& relay = *session->relay;
  RemoteSpec remote = remoteOf(description->audio());
  bool established = request.is_answer() && !request.provisional();
  // Negotiate first: a refused SDP changes nothing (the previous plan stays in force).
  sdp::AudioOverride toward;
  std::unique_ptr<MediaPipeline> pipeline;
  // An answer from B to the first offer says which of our offers it took.
  const bool answersFirstOffer = from == 1 && request.is_answer() && !session->offersToB.empty();
  std::uint32_t offerId = answersFirstOffer ? request.offer_id() : 0;
  if (answersFirstOffer && offerId >= session->offersToB.size()) {
    throw MediaError(Code::InvalidArgument, "offer_id " + std::to_string(offerId) + ": the session made " +
                                                std::to_string(session->offersToB.size()) + " offers");
  }
  try {
    toward = request.is_answer()
                 ? session->negotiator->answer(from, description->audio(), request.provisional(), offerId)
                 : session->negotiator->offer(from, description->audio());
    if (request.is_answer()) pipeline = std::make_unique<MediaPipeline>(*session->negotiator->plan());
  } catch (const NegotiationError& e) {
    throw MediaError(Code::InvalidArgument, std::string("sdp: ") + e.what());
  } catch (const std::exception& e) {
    // A key or codec parameter libsrtp or a codec library refused.
    throw MediaError(Code::InvalidArgument, std::string("media: ") + e.what());
  }
  std::optional<bool> strictB;
  if (answersFirstOffer) strictB = session->offersToB[offerId].strict;
  std::optional<Session::NewPeer> newPeer;
  if (request.is_answer() && session->newPeer && session->newPeer->leg == from) {
    newPeer = session->newPeer;
    if (established) {
      session->origins[static_cast<std::size_t>(from)] = newPeer->origin;
      session->newPeer.reset();
    }
  } else if (!request.is_answer()) {
    session->newPeer.reset();  // a re-offer from either leg replaces the offer to the new peer
  }
  if (answersFirstOffer && established) {
    // The first offer is answered for good: leg B goes on with the o= of the offer taken.
    session->origins[1] = session->offersToB[offerId].origin;
    session->offersToB.clear();
  }
  // ICE: what the leg's SDP says, and our lines toward the other leg (an answer to its
  // offer, or an offer of ours).
  learnIce(session->ice[static_cast<std::size_t>(from)], description->audio(), request.is_answer());
  const sdp::IceAdvert* iceTowardTo = iceToward(session->ice[static_cast<std::size_t>(to)], !request.is_answer());
  IceConfig iceFrom = iceConfigOf(session->ice[static_cast<std::size_t>(from)]);
  IceConfig iceTo = iceConfigOf(session->ice[static_cast<std::size_t>(to)]);
  session->worker->run([&] {
    if (strictB) relay.legs[1].strict = *strictB;
    if (newPeer) relay.legs[static_cast<std::size_t>(from)].strict = newPeer->strict;
    session->worker->setIce(relay, from, iceFrom);
    session->worker->setIce(relay, to, iceTo);
    session->worker->setRemote(relay, from, remote);
    if (pipeline) session->worker->setPipeline(relay, std::move(pipeline));
    if (established) session->worker->armTimeout(relay);
  });
  if (request.is_answer()) {
    const MediaPlan& plan = *session->negotiator->plan();
    session->codecs = {plan.legs[0].codecName, plan.legs[1].codecName};
    session->srtp = {plan.legs[0].inbound.has_value(), plan.legs[1].inbound.has_value()};
    std::lock_guard tableLock(mutex_);
    if (plan.transcoding() != session->transcoding) transcoding_ += plan.transcoding() ? 1 : -1;
    session->transcoding = plan.transcoding();
    double now = sessionLoad(plan);
    load_ += now - session->load;
    session->load = now;
    metrics_.load.Set(load_);
    metrics_.transcodingSessions.Set(static_cast<double>(transcoding_));
  }
  medius::v1::UpdateSessionResponse response;
  response.set_sdp(description->render(
      {config_.advertisedAddress, relay.legs[static_cast<std::size_t>(to)].localPort, &toward, iceTowardTo},
      session->origins[static_cast<std::size_t>(to)]));
  log::get("media")->debug("session {}: {} from leg {} ({}{}), remote {}:{}", session->id,
                           request.is_answer() ? "answer" : "offer", from == 0 ? "A" : "B",
                           sdp::directionName(description->audio().direction),
                           request.provisional() ? ", provisional" : "", remote.address,
                           remote.rtpPort);
  return response;
}

medius::v1::UpdateSessionResponse SessionManager::offerToNewPeer(
    Session& session, const medius::v1::UpdateSessionRequest& request) {
  if (!request.sdp().empty() || request.is_answer()) {
    throw MediaError(Code::InvalidArgument, "new_peer: an offer is asked for, no sdp or is_answer comes with it");
  }
  const int leg = request.from_leg() == medius::v1::LEG_A ? 0 : 1;
  LegPolicy policy = policyOf(request.new_peer(), "new_peer");
  std::lock_guard lock(session.mutex);
  if (session.deleted) throw MediaError(Code::NotFound, "no session \"" + request.session_id() + "\"");
  sdp::AudioOverride toward;
  try {
    toward = session.negotiator->retarget(leg, policy);
  } catch (const NegotiationError& e) {
    throw MediaError(Code::FailedPrecondition, std::string("new_peer: ") + e.what());
  }
  // A new dialog: its own o= line (the leg's present one stays until the peer answers).
  Session::NewPeer peer;
  peer.leg = leg;
  peer.origin.sessionId = nextOrigin_.fetch_add(1);
  peer.strict = config_.strictSource || request.new_peer().strict_source();
  // The body of an offer nobody sent us: only what render() keeps (direction) comes from it.
  static const sdp::Description base = sdp::Description::parse(
      "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
      "m=audio 9 RTP/AVP 0\r\na=sendrecv\r\n");
  // A new peer is a new ICE agent: fresh credentials (if its side is internal or it does
  // ICE, which its answer tells).
  auto& ice = session.ice[static_cast<std::size_t>(leg)];
  ice = Session::Ice{};
  ice.internal = request.new_peer().side() == medius::v1::SIDE_INTERNAL;
  const sdp::IceAdvert* iceTowardPeer = iceToward(ice, true);
  IceConfig iceConfig = iceConfigOf(ice);
  session.worker->run([&] { session.worker->setIce(*session.relay, leg, iceConfig); });
  medius::v1::UpdateSessionResponse response;
  response.set_sdp(base.render(
      {config_.advertisedAddress, session.relay->legs[static_cast<std::size_t>(leg)].localPort, &toward,
       iceTowardPeer},
      peer.origin));
  session.newPeer = peer;
  log::get("media")->info("session {}: offer to a new peer of leg {} (srtp {})", session.id, leg == 0 ? "A" : "B",
                          srtpModeName(policy.srtp));
  return response;
}

void SessionManager::destroy(Session& session) {
  {
    std::lock_guard lock(mutex_);
    load_ -= session.load;
    if (load_ < 1e-9) load_ = 0;  // no drift below zero from summing doubles
    if (session.transcoding) --transcoding_;
    metrics_.load.Set(load_);
    metrics_.transcodingSessions.Set(static_cast<double>(transcoding_));
  }
  RelaySession& relay = *session.relay;
  session.worker->run([&] { session.worker->detach(relay); });
  for (RelayLeg& leg : relay.legs) {
    leg.rtp = Fd();
    leg.rtcp = Fd();
    if (leg.localPort != 0) pool_.release(leg.localPort);
  }
  session.deleted = true;
  updatePoolGauge();
}

medius::v1::SessionStats SessionManager::remove(const std::string& sessionId) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(sessionId);
    if (it == sessions_.end()) throw MediaError(Code::NotFound, "no session \"" + sessionId + "\"");
    session = it->second;
    sessions_.erase(it);
    metrics_.sessionsActive.Set(static_cast<double>(sessions_.size()));
  }
  std::lock_guard lock(session->mutex);
  medius::v1::SessionStats stats = retire(*session);
  log::get("media")->info("session {}: deleted (A in {} out {}, B in {} out {})", session->id,
                          stats.leg_a().packets_in(), stats.leg_a().packets_out(),
                          stats.leg_b().packets_in(), stats.leg_b().packets_out());
  return stats;
}

medius::v1::SessionStats SessionManager::retire(Session& session) {
  destroy(session);
  medius::v1::SessionStats stats = statsOf(session);
  metrics_.observeSession(stats);
  medius::v1::MediaEvent event;
  event.set_kind(medius::v1::MediaEvent::KIND_SESSION_DELETED);
  event.set_session_id(session.id);
  events_.publish(session.gatewayId, event);
  return stats;
}

SessionManager::Reaped SessionManager::reapOrphans() {
  const std::int64_t now = clock_.nowMs();
  const std::int64_t grace = config_.orphanGraceMs;
  // Gone for longer than the grace: every session they own goes.
  std::map<std::string, std::int64_t> gone = events_.goneOwners();
  std::erase_if(gone, [&](const auto& owner) { return now - owner.second < grace; });
  enum class Reason { OwnerGone, TimeoutUnhandled };
  std::vector<std::pair<std::shared_ptr<Session>, Reason>> orphans;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return {};
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      const Session& session = *it->second;
      const RelaySession& relay = *session.relay;
      std::optional<Reason> reason;
      if (gone.contains(session.gatewayId)) {
        reason = Reason::OwnerGone;
      } else if (relay.timedOut.load(std::memory_order_acquire) &&
                 now - relay.timedOutAtMs.load(std::memory_order_relaxed) >= grace) {
        reason = Reason::TimeoutUnhandled;
      }
      if (!reason) {
        ++it;
        continue;
      }
      // Out of the table under the table's lock, as remove() does: whoever erases it
      // retires it, exactly once.
      orphans.emplace_back(it->second, *reason);
      it = sessions_.erase(it);
    }
    if (!orphans.empty()) metrics_.sessionsActive.Set(static_cast<double>(sessions_.size()));
  }
  Reaped reaped;
  for (auto& [session, reason] : orphans) {
    std::lock_guard lock(session->mutex);
    medius::v1::SessionStats stats = retire(*session);
    if (reason == Reason::OwnerGone) {
      ++reaped.ownerGone;
      metrics_.orphanedOwnerGone.Increment();
      log::get("media")->warn(
          "session {}: deleted by the worker: gateway {} stopped watching {} ms ago (owner_gone; "
          "A in {} out {}, B in {} out {})",
          session->id, session->gatewayId, now - gone.at(session->gatewayId),
          stats.leg_a().packets_in(), stats.leg_a().packets_out(), stats.leg_b().packets_in(),
          stats.leg_b().packets_out());
    } else {
      ++reaped.timeoutUnhandled;
      metrics_.orphanedTimeoutUnhandled.Increment();
      log::get("media")->warn(
          "session {}: deleted by the worker: its media timeout fired {} ms ago and gateway {} "
          "did not delete it (timeout_unhandled; A in {} out {}, B in {} out {})",
          session->id, now - session->relay->timedOutAtMs.load(std::memory_order_relaxed),
          session->gatewayId, stats.leg_a().packets_in(), stats.leg_a().packets_out(),
          stats.leg_b().packets_in(), stats.leg_b().packets_out());
    }
  }
  // A gone gateway's sessions are all deleted now: its record goes (a gateway_id coming
  // back later starts a new one).
  for (const auto& [gatewayId, since] : gone) events_.forget(gatewayId, since);
  return reaped;
}

medius::v1::SessionStats SessionManager::statsOf(const Session& session) const {
  medius::v1::SessionStats stats;
  stats.set_session_id(session.id);
  stats.set_created_at_ms(session.createdAtMs);
  stats.set_transcoding(session.transcoding);
  fillLeg(*stats.mutable_leg_a(), session.relay->legs[0], config_.advertisedAddress,
          session.codecs[0], session.srtp[0]);
  fillLeg(*stats.mutable_leg_b(), session.relay->legs[1], config_.advertisedAddress,
          session.codecs[1], session.srtp[1]);
  // The call's MOS: the worse direction that carried audio.
  double a = stats.leg_a().mos();
  double b = stats.leg_b().mos();
  stats.set_mos(a == 0 ? b : b == 0 ? a : std::min(a, b));
  return stats;
}

medius::v1::SessionStats SessionManager::stats(const std::string& sessionId) const {
  auto session = find(sessionId);
  std::lock_guard lock(session->mutex);
  return statsOf(*session);
}

medius::v1::ListSessionsResponse SessionManager::list() const {
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, session] : sessions_) all.push_back(session);
  }
  medius::v1::ListSessionsResponse response;
  for (const auto& session : all) {
    std::lock_guard lock(session->mutex);
    if (session->deleted) continue;
    *response.add_sessions() = statsOf(*session);
  }
  {
    std::lock_guard lock(mutex_);
    response.set_load(load_);
  }
  response.set_load_limit(loadLimit_);
  return response;
}

std::uint32_t SessionManager::drain() {
  draining_ = true;
  return static_cast<std::uint32_t>(sessionCount());
}

void SessionManager::onTimeout(RelaySession& relay) {
  // Worker thread, once per timeout (not per packet); before the worker sets timedOut.
  relay.timedOutAtMs.store(clock_.nowMs(), std::memory_order_relaxed);
  metrics_.timeouts.Increment();
  medius::v1::MediaEvent event;
  event.set_kind(medius::v1::MediaEvent::KIND_MEDIA_TIMEOUT);
  event.set_session_id(relay.id);
  event.set_detail("no RTP on either leg for " + std::to_string(relay.timeoutMs) + " ms");
  events_.publish(relay.owner, event);
  log::get("media")->info("session {}: media timeout ({} ms without RTP)", relay.id, relay.timeoutMs);
}

void SessionManager::shutdown() {
  std::map<std::string, std::shared_ptr<Session>, std::less<>> all;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    all.swap(sessions_);
    metrics_.sessionsActive.Set(0);
  }
  for (auto& [id, session] : all) {
    std::lock_guard lock(session->mutex);
    destroy(*session);
  }
  for (auto& worker : workers_) worker->stop();
}

}  // namespace medius::media
