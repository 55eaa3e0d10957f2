#include "medius/media/negotiation.hpp"

#include <algorithm>
#include <set>
#include <strings.h>

#include "medius/media/codec/comfort_noise.hpp"
#include "medius/media/srtp/crypto_attribute.hpp"
#include "medius/media/srtp/sdes.hpp"

namespace medius::media {

namespace {

using codec::CodecId;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool isEvent(const sdp::Format& f) { return iequals(f.name, "telephone-event"); }
bool isCn(const sdp::Format& f) { return iequals(f.name, "CN"); }

std::optional<CodecId> knownCodec(const sdp::Format& f) {
  if (isEvent(f) || isCn(f)) return std::nullopt;
  return codec::codecFromName(f.name, f.clock);
}

bool allowed(const LegPolicy& policy, CodecId id) {
  return std::find(policy.codecs.begin(), policy.codecs.end(), id) != policy.codecs.end();
}

bool sameCodec(const sdp::Format& a, const sdp::Format& b) {
  return iequals(a.name, b.name) && a.clock == b.clock;
}

// The format we put in an offer for a codec the offerer did not have.
sdp::Format formatFor(CodecId id, std::uint8_t pt) {
  const auto& info = codec::codecInfo(id);
  sdp::Format f;
  f.pt = pt;
  f.name = std::string(info.encodingName);
  f.clock = info.rtpClockRate;
  // RFC 7587 7: opus is always written opus/48000/2; we ask for in-band FEC.
  if (id == CodecId::Opus) {
    f.channels = 2;
    f.fmtp = "useinbandfec=1";
  }
  return f;
}

std::string names(const std::vector<sdp::Format>& formats) {
  std::string out;
  for (const auto& f : formats) out += (out.empty() ? "" : ", ") + f.name + "/" + std::to_string(f.clock);
  return out.empty() ? "none" : out;
}

std::string names(const std::vector<CodecId>& codecs) {
  std::string out;
  for (auto id : codecs) out += (out.empty() ? "" : ", ") + std::string(codec::codecInfo(id).encodingName);
  return out.empty() ? "none" : out;
}

bool isSavp(const std::string& protocol) { return protocol == "RTP/SAVP" || protocol == "RTP/SAVPF"; }

// The SRTP context parameters of an a=crypto line, the peer's or ours: every key of it
// (with several, RFC 4568 6.1, each has an MKI and the MKI in each packet picks one; the
// parser made sure of that).
SrtpParams paramsOf(const srtp::CryptoAttribute& attribute) {
  const srtp::KeyParam& first = attribute.keys.front();
  SrtpParams key;
  key.suite = attribute.suite;
  key.key = first.keySalt;
  key.mki = first.mki;
  for (std::size_t i = 1; i < attribute.keys.size(); ++i) {
    key.moreKeys.push_back(srtp::MasterKey{attribute.keys[i].keySalt, attribute.keys[i].mki});
  }
  return key;
}

// The packetization we send a transcoded leg: its a=ptime when the codec allows it, else the
// codec's default; never above its a=maxptime (RFC 4566 6: the longest it takes), then the
// longest allowed packet that fits (or the shortest the codec has).
std::uint16_t targetPtime(CodecId codec, std::uint32_t ptime, std::uint32_t maxptime) {
  const auto& info = codec::codecInfo(codec);
  std::uint32_t chosen = ptime != 0 && codec::ptimeAllowed(codec, ptime) ? ptime : info.defaultPtimeMs;
  if (maxptime == 0 || chosen <= maxptime) return static_cast<std::uint16_t>(chosen);
  std::uint16_t fit = info.allowedPtimesMs.front();
  for (std::uint16_t allowed : info.allowedPtimesMs) {
    if (allowed <= maxptime) fit = allowed;
  }
  return fit;
}

// The telephone-event of `events` to use next to `codec`: the one at the codec's clock
// (RFC 4733 2.1: events use the audio clock), else the 8000 one, else the first.
std::optional<sdp::Format> eventFor(const std::vector<sdp::Format>& events, const sdp::Format& codec) {
  for (const auto& e : events) {
    if (e.clock == codec.clock) return e;
  }
  for (const auto& e : events) {
    if (e.clock == 8000) return e;
  }
  if (!events.empty()) return events.front();
  return std::nullopt;
}

// CN may be offered to the answerer on its side's behalf alone when the worker will honour
// it whatever the answer: no offered codec is the offerer's (every answer is transcoded, so
// CN from the answerer is consumed and its silence generated as CN), and one of them is a
// codec we generate CN for. A relayed answer would pass the answerer's CN to an offerer
// that did not ask for it (we would have to drop it: silence instead of its noise).
bool cnOfferable(const std::vector<sdp::Format>& offererCodecs, const std::vector<sdp::Format>& offered) {
  bool generated = false;
  for (const auto& f : offered) {
    auto id = knownCodec(f);
    if (!id) continue;
    if (std::any_of(offererCodecs.begin(), offererCodecs.end(),
                    [id](const sdp::Format& g) { return knownCodec(g) == id; })) {
      return false;
    }
    generated = generated || codec::usesRfc3389Cn(*id);
  }
  return generated;
}

}  // namespace

std::string_view srtpModeName(SrtpMode mode) {
  switch (mode) {
    case SrtpMode::Off: return "off";
    case SrtpMode::Optional: return "optional";
    case SrtpMode::Required: return "required";
  }
  return "off";
}

LegPolicy defaultInternalPolicy() {
  return LegPolicy{SrtpMode::Required, {CodecId::Opus, CodecId::G722, CodecId::Pcmu, CodecId::Pcma}};
}

LegPolicy defaultTrunkPolicy() { return LegPolicy{SrtpMode::Off, {CodecId::Pcmu, CodecId::Pcma}}; }

Negotiator::Negotiator(LegPolicy legA, LegPolicy legB) : policy_{std::move(legA), std::move(legB)} {}

sdp::AudioOverride Negotiator::offer(int from, const sdp::AudioStream& stream) {
  const int to = 1 - from;
  const LegPolicy& px = policy_[static_cast<std::size_t>(from)];
  const LegPolicy& py = policy_[static_cast<std::size_t>(to)];
  const LegState& x = legs_[static_cast<std::size_t>(from)];
  const LegState& y = legs_[static_cast<std::size_t>(to)];
  Pending p;
  p.offerer = from;
  p.reoffer = x.established && y.established;
  std::vector<sdp::Format> unusable;
  for (const auto& f : stream.formatInfo) {
    if (isEvent(f)) {
      p.offererEvents.push_back(f);
    } else if (isCn(f)) {
      if (!p.offererCn && f.clock == 8000) p.offererCn = f;
    } else if (auto id = knownCodec(f); id && allowed(px, *id)) {
      p.offererCodecs.push_back(f);
    } else {
      unusable.push_back(f);
    }
  }
  if (p.offererCodecs.empty()) {
    throw NegotiationError("no common codec: the offer has " + names(unusable) + "; this side allows " +
                           names(px.codecs));
  }
  p.offererPtime = stream.ptimeMs;
  p.offererMaxptime = stream.maxptimeMs;
  p.offererProtocol = stream.protocol;
  if (stream.protocol != "RTP/AVP" && stream.protocol != "RTP/SAVP" &&
      stream.protocol != "RTP/AVPF" && stream.protocol != "RTP/SAVPF") {
    throw NegotiationError("unsupported media protocol " + stream.protocol.substr(0, 32) +
                           " (RTP/AVP and RTP/SAVP with SDES are)");
  }

  // The offerer's SRTP.
  if (px.srtp == SrtpMode::Off) {
    if (isSavp(stream.protocol)) {
      throw NegotiationError("SRTP (" + stream.protocol + ") offered where SRTP is off");
    }
  } else {
    // Any suite this libsrtp2 has; our key toward the offerer is kept across re-offers
    // while the suite stays.
    static const std::vector<srtp::CryptoSuite> acceptable = srtp::defaultSuites();
    const std::vector<std::string_view> values(stream.cryptos.begin(), stream.cryptos.end());
    srtp::SdesAnswer sdes = srtp::answerCryptoOffer(values, acceptable, x.sdes ? &x.sdes->local : nullptr);
    if (!sdes.choice && (isSavp(stream.protocol) || px.srtp == SrtpMode::Required)) {
      throw NegotiationError(stream.cryptos.empty()
                                 ? "SRTP is required and the offer has no a=crypto line"
                                 : "no usable a=crypto line: " + sdes.problems);
    }
    p.offererSdes = std::move(sdes.choice);
  }

  if (p.reoffer) {
    // No change toward the other leg: what it has, with our key.
    sdp::AudioOverride out = render(y);
    Offered o;
    o.policy = py;
    o.formats = out.formats;
    o.protocol = y.protocol;
    if (y.sdes) o.cryptos.push_back(y.sdes->local);
    p.offers.push_back(std::move(o));
    pending_ = std::move(p);
    return out;
  }
  for (const auto& f : stream.formatInfo) p.offererPts.insert(f.pt);
  p.offers.push_back(makeOffer(p, py));
  sdp::AudioOverride out = overrideOf(p, p.offers.back());
  pending_ = std::move(p);
  return out;
}

Negotiator::Pending Negotiator::standing(int offerer) const {
  const LegState& y = legs_[static_cast<std::size_t>(offerer)];
  Pending p;
  p.offerer = offerer;
  p.offererCodecs.push_back(y.codec);
  p.offererCodecs.insert(p.offererCodecs.end(), y.more.begin(), y.more.end());
  if (y.event) p.offererEvents.push_back(*y.event);
  p.offererCn = y.cn;
  p.offererPtime = y.ptimeMs;
  p.offererMaxptime = y.maxptimeMs;
  p.offererProtocol = y.protocol;
  p.offererSdes = y.sdes;
  for (const auto& f : p.offererCodecs) p.offererPts.insert(f.pt);
  for (const auto& f : p.offererEvents) p.offererPts.insert(f.pt);
  if (p.offererCn) p.offererPts.insert(p.offererCn->pt);
  return p;
}

sdp::AudioOverride Negotiator::retarget(int leg, const LegPolicy& policy) {
  const std::string name = leg == 0 ? "A" : "B";
  if (pending_ && !pending_->retarget) {
    throw NegotiationError("a new peer of leg " + name + " while an offer awaits its answer");
  }
  if (!legs_[0].established || !legs_[1].established) {
    throw NegotiationError("a new peer of leg " + name + " before the session is established");
  }
  Pending p = standing(1 - leg);
  // Codecs the other leg relays but this side does not allow are left out by makeOffer;
  // anything else of the new side's list is transcoded.
  p.retarget = true;
  p.offers.push_back(makeOffer(p, policy));
  sdp::AudioOverride out = overrideOf(p, p.offers.back());
  pending_ = std::move(p);
  return out;
}

sdp::AudioOverride Negotiator::alternative(const LegPolicy& policy, std::uint32_t& offerId) {
  if (!pending_ || pending_->reoffer || pending_->offers.empty()) {
    throw NegotiationError("no first offer to make another one of");
  }
  Pending& p = *pending_;
  p.offers.push_back(makeOffer(p, policy));
  offerId = static_cast<std::uint32_t>(p.offers.size() - 1);
  return overrideOf(p, p.offers.back());
}

std::optional<Negotiator::Outlook> Negotiator::outlook() const {
  if (!pending_ || pending_->offers.empty()) return std::nullopt;
  const Pending& p = *pending_;
  const Offered& o = p.offers.front();
  const auto xi = static_cast<std::size_t>(p.offerer);
  const std::size_t yi = 1 - xi;
  Outlook out;
  out.codecs[xi] = knownCodec(p.offererCodecs.front()).value_or(CodecId::Pcmu);
  auto first = std::find_if(o.formats.begin(), o.formats.end(),
                            [](const sdp::Format& f) { return knownCodec(f).has_value(); });
  if (first != o.formats.end()) out.codecs[yi] = *knownCodec(*first);
  out.transcodeOnly = std::none_of(o.formats.begin(), o.formats.end(), [&p](const sdp::Format& f) {
    auto id = knownCodec(f);
    return id && std::any_of(p.offererCodecs.begin(), p.offererCodecs.end(),
                             [id](const sdp::Format& g) { return knownCodec(g) == id; });
  });
  out.srtp[xi] = p.offererSdes.has_value();
  out.srtp[yi] = !o.cryptos.empty();
  return out;
}

Negotiator::Offered Negotiator::makeOffer(const Pending& p, const LegPolicy& py) {
  Offered o;
  o.policy = py;
  std::set<unsigned> used = p.offererPts;
  auto freeDynamic = [&used](unsigned preferred) -> std::uint8_t {
    if (!used.contains(preferred)) {
      used.insert(preferred);
      return static_cast<std::uint8_t>(preferred);
    }
    for (unsigned pt = 96; pt < 128; ++pt) {
      if (!used.contains(pt)) {
        used.insert(pt);
        return static_cast<std::uint8_t>(pt);
      }
    }
    throw NegotiationError("no free dynamic payload type left");
  };
  // Relayable first (the offerer's own formats), then what we can transcode to.
  for (const auto& f : p.offererCodecs) {
    if (allowed(py, *knownCodec(f))) o.formats.push_back(f);
  }
  for (CodecId id : py.codecs) {
    bool present = std::any_of(o.formats.begin(), o.formats.end(),
                               [id](const sdp::Format& f) { return knownCodec(f) == id; });
    if (present) continue;
    const auto& info = codec::codecInfo(id);
    // A static payload type the offerer put to another use (RFC 3551 allows rebinding
    // it with a=rtpmap) cannot be ours too: the codec then gets a dynamic one.
    std::uint8_t pt = info.staticPayloadType && !used.contains(*info.staticPayloadType)
                          ? *info.staticPayloadType
                          : freeDynamic(id == CodecId::Opus ? 111 : 96);
    used.insert(pt);
    o.formats.push_back(formatFor(id, pt));
  }
  if (o.formats.empty()) throw NegotiationError("the called side allows no codec");
  if (!p.offererEvents.empty()) {
    // RFC 4733 2.1 wants the audio's clock (48000 next to Opus), but most endpoints use
    // telephone-event/8000 whatever the codec (baresip, Teams, SBCs): offer 8000 always and
    // 48000 too when Opus is offered, so that either kind can answer with events (an
    // answer without them would turn the other side's events into in-band tones, which
    // needs transcoding).
    std::set<std::uint32_t> clocks{8000u};
    for (const auto& f : o.formats) {
      if (f.clock == 48000) clocks.insert(48000u);
    }
    for (std::uint32_t clock : clocks) {
      sdp::Format event;
      auto same = std::find_if(p.offererEvents.begin(), p.offererEvents.end(),
                               [clock](const sdp::Format& e) { return e.clock == clock; });
      if (same != p.offererEvents.end()) {
        event = *same;
      } else {
        event.pt = freeDynamic(clock == 8000 ? 101 : 110);
        event.name = "telephone-event";
        event.clock = clock;
        event.fmtp = "0-16";
      }
      o.formats.push_back(event);
    }
  }
  if (p.offererCn) {
    o.formats.push_back(*p.offererCn);
  } else if (py.comfortNoise && cnOfferable(p.offererCodecs, o.formats)) {
    sdp::Format cn;
    cn.pt = used.contains(codec::kComfortNoisePayloadType) ? freeDynamic(96) : codec::kComfortNoisePayloadType;
    cn.name = "CN";
    cn.clock = 8000;
    o.formats.push_back(cn);
  }
  if (py.srtp == SrtpMode::Off) {
    o.protocol = "RTP/AVP";
  } else {
    // Optional: RTP/AVP with a=crypto, the "best effort" offer an SRTP endpoint upgrades.
    o.protocol = py.srtp == SrtpMode::Required ? "RTP/SAVP" : "RTP/AVP";
    o.cryptos = srtp::makeCryptoOffer(srtp::interopOfferSuites());
  }
  return o;
}

sdp::AudioOverride Negotiator::overrideOf(const Pending& p, const Offered& o) {
  sdp::AudioOverride out;
  out.formats = o.formats;
  out.ptimeMs = p.offererPtime;
  out.protocol = o.protocol;
  for (const auto& line : o.cryptos) out.cryptos.push_back(srtp::formatCryptoAttribute(line));
  return out;
}

sdp::AudioOverride Negotiator::answer(int from, const sdp::AudioStream& stream, bool provisional,
                                      std::uint32_t offerId) {
  if (!pending_ || pending_->offerer != 1 - from) {
    const LegState& x = legs_[static_cast<std::size_t>(from)];
    const LegState& y = legs_[static_cast<std::size_t>(1 - from)];
    if (!x.established || !y.established) {
      throw NegotiationError("an answer from leg " + std::string(from == 0 ? "A" : "B") +
                             " without an offer to it");
    }
    // The gateway sent a new peer of this leg the last SDP we gave the leg (a gateway that
    // does not ask retarget() for a blind transfer's target): its answer answers that
    // offer, made on behalf of the other leg as it stands.
    Pending p = standing(1 - from);
    p.reoffer = true;
    Offered o;
    o.policy = policy_[static_cast<std::size_t>(from)];
    o.formats = render(x).formats;
    o.protocol = x.protocol;
    if (x.sdes) o.cryptos.push_back(x.sdes->local);
    p.offers.push_back(std::move(o));
    pending_ = std::move(p);
    offerId = 0;
  }
  const Pending& p = *pending_;
  if (offerId >= p.offers.size()) {
    throw NegotiationError("an answer to offer " + std::to_string(offerId) + " of " +
                           std::to_string(p.offers.size()) + " made");
  }
  const Offered& offered = p.offers[offerId];
  const int xi = p.offerer;
  const int yi = from;
  LegState ny;
  std::vector<sdp::Format> answerEvents;
  std::vector<sdp::Format> answerCodecs;
  for (const auto& f : stream.formatInfo) {
    if (isEvent(f)) {
      answerEvents.push_back(f);
    } else if (isCn(f)) {
      if (!ny.cn) ny.cn = f;
    } else if (knownCodec(f) &&
               std::any_of(offered.formats.begin(), offered.formats.end(),
                           [&f](const sdp::Format& g) { return sameCodec(g, f); })) {
      // RFC 3264 6.1: the answer uses our numbers for what it accepted; matched by name
      // and clock, for answerers that renumber anyway.
      answerCodecs.push_back(f);
    }
  }
  if (answerCodecs.empty()) {
    throw NegotiationError("the answer has none of the offered codecs (it has " +
                           names(stream.formatInfo) + ")");
  }
  auto inOfferer = [&p](const sdp::Format& f) {
    return std::find_if(p.offererCodecs.begin(), p.offererCodecs.end(),
                        [&f](const sdp::Format& g) { return sameCodec(g, f); });
  };
  auto relayable = std::find_if(answerCodecs.begin(), answerCodecs.end(), [&](const sdp::Format& f) {
    return inOfferer(f) != p.offererCodecs.end();
  });
  ny.codec = relayable != answerCodecs.end() ? *relayable : answerCodecs.front();
  ny.known = knownCodec(ny.codec);
  ny.event = eventFor(answerEvents, ny.codec);
  ny.ptimeMs = stream.ptimeMs;
  ny.maxptimeMs = stream.maxptimeMs;
  ny.protocol = offered.protocol;
  ny.established = true;
  if (!offered.cryptos.empty()) {
    // The first a=crypto of the answer with one of our tags and its suite.
    std::string why;
    for (const auto& value : stream.cryptos) {
      ny.sdes = srtp::acceptCryptoAnswer(offered.cryptos, value, why);
      if (ny.sdes) break;
    }
    if (!ny.sdes && (isSavp(offered.protocol) || offered.policy.srtp == SrtpMode::Required)) {
      throw NegotiationError(stream.cryptos.empty()
                                 ? "SRTP is required and the answer has no a=crypto line"
                                 : "the answer's a=crypto matches none of the offered lines (" + why + ")");
    }
  }

  LegState nx;
  auto same = inOfferer(ny.codec);
  nx.codec = same != p.offererCodecs.end() ? *same : p.offererCodecs.front();
  if (same != p.offererCodecs.end()) {
    for (const auto& f : answerCodecs) {
      auto other = inOfferer(f);
      if (sameCodec(f, ny.codec) || other == p.offererCodecs.end()) continue;
      ny.more.push_back(f);
      nx.more.push_back(*other);
    }
  }
  nx.known = knownCodec(nx.codec);
  nx.event = eventFor(p.offererEvents, nx.codec);
  bool relay = sameCodec(nx.codec, ny.codec);
  // CN toward the offerer only when it offered it: relayed when both sides do it, otherwise
  // consumed and generated by the transcoder.
  if (p.offererCn && (!relay || ny.cn)) nx.cn = p.offererCn;
  if (relay && !nx.cn) ny.cn.reset();
  nx.ptimeMs = p.offererPtime;
  nx.maxptimeMs = p.offererMaxptime;
  nx.protocol = p.offererProtocol;
  nx.sdes = p.offererSdes;
  nx.established = true;

  // The answerer's side is the one of the offer it answered (another fork's target may
  // have had another policy): its re-offers are judged by it from now on.
  policy_[static_cast<std::size_t>(yi)] = offered.policy;
  legs_[static_cast<std::size_t>(xi)] = std::move(nx);
  legs_[static_cast<std::size_t>(yi)] = std::move(ny);
  plan_ = buildPlan();
  sdp::AudioOverride out = render(legs_[static_cast<std::size_t>(xi)]);
  if (!provisional) pending_.reset();
  return out;
}

sdp::AudioOverride Negotiator::render(const LegState& leg) const {
  sdp::AudioOverride out;
  out.protocol = leg.protocol;
  out.formats.push_back(leg.codec);
  out.formats.insert(out.formats.end(), leg.more.begin(), leg.more.end());
  if (leg.event) out.formats.push_back(*leg.event);
  if (leg.cn) out.formats.push_back(*leg.cn);
  out.ptimeMs = leg.ptimeMs;
  if (leg.sdes) out.cryptos.push_back(srtp::formatCryptoAttribute(leg.sdes->local));
  return out;
}

MediaPlan Negotiator::buildPlan() const {
  MediaPlan plan;
  for (std::size_t i = 0; i < 2; ++i) {
    const LegState& s = legs_[i];
    LegPlan& leg = plan.legs[i];
    if (s.sdes) {
      leg.inbound = paramsOf(s.sdes->remote);
      leg.outbound = paramsOf(s.sdes->local);
    }
    leg.codecName = s.codec.name;
    leg.codec = s.known;
    leg.codecPt = s.codec.pt;
    leg.codecClock = s.codec.clock;
    leg.ptimeMs = static_cast<std::uint16_t>(s.ptimeMs);
    if (s.event) {
      leg.eventPt = s.event->pt;
      leg.eventClock = s.event->clock;
    }
    if (s.cn) leg.cnPt = s.cn->pt;
  }
  bool relay = sameCodec(legs_[0].codec, legs_[1].codec);
  for (std::size_t i = 0; i < 2; ++i) {
    const LegState& src = legs_[i];
    const LegState& dst = legs_[1 - i];
    FlowPlan& flow = plan.flows[i];
    // Events toward a leg without telephone-event become in-band tones, which needs the
    // audio decoded and re-encoded even when both legs use the same codec.
    bool inband = src.event && !dst.event;
    if (relay && !inband) {
      flow.mode = FlowPlan::Mode::Relay;
      flow.payloadMap[src.codec.pt] = dst.codec.pt;
      for (std::size_t k = 0; k < src.more.size() && k < dst.more.size(); ++k) {
        flow.payloadMap[src.more[k].pt] = dst.more[k].pt;
      }
      if (src.event && dst.event && src.event->clock == dst.event->clock) {
        flow.payloadMap[src.event->pt] = dst.event->pt;
      }
      if (src.cn && dst.cn) flow.payloadMap[src.cn->pt] = dst.cn->pt;
      continue;
    }
    flow.mode = FlowPlan::Mode::Transcode;
    flow.transcoder.from = *src.known;
    flow.transcoder.to = *dst.known;
    // fmtp says what a side wants to receive: the source's describes its own stream only
    // loosely (RFC 7587 7.1), the target's configures our encoder.
    codec::applyFmtp(*src.known, src.codec.fmtp, flow.transcoder.fromParams);
    codec::applyFmtp(*dst.known, dst.codec.fmtp, flow.transcoder.toParams);
    flow.transcoder.toParams.ptimeMs = targetPtime(*dst.known, dst.ptimeMs, dst.maxptimeMs);
    flow.sourcePt = src.codec.pt;
    flow.targetPt = dst.codec.pt;
    flow.sourceClock = src.codec.clock;
    flow.targetClock = dst.codec.clock;
    flow.sourcePtimeMs = static_cast<std::uint16_t>(
        src.ptimeMs != 0 ? src.ptimeMs : codec::codecInfo(*src.known).defaultPtimeMs);
    if (src.event) {
      flow.sourceEventPt = src.event->pt;
      flow.sourceEventClock = src.event->clock;
    }
    if (dst.event) {
      flow.targetEventPt = dst.event->pt;
      flow.targetEventClock = dst.event->clock;
    }
    if (src.cn) flow.sourceCnPt = src.cn->pt;
    // RFC 3389 CN at the target's clock toward a codec with no silence scheme of its own.
    if (dst.cn && dst.cn->clock == dst.codec.clock && codec::usesRfc3389Cn(*dst.known)) flow.targetCnPt = dst.cn->pt;
  }
  return plan;
}

}  // namespace medius::media
