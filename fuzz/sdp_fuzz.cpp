// The media-transcoder's SDP parser and rewriter on arbitrary text: parse() either accepts or
// throws SdpError (nothing else, no crash); what render() writes is accepted again and
// carries the worker's port on the anchored stream and no ICE candidate (with our ICE-lite
// lines: exactly ours). An accepted SDP
// then goes through the offer/answer negotiation (issue 6) as an offer from leg A and as
// leg B's answer: it is either refused with NegotiationError or rendered into an SDP that
// parses again with exactly the negotiated formats.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "medius/media/negotiation.hpp"
#include "medius/media/sdp.hpp"

namespace {

using namespace medius::media;

void checkRendered(const sdp::Description& d, const sdp::AudioOverride& negotiated) {
  sdp::OriginState origin{7, 0, {}};
  std::string out = d.render({"203.0.113.5", 30000, &negotiated}, origin);
  sdp::Description again = sdp::Description::parse(out);
  if (again.audio().rtpPort != 30000) std::abort();
  if (again.audio().protocol != negotiated.protocol) std::abort();
  if (again.audio().formatInfo.size() != negotiated.formats.size()) std::abort();
  for (std::size_t i = 0; i < negotiated.formats.size(); ++i) {
    const auto& got = again.audio().formatInfo[i];
    const auto& want = negotiated.formats[i];
    if (got.pt != want.pt || got.name != want.name || got.clock != want.clock) std::abort();
  }
  if (again.audio().cryptos.size() != negotiated.cryptos.size()) std::abort();
}

void negotiate(const sdp::Description& d, SrtpMode a, SrtpMode b) {
  LegPolicy internal = defaultInternalPolicy();
  internal.srtp = a;
  LegPolicy trunk = defaultTrunkPolicy();
  trunk.srtp = b;
  Negotiator n(internal, trunk);
  try {
    checkRendered(d, n.offer(0, d.audio()));
  } catch (const NegotiationError&) {
    return;
  }
  try {
    checkRendered(d, n.answer(1, d.audio(), false));
    if (!n.plan()) std::abort();
    // A re-offer from B with the same text, answered by A with it.
    checkRendered(d, n.offer(1, d.audio()));
    checkRendered(d, n.answer(0, d.audio(), false));
  } catch (const NegotiationError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    sdp::Description d = sdp::Description::parse(text);
    sdp::OriginState origin{42, 0, {}};
    std::string out = d.render({"203.0.113.5", 20000}, origin);
    sdp::Description again = sdp::Description::parse(out);
    if (again.audio().rtpPort != 20000) std::abort();
    if (again.audio().formats != d.audio().formats) std::abort();
    if (d.audio().address != "0.0.0.0" && again.audio().address != "203.0.113.5") std::abort();
    if (out.find("\r\na=candidate:") != std::string::npos) std::abort();
    // The same description again leaves the origin version alone.
    if (d.render({"203.0.113.5", 20000}, origin) != out) std::abort();
    // With our ICE-lite lines: they parse back as exactly ours (the peer's are dropped).
    sdp::IceAdvert ice{"ufrag123", "password-of-24-chars-xyz"};
    sdp::OriginState iceOrigin{43, 0, {}};
    sdp::Description withIce = sdp::Description::parse(d.render({"203.0.113.5", 20000, nullptr, &ice}, iceOrigin));
    if (withIce.audio().iceUfrag != ice.ufrag || withIce.audio().icePwd != ice.pwd || !withIce.audio().iceLite) {
      std::abort();
    }
    if (withIce.audio().iceCandidates != (d.audio().rtcpMux ? 1u : 2u)) std::abort();
    negotiate(d, SrtpMode::Optional, SrtpMode::Off);
    negotiate(d, SrtpMode::Required, SrtpMode::Required);
  } catch (const sdp::SdpError&) {
  }
  return 0;
}
