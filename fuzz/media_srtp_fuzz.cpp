// srtp_fuzz: the first byte picks what the rest is.
//   0     an a=crypto value: parseCryptoAttribute; an Ok result formats and parses back
//         to the same attribute (tag, suite, keys, lifetime, MKI).
//   7     an SDES offer, one a=crypto value per line: answerCryptoOffer; a choice has our
//         line on the same tag and suite, and the offerer accepts it (acceptCryptoAnswer).
//   1, 2  an SRTP / SRTCP packet unprotected by an AES_CM_128_HMAC_SHA1_80 Inbound session;
//   3, 4  the same with AEAD_AES_128_GCM;
//   5, 6  an RTP / RTCP packet protected by an Outbound AES_CM_128_HMAC_SHA1_80 session,
//         then unprotected with the same key: Ok gives the input back, or it is Replayed.
// Sessions are created once (fixed keys: octets 0, 1, 2, ...), so they keep replay state
// across inputs, as a relay's do. Seeds: fuzz/corpus/srtp_fuzz/ (a few attributes and
// valid packets protected with those keys).
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "medius/media/srtp/crypto_attribute.hpp"
#include "medius/media/srtp/sdes.hpp"
#include "medius/media/srtp/session.hpp"

namespace {

using namespace medius::media::srtp;

KeyMaterial fixedKey(CryptoSuite suite) {
  std::vector<std::uint8_t> bytes(suiteInfo(suite).keySaltLength());
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i);
  return KeyMaterial(bytes);
}

struct Sessions {
  SrtpSession cmIn{CryptoSuite::AesCm128HmacSha1_80, fixedKey(CryptoSuite::AesCm128HmacSha1_80), Direction::Inbound};
  SrtpSession gcmIn{CryptoSuite::AeadAes128Gcm, fixedKey(CryptoSuite::AeadAes128Gcm), Direction::Inbound};
  SrtpSession cmOut{CryptoSuite::AesCm128HmacSha1_80, fixedKey(CryptoSuite::AesCm128HmacSha1_80),
                    Direction::Outbound};
  SrtpSession cmLoop{CryptoSuite::AesCm128HmacSha1_80, fixedKey(CryptoSuite::AesCm128HmacSha1_80),
                     Direction::Inbound};
};

void checkParse(std::string_view text) {
  const CryptoParseResult result = parseCryptoAttribute(text);
  if (result.status != ParseStatus::Ok) {
    if (result.error.empty()) std::abort();
    return;
  }
  const CryptoAttribute& a = *result.attribute;
  const CryptoParseResult again = parseCryptoAttribute(formatCryptoAttribute(a));
  if (again.status != ParseStatus::Ok) std::abort();
  const CryptoAttribute& b = *again.attribute;
  if (a.tag != b.tag || a.suite != b.suite || a.keys.size() != b.keys.size()) std::abort();
  for (std::size_t i = 0; i < a.keys.size(); ++i) {
    if (!(a.keys[i].keySalt == b.keys[i].keySalt) || a.keys[i].lifetime != b.keys[i].lifetime ||
        a.keys[i].mki != b.keys[i].mki) {
      std::abort();
    }
  }
}

void checkAnswer(std::string_view text) {
  std::vector<std::string_view> lines;
  for (std::size_t start = 0; start <= text.size();) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  static const std::vector<CryptoSuite> suites = defaultSuites();
  const SdesAnswer answer = answerCryptoOffer(lines, suites);
  if (!answer.choice) {
    if (answer.error.empty()) std::abort();
    return;
  }
  const SdesChoice& choice = *answer.choice;
  if (choice.local.tag != choice.remote.tag || choice.local.suite != choice.remote.suite) std::abort();
  const std::vector<CryptoAttribute> offered = {choice.remote};
  std::string error;
  if (!acceptCryptoAnswer(offered, formatCryptoAttribute(choice.local), error)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Sessions sessions;
  if (size == 0) return 0;
  const int mode = data[0] % 8;
  ++data;
  --size;
  if (mode == 0) {
    checkParse(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
  }
  if (mode == 7) {
    checkAnswer(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
  }
  // Room for protection; the packet itself is exactly the input (ASan sees reads past it
  // only through our own code, libsrtp is not instrumented, so lengths are checked above).
  std::vector<std::uint8_t> buffer(data, data + size);
  const std::vector<std::uint8_t> original = buffer;
  std::size_t length = size;
  switch (mode) {
    case 1:
      sessions.cmIn.unprotectRtp(buffer, length);
      break;
    case 2:
      sessions.cmIn.unprotectRtcp(buffer, length);
      break;
    case 3:
      sessions.gcmIn.unprotectRtp(buffer, length);
      break;
    case 4:
      sessions.gcmIn.unprotectRtcp(buffer, length);
      break;
    case 5:
    case 6: {
      const bool rtcp = mode == 6;
      buffer.resize(size + kMaxOverhead);
      const Status status = rtcp ? sessions.cmOut.protectRtcp(buffer, length) : sessions.cmOut.protectRtp(buffer, length);
      if (status != Status::Ok) break;
      const Status back = rtcp ? sessions.cmLoop.unprotectRtcp(buffer, length) : sessions.cmLoop.unprotectRtp(buffer, length);
      if (back == Status::Ok) {
        if (length != size || !std::equal(original.begin(), original.end(), buffer.begin())) std::abort();
      } else if (back != Status::Replayed) {
        std::abort();
      }
      break;
    }
    default:
      break;
  }
  if (length > buffer.size()) std::abort();
  return 0;
}
