// A small SDP (RFC 8866) parser and rewriter for anchoring: just what the relay needs.
//
// parse() checks the lines it relies on (v=, o=, c=, m=, a=rtcp) and keeps every line as
// text; render() writes the description back with the worker's address and port in it:
//   - o= is ours (one origin per outgoing leg, OriginState): "medius <id> <version> IN IP4
//     <advertised>", the version going up only when the body changes (RFC 3264 section 8);
//   - c= (session and media level) -> the advertised address, except c=0.0.0.0, which is
//     kept: it is the RFC 2543 way of putting the peer on hold;
//   - the first m=audio line with a non-zero port -> the worker's RTP port; a=rtcp -> RTP
//     port + 1, or the RTP port itself with a=rtcp-mux (RFC 5761 section 5.1.3);
//   - any other m= line -> port 0 (declined: this slice anchors one audio stream);
//   - ICE lines (a=candidate, a=remote-candidates, a=ice-*) are dropped: they carry the
//     peer's own addresses and would take the media around the worker. With
//     RewriteParams::ice the worker's own ICE-lite lines (RFC 8445 lite, RFC 8839) are
//     written instead: a=ice-lite at session level, a=ice-ufrag, a=ice-pwd and one host
//     candidate per component (RTP, and RTCP unless rtcp-mux) with the advertised address;
//   - everything else (rtpmap, fmtp, ptime, direction, crypto, rtcp-mux, ...) passes as text.
// The media itself is never rewritten, so SSRC, sequence numbers and timestamps stay
// continuous across re-offers: the relay forwards packets byte for byte.
//
// Thread: values; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace medius::media::sdp {

// Invalid SDP; what() names the line: "line 4 (m=audio x RTP/AVP 0): bad port".
class SdpError : public std::runtime_error {
 public:
  explicit SdpError(const std::string& message) : std::runtime_error(message) {}
};

enum class Direction { SendRecv, SendOnly, RecvOnly, Inactive };

// One payload format of the anchored stream: the m= line's number with its a=rtpmap (or
// the RFC 3551 static assignment) and a=fmtp.
struct Format {
  std::uint8_t pt = 0;
  std::string name;           // encoding name as written ("PCMU", "opus", "telephone-event")
  std::uint32_t clock = 8000;
  std::uint8_t channels = 1;
  std::string fmtp;           // the a=fmtp value after "<pt> ", "" when none
  bool operator==(const Format&) const = default;
};

// The anchored audio stream as the sender of the SDP described it.
struct AudioStream {
  // Effective connection address (media-level c= over session-level); "0.0.0.0" on hold.
  std::string address;
  // 0 when the stream is rejected or disabled.
  std::uint16_t rtpPort = 0;
  // a=rtcp's port, or rtpPort + 1; rtpPort with rtcp-mux.
  std::uint16_t rtcpPort = 0;
  // a=rtcp's address when given, else `address`.
  std::string rtcpAddress;
  bool rtcpMux = false;
  Direction direction = Direction::SendRecv;
  // Payload types of the m= line, in order (as text: they are passed through).
  std::vector<std::string> formats;
  // The numeric ones with their rtpmap/fmtp, in m= line order. A dynamic number without
  // a=rtpmap is left out (nobody can know what it is).
  std::vector<Format> formatInfo;
  // a=ptime / a=maxptime (milliseconds), 0 when absent.
  std::uint32_t ptimeMs = 0;
  std::uint32_t maxptimeMs = 0;
  // The values of the stream's a=crypto lines (after "a=crypto:"), in order.
  std::vector<std::string> cryptos;
  // "RTP/AVP", "RTP/SAVP", ...
  std::string protocol;
  // ICE (RFC 8839): a=ice-ufrag / a=ice-pwd (media level over session level), "" when
  // absent; a=ice-lite at session level; how many a=candidate lines the stream has.
  std::string iceUfrag;
  std::string icePwd;
  bool iceLite = false;
  std::size_t iceCandidates = 0;
  // Both credentials are there: the peer does ICE.
  bool ice() const { return !iceUfrag.empty() && !icePwd.empty(); }
};

// The worker's ICE-lite credentials toward one leg (RewriteParams::ice).
struct IceAdvert {
  std::string ufrag;  // 4..256 ice-chars (RFC 8839 5.4)
  std::string pwd;    // 22..256 ice-chars
};

// What negotiation puts in place of the anchored stream's own formats, protocol, rtpmap,
// fmtp, ptime and crypto lines when rendering for the other leg. Everything else of the
// stream (direction, rtcp, rtcp-mux, other attributes) still passes through.
struct AudioOverride {
  std::string protocol;          // "RTP/AVP" or "RTP/SAVP"
  std::vector<Format> formats;   // in m= line order; each gets a=rtpmap (and a=fmtp)
  std::uint32_t ptimeMs = 0;     // a=ptime when non-zero
  std::vector<std::string> cryptos;  // a=crypto values
};

// Our o= line toward one leg; keep one per outgoing leg for the session's life.
struct OriginState {
  std::uint64_t sessionId = 0;
  std::uint64_t version = 0;
  // The last body sent without its o= line (a change bumps the version).
  std::string lastBody;
};

struct RewriteParams {
  // The worker's address for the peer that receives this SDP.
  std::string address;
  // The worker's RTP port for that peer (RTCP is rtpPort + 1).
  std::uint16_t rtpPort = 0;
  // Negotiated formats and crypto for that peer; nullptr renders the stream's own.
  const AudioOverride* audio = nullptr;
  // Our ICE-lite lines for that peer; nullptr: none (the peer's own are dropped anyway).
  const IceAdvert* ice = nullptr;
};

class Description {
 public:
  // Throws SdpError naming the line. Accepts CRLF and LF line ends; at most 64 KiB.
  static Description parse(std::string_view text);

  // The first m=audio stream (there is always one after parse()).
  const AudioStream& audio() const { return audio_; }

  // The description for the other leg (CRLF line ends); updates `origin`.
  std::string render(const RewriteParams& params, OriginState& origin) const;

 private:
  struct Line {
    char type;
    std::string value;
  };
  struct Media {
    std::vector<Line> lines;  // lines[0] is the m= line
    bool anchored = false;
  };

  std::vector<Line> session_;
  std::vector<Media> media_;
  AudioStream audio_;
};

std::string_view directionName(Direction direction);

}  // namespace medius::media::sdp
