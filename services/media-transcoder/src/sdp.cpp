#include "medius/media/sdp.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <map>

namespace medius::media::sdp {

namespace {

constexpr std::size_t kMaxSdpBytes = 64 * 1024;
constexpr std::size_t kMaxQuotedLine = 60;

std::vector<std::string_view> fields(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    std::size_t start = i;
    while (i < text.size() && text[i] != ' ') ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

std::optional<std::uint32_t> number(std::string_view text, std::uint32_t max) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  std::uint32_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value > max) return std::nullopt;
  return value;
}

bool isIpv4(std::string_view text) {
  if (text.size() > 15) return false;
  std::string copy(text);
  in_addr addr{};
  return ::inet_pton(AF_INET, copy.c_str(), &addr) == 1;
}

// Collects the problem with the line it was found on.
struct LineRef {
  std::size_t number;
  std::string_view text;

  [[noreturn]] void fail(std::string_view problem) const {
    std::string quoted(text.substr(0, kMaxQuotedLine));
    for (char& c : quoted) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    }
    if (text.size() > kMaxQuotedLine) quoted += "...";
    std::string where = "line " + std::to_string(number);
    if (!quoted.empty()) where += " (" + quoted + ")";
    throw SdpError(where + ": " + std::string(problem));
  }
};

// "IN IP4 <addr>[/ttl[/n]]" -> the address.
std::string parseConnection(const LineRef& ref, std::string_view value) {
  auto f = fields(value);
  if (f.size() != 3 || f[0] != "IN") ref.fail("expected c=IN IP4 <address>");
  if (f[1] == "IP6") ref.fail("IPv6 is not supported yet");
  if (f[1] != "IP4") ref.fail("unknown address type \"" + std::string(f[1].substr(0, 8)) + "\"");
  std::string_view address = f[2].substr(0, f[2].find('/'));
  if (!isIpv4(address)) ref.fail("expected an IPv4 address (host names are not supported)");
  return std::string(address);
}

std::optional<Direction> parseDirection(std::string_view attribute) {
  if (attribute == "sendrecv") return Direction::SendRecv;
  if (attribute == "sendonly") return Direction::SendOnly;
  if (attribute == "recvonly") return Direction::RecvOnly;
  if (attribute == "inactive") return Direction::Inactive;
  return std::nullopt;
}

// RFC 3551 table 4: the static audio payload types an SDP may use without a=rtpmap.
std::optional<Format> staticFormat(std::uint32_t pt) {
  switch (pt) {
    case 0: return Format{0, "PCMU", 8000, 1, {}};
    case 3: return Format{3, "GSM", 8000, 1, {}};
    case 4: return Format{4, "G723", 8000, 1, {}};
    case 8: return Format{8, "PCMA", 8000, 1, {}};
    case 9: return Format{9, "G722", 8000, 1, {}};
    case 13: return Format{13, "CN", 8000, 1, {}};
    case 18: return Format{18, "G729", 8000, 1, {}};
    default: return std::nullopt;
  }
}

// Attributes negotiation regenerates when rendering with an AudioOverride.
bool isFormatAttribute(std::string_view value) {
  return value.starts_with("rtpmap:") || value.starts_with("fmtp:") ||
         value.starts_with("ptime:") || value.starts_with("maxptime:") ||
         value.starts_with("crypto:");
}

bool isIceAttribute(std::string_view value) {
  return value.starts_with("candidate:") || value.starts_with("remote-candidates:") ||
         value.starts_with("ice-");
}

}  // namespace

std::string_view directionName(Direction direction) {
  switch (direction) {
    case Direction::SendRecv: return "sendrecv";
    case Direction::SendOnly: return "sendonly";
    case Direction::RecvOnly: return "recvonly";
    case Direction::Inactive: return "inactive";
  }
  return "sendrecv";
}

