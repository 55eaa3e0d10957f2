#include "medius/media/sdp.hpp"

#include <arpa/inet.h>

#include <charconv>

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
  for (const auto& media : media_) {
    auto f = fields(media.lines[0].value);
    std::string mline = std::string(f[0]) + " ";
    std::string_view portField = f[1];
    std::string_view count = portField.find('/') == std::string_view::npos
                                 ? std::string_view()
                                 : portField.substr(portField.find('/'));
    mline += media.anchored ? std::to_string(params.rtpPort) : std::string("0");
    mline += count;
    for (std::size_t i = 2; i < f.size(); ++i) {
      mline += ' ';
      mline += f[i];
    }
    append('m', mline);
    for (std::size_t i = 1; i < media.lines.size(); ++i) {
      const Line& line = media.lines[i];
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
