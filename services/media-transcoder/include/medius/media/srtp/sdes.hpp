// SDES offer/answer (RFC 4568 section 7) over a=crypto values, for the SDP layer.
//
// Offerer: makeCryptoOffer() gives one line per suite, tags 1..n, each with a fresh key of
// ours, strongest first (RFC 4568 section 7.1.1: the offer lists crypto attributes in the
// offerer's order of preference). When the answer comes, acceptCryptoAnswer() checks that
// it picked one of our lines (same tag and suite, section 7.1.2) and returns both sides.
// Answerer: answerCryptoOffer() takes the offered values in SDP order, picks the first one
// we can use (skipping unknown suites, refused parameters and broken lines, each counted),
// and returns the peer's line and ours (same tag and suite, our fresh key, or our key of
// the last answer when a re-offer keeps the suite). No usable line means the SDP layer
// answers 488 Not Acceptable Here (or, for "best effort" RTP/AVP offers with a=crypto,
// falls back to RTP).
//
// Either way the result feeds two SrtpSessions: Inbound with remote.masterKeys(), Outbound
// with local.masterKeys(). Each direction has its own key (and its own MKI use), so a
// re-INVITE that keeps the media calls these again and builds new sessions only if a key
// changed (section 7.1.4; never reuse an Outbound key in a new session: session.hpp).
//
// Thread: pure functions over values (keys come from the thread-safe CSPRNG).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "medius/media/srtp/crypto_attribute.hpp"
#include "medius/media/srtp/suite.hpp"

namespace medius::media::srtp {

// The suites we offer or accept by default: suitePreference() filtered by suiteAvailable().
std::vector<CryptoSuite> defaultSuites();

// The suites an SDP offer toward a peer we do not know lists, in order, filtered by
// suiteAvailable(): AES_CM_128_HMAC_SHA1_80 first, since every SDES endpoint has it (RFC
// 4568 section 6.2.1 makes it mandatory to implement) and most answerers take the first
// line they support; then AEAD_AES_128_GCM and AEAD_AES_256_GCM (RFC 7714), then
// AES_CM_128_HMAC_SHA1_32. Interoperability first, unlike defaultSuites().
std::vector<CryptoSuite> interopOfferSuites();

// Our a=crypto lines for an offer: one per suite in the given order, tags 1..n, fresh keys.
// Format each with formatCryptoAttribute(). Throws std::invalid_argument for an empty or
// repeated suite list.
std::vector<CryptoAttribute> makeCryptoOffer(std::span<const CryptoSuite> suites);

// The line both sides agreed on: the peer's (its key protects what we receive) and ours.
struct SdesChoice {
  CryptoAttribute remote;
  CryptoAttribute local;
};

struct SdesAnswer {
  std::optional<SdesChoice> choice;
  // Offered lines we could not have used, by reason, over the whole offer (for logs and
  // counters); usable lines after the chosen one are not counted.
  std::size_t unknownSuite = 0;
  std::size_t unsupported = 0;
  std::size_t malformed = 0;
  std::size_t notAccepted = 0;  // a suite we know but did not list in `acceptable`
  // Why nothing was chosen (empty when choice is set), e.g. "no usable a=crypto among 2:
  // 1 unknown suite, 1 malformed (key 1: missing key)".
  std::string error;
  // Why each of those lines could not have been used, in SDP order, separated by "; "
  // (e.g. "unknown crypto suite \"F8_128_HMAC_SHA1_80\"; key 1: missing key"), for a
  // Warning header or a log line that names them all.
  std::string problems;
};

// Answerer side: picks the first offered line (SDP order) whose suite is in `acceptable`
// and that parses Ok; a tag offered twice makes that second line malformed. Our line
// gets a fresh key, except when `keep` (our line of the previous offer/answer) has the
// chosen suite: a re-offer that keeps the suite keeps our key and so our Outbound session
// (RFC 4568 section 7.1.4 lets the answerer keep it; a new key would make a new session).
SdesAnswer answerCryptoOffer(std::span<const std::string_view> offeredValues,
                             std::span<const CryptoSuite> acceptable,
                             const CryptoAttribute* keep = nullptr);

// Offerer side: `answerValue` must parse Ok and carry the tag and suite of one of
// `offered`. Returns nullopt with `error` set otherwise.
std::optional<SdesChoice> acceptCryptoAnswer(std::span<const CryptoAttribute> offered,
                                             std::string_view answerValue, std::string& error);

}  // namespace medius::media::srtp