Description Description::parse(std::string_view text) {
  if (text.size() > kMaxSdpBytes) throw SdpError("line 1: SDP larger than 64 KiB");
  Description d;
  std::optional<std::string> sessionAddress;
  std::optional<Direction> sessionDirection;
  bool haveOrigin = false;
  bool haveAudio = false;
  // The anchored section's own values while it is being read.
  std::optional<std::string> mediaAddress;
  std::optional<std::uint16_t> rtcpPort;
  std::optional<std::string> rtcpAddress;
  std::optional<Direction> mediaDirection;
  std::size_t audioLine = 0;
  std::map<std::uint32_t, Format> rtpmaps;
  std::map<std::uint32_t, std::string> fmtps;

  std::size_t lineNumber = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    std::string_view raw = text.substr(pos, end == std::string_view::npos ? text.size() - pos : end - pos);
    pos = end == std::string_view::npos ? text.size() : end + 1;
    ++lineNumber;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    LineRef ref{lineNumber, raw};
    if (raw.empty()) {
      if (pos >= text.size()) break;  // a trailing empty line is tolerated
      ref.fail("empty line");
    }
    if (raw.size() < 2 || raw[1] != '=' || raw[0] < 'a' || raw[0] > 'z') {
      ref.fail("expected <letter>=<value>");
    }
    for (char c : raw) {
      if (c == '\0' || c == '\r') ref.fail("control character in the line");
    }
    char type = raw[0];
    std::string_view value = raw.substr(2);
    if (lineNumber == 1) {
      if (type != 'v' || value != "0") ref.fail("the first line must be v=0");
    } else if (type == 'v') {
      ref.fail("v= may appear only once, first");
    }
    Line line{type, std::string(value)};

    if (type == 'm') {
      auto f = fields(value);
      if (f.size() < 4) ref.fail("expected m=<media> <port> <proto> <format>...");
      std::string_view portText = f[1].substr(0, f[1].find('/'));
      auto port = number(portText, 65535);
      if (!port) ref.fail("bad port \"" + std::string(portText.substr(0, 8)) + "\"");
      Media media;
      media.lines.push_back(std::move(line));
      if (!haveAudio && f[0] == "audio" && *port != 0) {
        haveAudio = true;
        audioLine = lineNumber;
        media.anchored = true;
        d.audio_.rtpPort = static_cast<std::uint16_t>(*port);
        d.audio_.protocol = std::string(f[2]);
        for (std::size_t i = 3; i < f.size(); ++i) d.audio_.formats.emplace_back(f[i]);
      }
      d.media_.push_back(std::move(media));
      continue;
    }

    bool inAnchored = !d.media_.empty() && d.media_.back().anchored;
    if (type == 'o') {
      if (!d.media_.empty() || haveOrigin) ref.fail("o= must appear once, at session level");
      if (fields(value).size() != 6) ref.fail("expected o=<user> <id> <version> IN IP4 <address>");
      haveOrigin = true;
    } else if (type == 'c') {
      std::string address = parseConnection(ref, value);
      if (d.media_.empty()) {
        sessionAddress = address;
      } else if (inAnchored) {
        mediaAddress = address;
      }
    } else if (type == 'a') {
      if (value.starts_with("rtcp:")) {
        auto f = fields(value.substr(5));
        auto port = f.empty() ? std::nullopt : number(f[0], 65535);
        if (!port || *port == 0) ref.fail("expected a=rtcp:<port> [IN IP4 <address>]");
        if (f.size() != 1 && f.size() != 4) ref.fail("expected a=rtcp:<port> [IN IP4 <address>]");
        if (inAnchored) {
          rtcpPort = static_cast<std::uint16_t>(*port);
          if (f.size() == 4) {
            std::string joined = std::string(f[1]) + " " + std::string(f[2]) + " " + std::string(f[3]);
            rtcpAddress = parseConnection(ref, joined);
          }
        }
      } else if (value == "rtcp-mux") {
        if (inAnchored) d.audio_.rtcpMux = true;
      } else if (value.starts_with("ice-ufrag:") || value.starts_with("ice-pwd:")) {
        // Session level, overridden by the anchored stream's own (RFC 8839 5.4).
        bool isUfrag = value.starts_with("ice-ufrag:");
        std::string_view credential = value.substr(isUfrag ? 10 : 8);
        if (credential.empty() || credential.size() > 256) {
          ref.fail(isUfrag ? "expected a=ice-ufrag:<4 to 256 characters>" : "expected a=ice-pwd:<22 to 256 characters>");
        }
        if (d.media_.empty() || inAnchored) {
          (isUfrag ? d.audio_.iceUfrag : d.audio_.icePwd) = std::string(credential);
        }
      } else if (value == "ice-lite") {
        if (d.media_.empty()) d.audio_.iceLite = true;
      } else if (inAnchored && value.starts_with("candidate:")) {
        ++d.audio_.iceCandidates;
      } else if (inAnchored && (value.starts_with("rtpmap:") || value.starts_with("fmtp:"))) {
        // a=rtpmap:<pt> <name>/<clock>[/<channels>], a=fmtp:<pt> <parameters>
        bool isMap = value.starts_with("rtpmap:");
        std::string_view rest = value.substr(isMap ? 7 : 5);
        std::size_t space = rest.find(' ');
        auto pt = number(rest.substr(0, space), 127);
        if (!pt || space == std::string_view::npos) {
          ref.fail(isMap ? "expected a=rtpmap:<pt> <name>/<clock>" : "expected a=fmtp:<pt> <parameters>");
        }
        std::string_view param = rest.substr(space + 1);
        while (!param.empty() && param.front() == ' ') param.remove_prefix(1);
        if (isMap) {
          std::size_t slash = param.find('/');
          std::string_view name = param.substr(0, slash);
          std::string_view after = slash == std::string_view::npos ? std::string_view() : param.substr(slash + 1);
          std::size_t slash2 = after.find('/');
          auto clock = number(after.substr(0, slash2), 1000000);
          std::optional<std::uint32_t> channels = 1;
          if (slash2 != std::string_view::npos) channels = number(after.substr(slash2 + 1), 8);
          if (name.empty() || name.size() > 32 || !clock || *clock == 0 || !channels || *channels == 0) {
            ref.fail("expected a=rtpmap:<pt> <name>/<clock>[/<channels>]");
          }
          rtpmaps[*pt] = Format{static_cast<std::uint8_t>(*pt), std::string(name), *clock,
                                static_cast<std::uint8_t>(*channels), {}};
        } else {
          fmtps[*pt] = std::string(param);
        }
      } else if (inAnchored && (value.starts_with("ptime:") || value.starts_with("maxptime:"))) {
        bool isPtime = value.starts_with("ptime:");
        // Some stacks write fractions ("a=ptime:20.0"); the integer part is what counts.
        std::string_view digits = value.substr(isPtime ? 6 : 9);
        digits = digits.substr(0, digits.find('.'));
        auto ms = number(digits, 10000);
        if (!ms) ref.fail(isPtime ? "expected a=ptime:<milliseconds>" : "expected a=maxptime:<milliseconds>");
        (isPtime ? d.audio_.ptimeMs : d.audio_.maxptimeMs) = *ms;
      } else if (inAnchored && value.starts_with("crypto:")) {
        if (d.audio_.cryptos.size() < 16) d.audio_.cryptos.emplace_back(value.substr(7));
      } else if (auto dir = parseDirection(value)) {
        if (d.media_.empty()) {
          sessionDirection = dir;
        } else if (inAnchored) {
          mediaDirection = dir;
        }
      }
    }
    if (d.media_.empty()) {
      d.session_.push_back(std::move(line));
    } else {
      d.media_.back().lines.push_back(std::move(line));
    }
  }

  if (lineNumber == 0) throw SdpError("line 1: empty SDP");
  if (!haveOrigin) throw SdpError("line " + std::to_string(lineNumber) + ": no o= line");
  if (!haveAudio) {
    throw SdpError("line " + std::to_string(lineNumber) + ": no m=audio line with a non-zero port");
  }
  if (mediaAddress) {
    d.audio_.address = *mediaAddress;
  } else if (sessionAddress) {
    d.audio_.address = *sessionAddress;
  } else {
    throw SdpError("line " + std::to_string(audioLine) +
                   ": m=audio has no c= line (neither at media nor at session level)");
  }
  d.audio_.direction = mediaDirection.value_or(sessionDirection.value_or(Direction::SendRecv));
  if (d.audio_.rtcpMux) {
    d.audio_.rtcpPort = d.audio_.rtpPort;
  } else if (rtcpPort) {
    d.audio_.rtcpPort = *rtcpPort;
  } else {
    d.audio_.rtcpPort = d.audio_.rtpPort == 65535 ? 0 : static_cast<std::uint16_t>(d.audio_.rtpPort + 1);
  }
  d.audio_.rtcpAddress = rtcpAddress.value_or(d.audio_.address);
  for (const auto& formatText : d.audio_.formats) {
    auto pt = number(formatText, 127);
    if (!pt) continue;
    std::optional<Format> format;
    if (auto it = rtpmaps.find(*pt); it != rtpmaps.end()) {
      format = it->second;
    } else {
      format = staticFormat(*pt);
    }
    if (!format) continue;
    if (auto it = fmtps.find(*pt); it != fmtps.end()) format->fmtp = it->second;
    d.audio_.formatInfo.push_back(std::move(*format));
  }
  return d;
}

