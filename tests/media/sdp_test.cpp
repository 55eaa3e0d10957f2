// SDP parsing and rewriting (medius/media/sdp.hpp).
#include <gtest/gtest.h>

#include "medius/media/sdp.hpp"

namespace medius::media::sdp {
namespace {

// Lines of a rendered SDP (CRLF), for assertions.
std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find("\r\n", pos);
    EXPECT_NE(end, std::string::npos) << "every line ends with CRLF";
    if (end == std::string::npos) break;
    out.push_back(text.substr(pos, end - pos));
    pos = end + 2;
  }
  return out;
}

bool has(const std::vector<std::string>& all, const std::string& line) {
  return std::find(all.begin(), all.end(), line) != all.end();
}

const char* kOffer =
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=rtcp:49171\r\n"
    "a=sendrecv\r\n";

TEST(Sdp, ParsesTheAudioStreamWithRtcpAttribute) {
  auto d = Description::parse(kOffer);
  EXPECT_EQ(d.audio().address, "192.0.2.10");
  EXPECT_EQ(d.audio().rtpPort, 49170);
  EXPECT_EQ(d.audio().rtcpPort, 49171);
  EXPECT_EQ(d.audio().rtcpAddress, "192.0.2.10");
  EXPECT_FALSE(d.audio().rtcpMux);
  EXPECT_EQ(d.audio().direction, Direction::SendRecv);
  EXPECT_EQ(d.audio().protocol, "RTP/AVP");
  EXPECT_EQ(d.audio().formats, (std::vector<std::string>{"0", "8", "101"}));
}

TEST(Sdp, RewritesAddressPortsAndRtcpAndKeepsPayloadsIncludingTelephoneEvent) {
  auto d = Description::parse(kOffer);
  OriginState origin{77, 0, {}};
  auto out = lines(d.render({"203.0.113.5", 20002}, origin));
  EXPECT_EQ(out[0], "v=0");
  EXPECT_EQ(out[1], "o=medius 77 1 IN IP4 203.0.113.5");
  EXPECT_TRUE(has(out, "c=IN IP4 203.0.113.5"));
  EXPECT_TRUE(has(out, "m=audio 20002 RTP/AVP 0 8 101"));
  EXPECT_TRUE(has(out, "a=rtcp:20003"));
  EXPECT_TRUE(has(out, "a=rtpmap:101 telephone-event/8000"));
  EXPECT_TRUE(has(out, "a=fmtp:101 0-16"));
  EXPECT_TRUE(has(out, "a=ptime:20"));
  EXPECT_TRUE(has(out, "a=sendrecv"));
  for (const auto& line : out) EXPECT_EQ(line.find("192.0.2.10"), std::string::npos) << line;
}

TEST(Sdp, OriginVersionMovesOnlyWhenTheBodyChanges) {
  OriginState origin{5, 0, {}};
  auto d = Description::parse(kOffer);
  auto first = d.render({"203.0.113.5", 20002}, origin);
  auto same = d.render({"203.0.113.5", 20002}, origin);
  EXPECT_EQ(first, same);
  EXPECT_NE(first.find("o=medius 5 1 "), std::string::npos);
  std::string held = kOffer;
  held.replace(held.find("a=sendrecv"), 10, "a=sendonly");
  auto changed = Description::parse(held).render({"203.0.113.5", 20002}, origin);
  EXPECT_NE(changed.find("o=medius 5 2 "), std::string::npos) << changed;
}

TEST(Sdp, RtcpMuxKeepsRtcpOnTheRtpPort) {
  const char* offer =
      "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
      "m=audio 40000 RTP/AVP 0\r\na=rtcp:40000\r\na=rtcp-mux\r\n";
  auto d = Description::parse(offer);
  EXPECT_TRUE(d.audio().rtcpMux);
  EXPECT_EQ(d.audio().rtcpPort, 40000);
  OriginState origin{1, 0, {}};
  auto out = lines(d.render({"127.0.0.1", 20010}, origin));
  EXPECT_TRUE(has(out, "a=rtcp:20010"));
  EXPECT_TRUE(has(out, "a=rtcp-mux"));
}

