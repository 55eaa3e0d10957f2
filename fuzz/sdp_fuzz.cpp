// The media-transcoder's SDP parser and rewriter on arbitrary text: parse() either accepts or
// throws SdpError (nothing else, no crash); what render() writes is accepted again and
// carries the worker's port on the anchored stream and no ICE candidate.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "medius/media/sdp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace medius::media::sdp;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    Description d = Description::parse(text);
    OriginState origin{42, 0, {}};
    std::string out = d.render({"203.0.113.5", 20000}, origin);
    Description again = Description::parse(out);
    if (again.audio().rtpPort != 20000) std::abort();
    if (again.audio().formats != d.audio().formats) std::abort();
    if (d.audio().address != "0.0.0.0" && again.audio().address != "203.0.113.5") std::abort();
    if (out.find("\r\na=candidate:") != std::string::npos) std::abort();
    // The same description again leaves the origin version alone.
    if (d.render({"203.0.113.5", 20000}, origin) != out) std::abort();
  } catch (const SdpError&) {
  }
  return 0;
}