std::string Description::render(const RewriteParams& params, OriginState& origin) const {
  auto connection = [&](const std::string& value) {
    // c=0.0.0.0 is hold (RFC 2543) and stays; everything else becomes us.
    auto f = fields(value);
    if (f.size() == 3 && f[2] == "0.0.0.0") return value;
    return "IN IP4 " + params.address;
  };
  std::string body;
  body.reserve(1024);
  auto append = [&](char type, std::string_view value) {
    body += type;
    body += '=';
    body += value;
    body += "\r\n";
  };
  for (const auto& line : session_) {
    if (line.type == 'o') continue;  // ours is added below
    if (line.type == 'c') {
      append('c', connection(line.value));
    } else if (line.type == 'a' && isIceAttribute(line.value)) {
      continue;
    } else {
      append(line.type, line.value);
    }
  }
  if (params.ice) append('a', "ice-lite");
  for (const auto& media : media_) {
    auto f = fields(media.lines[0].value);
    std::string mline = std::string(f[0]) + " ";
    std::string_view portField = f[1];
    std::string_view count = portField.find('/') == std::string_view::npos
                                 ? std::string_view()
                                 : portField.substr(portField.find('/'));
    mline += media.anchored ? std::to_string(params.rtpPort) : std::string("0");
    mline += count;
    const AudioOverride* negotiated = media.anchored ? params.audio : nullptr;
    if (negotiated) {
      mline += ' ';
      mline += negotiated->protocol;
      for (const auto& format : negotiated->formats) mline += ' ' + std::to_string(format.pt);
    } else {
      for (std::size_t i = 2; i < f.size(); ++i) {
        mline += ' ';
        mline += f[i];
      }
    }
    append('m', mline);
    bool generated = false;
    auto appendNegotiated = [&] {
      // The negotiated attributes go before the stream's other a= lines (c= and b= come
      // first in a media section, RFC 8866 5).
      if (!negotiated || generated) return;
      generated = true;
      for (const auto& format : negotiated->formats) {
        std::string map = "rtpmap:" + std::to_string(format.pt) + " " + format.name + "/" +
                          std::to_string(format.clock);
        if (format.channels > 1) map += "/" + std::to_string(format.channels);
        append('a', map);
        if (!format.fmtp.empty()) append('a', "fmtp:" + std::to_string(format.pt) + " " + format.fmtp);
      }
      if (negotiated->ptimeMs != 0) append('a', "ptime:" + std::to_string(negotiated->ptimeMs));
      for (const auto& crypto : negotiated->cryptos) append('a', "crypto:" + crypto);
    };
    for (std::size_t i = 1; i < media.lines.size(); ++i) {
      const Line& line = media.lines[i];
      if (line.type == 'a') appendNegotiated();
      if (negotiated && line.type == 'a' && isFormatAttribute(line.value)) continue;
      if (line.type == 'c') {
        append('c', connection(line.value));
      } else if (line.type == 'a' && isIceAttribute(line.value)) {
        continue;
      } else if (line.type == 'a' && line.value.starts_with("rtcp:") && media.anchored) {
        std::uint16_t port = audio_.rtcpMux ? params.rtpPort
                                            : static_cast<std::uint16_t>(params.rtpPort + 1);
        std::string value = "rtcp:" + std::to_string(port);
        if (fields(line.value).size() == 4) value += " IN IP4 " + params.address;
        append('a', value);
      } else {
        append(line.type, line.value);
      }
    }
    appendNegotiated();
    if (media.anchored && params.ice) {
      append('a', "ice-ufrag:" + params.ice->ufrag);
      append('a', "ice-pwd:" + params.ice->pwd);
      // One host candidate per component (RFC 8445 5.1.2.1 priority, type preference 126,
      // local preference 65535); RTCP on its own port unless rtcp-mux.
      int components = audio_.rtcpMux ? 1 : 2;
      for (int component = 1; component <= components; ++component) {
        std::uint32_t priority = (126u << 24) | (65535u << 8) | static_cast<std::uint32_t>(256 - component);
        auto port = static_cast<std::uint16_t>(params.rtpPort + component - 1);
        append('a', "candidate:1 " + std::to_string(component) + " UDP " + std::to_string(priority) + " " +
                        params.address + " " + std::to_string(port) + " typ host");
      }
    }
  }
  if (origin.sessionId == 0) {
    origin.sessionId = 1;  // callers seed it; never 0 on the wire
  }
  if (body != origin.lastBody) {
    ++origin.version;
    origin.lastBody = body;
  }
  std::string out;
  out.reserve(body.size() + 80);
  // v= is the first line of body; o= goes right after it.
  std::size_t afterVersion = body.find("\r\n") + 2;
  out.append(body, 0, afterVersion);
  out += "o=medius " + std::to_string(origin.sessionId) + " " + std::to_string(origin.version) +
         " IN IP4 " + params.address + "\r\n";
  out.append(body, afterVersion, std::string::npos);
  return out;
}

}  // namespace medius::media::sdp