TEST(Sdp, RtcpWithAddressIsRewrittenToUs) {
  const char* offer =
      "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
      "m=audio 40000 RTP/AVP 0\r\na=rtcp:40009 IN IP4 192.0.2.99\r\n";
  auto d = Description::parse(offer);
  EXPECT_EQ(d.audio().rtcpPort, 40009);
  EXPECT_EQ(d.audio().rtcpAddress, "192.0.2.99");
  OriginState origin{1, 0, {}};
  auto out = lines(d.render({"127.0.0.1", 20010}, origin));
  EXPECT_TRUE(has(out, "a=rtcp:20011 IN IP4 127.0.0.1"));
}

TEST(Sdp, MediaLevelConnectionWinsOverSessionLevel) {
  const char* offer =
      "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
      "m=audio 40000 RTP/AVP 8\r\nc=IN IP4 198.51.100.7\r\n";
  auto d = Description::parse(offer);
  EXPECT_EQ(d.audio().address, "198.51.100.7");
  EXPECT_EQ(d.audio().rtcpPort, 40001);
  OriginState origin{1, 0, {}};
  auto out = lines(d.render({"127.0.0.1", 20000}, origin));
  EXPECT_EQ(std::count(out.begin(), out.end(), "c=IN IP4 127.0.0.1"), 2);
}

TEST(Sdp, MediaLevelConnectionOnly) {
  const char* offer =
      "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nt=0 0\nm=audio 40000 RTP/AVP 8\nc=IN IP4 198.51.100.7\n";
  auto d = Description::parse(offer);  // LF line ends are accepted too
  EXPECT_EQ(d.audio().address, "198.51.100.7");
  OriginState origin{1, 0, {}};
  auto out = lines(d.render({"127.0.0.1", 20000}, origin));
  EXPECT_TRUE(has(out, "c=IN IP4 127.0.0.1"));
}

TEST(Sdp, HoldWithSendonlyAndZeroAddressIsPassedOn) {
  const char* offer =
      "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
      "m=audio 40000 RTP/AVP 0\r\na=sendonly\r\n";
  auto d = Description::parse(offer);
  EXPECT_EQ(d.audio().address, "0.0.0.0");
  EXPECT_EQ(d.audio().direction, Direction::SendOnly);
  OriginState origin{1, 0, {}};
  auto out = lines(d.render({"127.0.0.1", 20000}, origin));
  EXPECT_TRUE(has(out, "c=IN IP4 0.0.0.0"));
  EXPECT_TRUE(has(out, "a=sendonly"));
  EXPECT_TRUE(has(out, "m=audio 20000 RTP/AVP 0"));
}

TEST(Sdp, SessionLevelDirectionAppliesToTheStream) {
  const char* offer =
      "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\na=inactive\r\n"
      "m=audio 40000 RTP/AVP 0\r\n";
  EXPECT_EQ(Description::parse(offer).audio().direction, Direction::Inactive);
}

TEST(Sdp, OtherStreamsAreDeclinedAndIceAndCryptoHandled) {
  const char* offer =
      "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
      "m=audio 40000 RTP/SAVP 0\r\n"
      "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
      "a=candidate:1 1 UDP 2130706431 192.0.2.10 40000 typ host\r\n"
      "a=ice-ufrag:abcd\r\n"
      "m=video 40002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";
  auto d = Description::parse(offer);
  OriginState origin{1, 0, {}};
  auto out = lines(d.render({"127.0.0.1", 20000}, origin));
  EXPECT_TRUE(has(out, "m=audio 20000 RTP/SAVP 0"));
  EXPECT_TRUE(has(out, "m=video 0 RTP/AVP 96"));
  EXPECT_TRUE(has(out, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"));
  for (const auto& line : out) {
    EXPECT_FALSE(line.starts_with("a=candidate")) << line;
    EXPECT_FALSE(line.starts_with("a=ice-")) << line;
  }
}

TEST(Sdp, ReadsIceCredentialsAndWritesOursInstead) {
  const char* offer =
      "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\na=ice-ufrag:sess\r\na=ice-pwd:session-level-password-22\r\n"
      "c=IN IP4 192.0.2.10\r\nt=0 0\r\n"
      "m=audio 40000 RTP/AVP 0\r\n"
      "a=ice-ufrag:F7gI\r\na=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n"
      "a=candidate:1 1 UDP 2130706431 192.0.2.10 40000 typ host\r\n"
      "a=candidate:2 1 UDP 1694498815 198.51.100.3 61000 typ srflx raddr 192.0.2.10 rport 40000\r\n"
      "a=rtcp-mux\r\n";
  auto d = Description::parse(offer);
  EXPECT_EQ(d.audio().iceUfrag, "F7gI");  // the stream's own over the session's
  EXPECT_EQ(d.audio().icePwd, "x9cml/YzichV2+XlhiMu8g");
  EXPECT_EQ(d.audio().iceCandidates, 2u);
  EXPECT_FALSE(d.audio().iceLite);
  EXPECT_TRUE(d.audio().ice());
  EXPECT_FALSE(Description::parse(kOffer).audio().ice());

  IceAdvert ours{"OURSufrag", "our-password-is-24-chars"};
  OriginState origin{1, 0, {}};
  std::string text = d.render({"203.0.113.5", 20000, nullptr, &ours}, origin);
  auto out = lines(text);
  EXPECT_TRUE(has(out, "a=ice-lite"));
  EXPECT_TRUE(has(out, "a=ice-ufrag:OURSufrag"));
  EXPECT_TRUE(has(out, "a=ice-pwd:our-password-is-24-chars"));
  // rtcp-mux: one component.
  EXPECT_TRUE(has(out, "a=candidate:1 1 UDP 2130706431 203.0.113.5 20000 typ host"));
  for (const auto& line : out) {
    EXPECT_EQ(line.find("F7gI"), std::string::npos) << line;
    EXPECT_EQ(line.find("sess"), std::string::npos) << line;
    EXPECT_EQ(line.find("srflx"), std::string::npos) << line;
  }
  auto again = Description::parse(text);
  EXPECT_TRUE(again.audio().iceLite);
  EXPECT_EQ(again.audio().iceCandidates, 1u);
  EXPECT_LT(text.find("a=ice-lite"), text.find("m=audio"));
}

void expectError(const std::string& sdp, const std::string& expected) {
  try {
    Description::parse(sdp);
    ADD_FAILURE() << "accepted: " << sdp;
  } catch (const SdpError& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

TEST(Sdp, BadSdpNamesTheLine) {
  const std::string head = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n";
  expectError("", "line 1");
  expectError("o=- 1 1 IN IP4 1.2.3.4\r\n", "line 1 (o=- 1 1 IN IP4 1.2.3.4): the first line must be v=0");
  expectError(head + "m=audio x RTP/AVP 0\r\n", "line 6 (m=audio x RTP/AVP 0): bad port");
  expectError(head + "m=audio 70000 RTP/AVP 0\r\n", "line 6");
  expectError(head + "m=audio 4000 RTP/AVP\r\n", "line 6");
  expectError(head + "m=audio 4000 RTP/AVP 0\r\nc=IN IP6 ::1\r\n", "line 7 (c=IN IP6 ::1): IPv6");
  expectError(head + "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 example.com\r\n", "line 7");
  expectError(head + "m=audio 4000 RTP/AVP 0\r\na=rtcp:abc\r\n", "line 7 (a=rtcp:abc)");
  expectError(head + "m=audio 4000 RTP/AVP 0\r\nbogus\r\n", "line 7 (bogus)");
  expectError(head + "m=video 4000 RTP/AVP 96\r\n", "no m=audio");
  expectError("v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
              "line 5: m=audio has no c= line");
  expectError("v=0\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nm=audio 4000 RTP/AVP 0\r\n", "no o= line");
  expectError(head + "\r\nm=audio 4000 RTP/AVP 0\r\n", "line 6: empty line");
  expectError(std::string(70 * 1024, 'a'), "64 KiB");
}

}  // namespace
}  // namespace medius::media::sdp
