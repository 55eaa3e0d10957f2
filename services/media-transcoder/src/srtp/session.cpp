#include "medius/media/srtp/session.hpp"

#include "medius/media/srtp/openssl_crypto.hpp"

#include <openssl/crypto.h>
#include <srtp2/srtp.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace medius::media::srtp {
namespace {

// RTP fixed header (RFC 3550 section 5.1) and the RTCP common header (section 6.4.1).
constexpr std::size_t kRtpHeader = 12;
constexpr std::size_t kRtcpHeader = 8;

void initLibrary() {
  static std::once_flag once;
  static srtp_err_status_t status = srtp_err_status_ok;
  // srtp_init() is not thread-safe and registers the crypto kernel once per process; it is
  // never undone (srtp_shutdown() would pull the ciphers out from under live contexts).
  std::call_once(once, [] {
    status = srtp_init();
    // The primitives from OpenSSL instead of Debian's NSS build (openssl_crypto.hpp).
    if (status == srtp_err_status_ok) installOpenSslCrypto();
  });
  if (status != srtp_err_status_ok) {
    throw SrtpError("srtp_init failed (libsrtp error " + std::to_string(status) + ")");
  }
}

// Translated once, here: the compiler checks every value is handled (no default).
Status translate(srtp_err_status_t status) {
  switch (status) {
    case srtp_err_status_ok:
      return Status::Ok;
    case srtp_err_status_auth_fail:
    case srtp_err_status_bad_mki:  // no key of ours carries that MKI
    // SRTCP with the E flag clear: unencrypted SRTCP, which our policy never accepts
    // (srtp_unprotect_rtcp checks the flag before the tag), or a flipped E bit.
    case srtp_err_status_cant_check:
      return Status::AuthFailed;
    case srtp_err_status_replay_fail:
    case srtp_err_status_replay_old:
    case srtp_err_status_pkt_idx_old:
      return Status::Replayed;
    case srtp_err_status_bad_param:
    case srtp_err_status_parse_err:
      return Status::BadPacket;
    case srtp_err_status_fail:
    case srtp_err_status_alloc_fail:
    case srtp_err_status_dealloc_fail:
    case srtp_err_status_init_fail:
    case srtp_err_status_terminus:
    case srtp_err_status_cipher_fail:
    case srtp_err_status_algo_fail:
    case srtp_err_status_no_such_op:
    case srtp_err_status_no_ctx:
    case srtp_err_status_key_expired:
    case srtp_err_status_socket_err:
    case srtp_err_status_signal_err:
    case srtp_err_status_nonce_bad:
    case srtp_err_status_read_fail:
    case srtp_err_status_write_fail:
    case srtp_err_status_encode_err:
    case srtp_err_status_semaphore_err:
    case srtp_err_status_pfkey_err:
    case srtp_err_status_pkt_idx_adv:
      return Status::Error;
  }
  return Status::Error;  // a value outside the enum
}

// Fills the crypto policies of `suite` (RTP and RTCP).
void setPolicy(CryptoSuite suite, srtp_policy_t& policy) {
  switch (suite) {
    case CryptoSuite::AesCm128HmacSha1_80:
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtp);
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
      return;
    case CryptoSuite::AesCm128HmacSha1_32:
      // SRTCP keeps the 80-bit tag (RFC 4568 section 6.2.2).
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&policy.rtp);
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
      return;
    case CryptoSuite::Aes256CmHmacSha1_80:
      srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&policy.rtp);
      srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&policy.rtcp);
      return;
    case CryptoSuite::Aes256CmHmacSha1_32:
      srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32(&policy.rtp);
      srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&policy.rtcp);
      return;
    case CryptoSuite::AeadAes128Gcm:
      // RFC 7714 section 14.2: the SDES AEAD suites have a 16-octet tag.
      srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp);
      srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp);
      return;
    case CryptoSuite::AeadAes256Gcm:
      srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtp);
      srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtcp);
      return;
  }
  throw SrtpError("not a CryptoSuite value");
}

std::uint32_t readWord(const std::uint8_t* p) {
  std::uint32_t word;
  std::memcpy(&word, p, sizeof word);
  return word;  // network byte order, as libsrtp keys its streams
}

}  // namespace

std::string_view statusName(Status status) {
  switch (status) {
    case Status::Ok:
      return "ok";
    case Status::AuthFailed:
      return "auth_failed";
    case Status::Replayed:
      return "replayed";
    case Status::BadPacket:
      return "bad_packet";
    case Status::Error:
      return "error";
  }
  return "error";
}

SrtpSession::SrtpSession(CryptoSuite suite, const KeyMaterial& keySalt, Direction direction)
    : SrtpSession(suite, std::span<const MasterKey>(std::vector<MasterKey>{{keySalt, std::nullopt}}),
                  direction) {}

SrtpSession::SrtpSession(CryptoSuite suite, std::span<const MasterKey> keys, Direction direction)
    : suite_(suite), direction_(direction) {
  initLibrary();
  const SuiteInfo& info = suiteInfo(suite);
  if (keys.empty() || keys.size() > SRTP_MAX_NUM_MASTER_KEYS) {
    throw SrtpError("an SRTP session needs 1 to " + std::to_string(SRTP_MAX_NUM_MASTER_KEYS) +
                    " master keys, not " + std::to_string(keys.size()));
  }
  useMki_ = keys.front().mki.has_value();
  mkiLength_ = useMki_ ? keys.front().mki->length : 0;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const MasterKey& key = keys[i];
    if (key.keySalt.size() != info.keySaltLength()) {
      throw SrtpError(std::string(info.name) + " needs " + std::to_string(info.keySaltLength()) +
                      " octets of key and salt, key " + std::to_string(i) + " has " +
                      std::to_string(key.keySalt.size()));
    }
    if (key.mki.has_value() != useMki_ || (useMki_ && key.mki->length != mkiLength_)) {
      throw SrtpError("all master keys must have an MKI of the same length, or none");
    }
    if (useMki_) {
      if (mkiLength_ < 1 || mkiLength_ > SRTP_MAX_MKI_LEN) {
        throw SrtpError("MKI length must be 1..128, not " + std::to_string(mkiLength_));
      }
      if (mkiLength_ < 8 && key.mki->value >> (8 * mkiLength_) != 0) {
        throw SrtpError("MKI value " + std::to_string(key.mki->value) + " does not fit in " +
                        std::to_string(mkiLength_) + " octets");
      }
      for (std::size_t j = 0; j < i; ++j) {
        if (keys[j].mki->value == key.mki->value) throw SrtpError("two master keys share an MKI");
      }
    }
  }
  if (keys.size() > 1 && !useMki_) {
    throw SrtpError("more than one master key needs an MKI on each (RFC 4568 section 6.1)");
  }

  srtp_policy_t policy;
  std::memset(&policy, 0, sizeof policy);
  setPolicy(suite, policy);
  policy.ssrc.type = direction == Direction::Inbound ? ssrc_any_inbound : ssrc_any_outbound;
  policy.ssrc.value = 0;
  policy.window_size = kReplayWindow;
  policy.allow_repeat_tx = direction == Direction::Outbound ? 1 : 0;

  // libsrtp copies keys and MKIs into its session keys (srtp_stream_init_keys), so these
  // buffers only live for srtp_create(); they are wiped before returning.
  std::vector<std::array<std::uint8_t, SRTP_MAX_MKI_LEN>> mkiIds(keys.size());
  std::vector<srtp_master_key_t> masterKeys(keys.size());
  std::vector<srtp_master_key_t*> masterKeyPointers(keys.size());
  std::vector<std::array<std::uint8_t, kMaxKeySaltLength>> keyCopies(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    std::memcpy(keyCopies[i].data(), keys[i].keySalt.bytes().data(), keys[i].keySalt.size());
    masterKeys[i].key = keyCopies[i].data();
    if (useMki_) {
      // Big-endian in mkiLength_ octets (RFC 3711 section 3.1: the MKI is an octet string
      // the key management assigns; RFC 4568 writes it as a decimal integer).
      std::uint64_t value = keys[i].mki->value;
      for (std::size_t k = mkiLength_; k-- > 0;) {
        mkiIds[i][k] = static_cast<std::uint8_t>(value & 0xff);
        value >>= 8;
      }
      masterKeys[i].mki_id = mkiIds[i].data();
      masterKeys[i].mki_size = static_cast<unsigned int>(mkiLength_);
    }
    masterKeyPointers[i] = &masterKeys[i];
  }
  if (useMki_) {
    policy.keys = masterKeyPointers.data();
    policy.num_master_keys = keys.size();
  } else {
    policy.key = keyCopies[0].data();
  }
  srtp_t ctx = nullptr;
  const srtp_err_status_t status = srtp_create(&ctx, &policy);
  for (auto& copy : keyCopies) OPENSSL_cleanse(copy.data(), copy.size());
  if (status != srtp_err_status_ok) {
    throw SrtpError("srtp_create for " + std::string(info.name) + " failed (libsrtp error " +
                    std::to_string(status) + ")");
  }
  ctx_ = ctx;
  rtpOverhead_ = info.rtpOverhead() + mkiLength_;
  rtcpOverhead_ = info.rtcpOverhead() + mkiLength_;
}

SrtpSession::~SrtpSession() {
  // srtp_dealloc() zeroes and frees every stream's keys.
  if (ctx_ != nullptr) srtp_dealloc(ctx_);
}

// RFC 3550 section 5.1: V=2, then 12 octets + 4 per CSRC + the header extension (4 octets
// + 4 per word of its length field), then the payload; the SRTP trailer (MKI + tag) must
// fit after the header. libsrtp 2.5 checks the header lengths too (srtp_validate_rtp_header)
// but not the room for the tag on every path, and never the version; we check all of it
// once, here, so that no length it computes can go negative.
Status SrtpSession::checkRtp(std::span<const std::uint8_t> buffer, std::size_t length,
                             std::size_t trailer) const noexcept {
  if (length > buffer.size() || length > kMaxPacketLength) return Status::BadPacket;
  if (length < kRtpHeader + trailer) return Status::BadPacket;
  const std::uint8_t* p = buffer.data();
  if ((p[0] >> 6) != 2) return Status::BadPacket;
  std::size_t header = kRtpHeader + 4 * static_cast<std::size_t>(p[0] & 0x0f);
  if ((p[0] & 0x10) != 0) {
    if (header + 4 + trailer > length) return Status::BadPacket;
    const std::size_t words = (static_cast<std::size_t>(p[header + 2]) << 8) | p[header + 3];
    header += 4 + 4 * words;
  }
  if (header + trailer > length) return Status::BadPacket;
  return Status::Ok;
}

// RFC 3550 section 6.4.1 common header (V=2, 8 octets), then for SRTCP the E flag and
// index and the tag (RFC 3711 section 3.4).
Status SrtpSession::checkRtcp(std::span<const std::uint8_t> buffer, std::size_t length,
                              std::size_t trailer) const noexcept {
  if (length > buffer.size() || length > kMaxPacketLength) return Status::BadPacket;
  if (length < kRtcpHeader + trailer) return Status::BadPacket;
  if ((buffer[0] >> 6) != 2) return Status::BadPacket;
  return Status::Ok;
}

void SrtpSession::noteSsrc(std::uint32_t ssrc) noexcept {
  if (haveLast_ && ssrc == lastSsrc_) return;
  lastSsrc_ = ssrc;
  haveLast_ = true;
  for (std::size_t i = 0; i < ssrcCount_; ++i) {
    if (ssrcs_[i] == ssrc) return;
  }
  if (ssrcCount_ < ssrcs_.size()) {
    ssrcs_[ssrcCount_++] = ssrc;
    return;
  }
  // Full: drop the oldest SSRC's stream (its ROC and replay window go with it; if it comes
  // back, libsrtp starts it afresh from the template). srtp_remove_stream frees memory: it
  // runs only when a peer has used more than kMaxStreams SSRCs.
  srtp_remove_stream(ctx_, ssrcs_[next_]);
  ssrcs_[next_] = ssrc;
  next_ = (next_ + 1) % ssrcs_.size();
}

Status SrtpSession::protectRtp(std::span<std::uint8_t> buffer, std::size_t& length) noexcept {
  if (direction_ != Direction::Outbound) return Status::Error;
  if (Status check = checkRtp(buffer, length, 0); check != Status::Ok) return check;
  if (buffer.size() - length < rtpOverhead_) return Status::BadPacket;
  int len = static_cast<int>(length);
  const srtp_err_status_t status =
      useMki_ ? srtp_protect_mki(ctx_, buffer.data(), &len, 1, 0) : srtp_protect(ctx_, buffer.data(), &len);
  // srtp_protect created the SSRC's stream before any check that can fail.
  noteSsrc(readWord(buffer.data() + 8));
  if (status != srtp_err_status_ok) return translate(status);
  length = static_cast<std::size_t>(len);
  return Status::Ok;
}

Status SrtpSession::unprotectRtp(std::span<std::uint8_t> buffer, std::size_t& length) noexcept {
  if (direction_ != Direction::Inbound) return Status::Error;
  if (Status check = checkRtp(buffer, length, rtpOverhead_); check != Status::Ok) return check;
  int len = static_cast<int>(length);
  const srtp_err_status_t status = useMki_ ? srtp_unprotect_mki(ctx_, buffer.data(), &len, 1)
                                           : srtp_unprotect(ctx_, buffer.data(), &len);
  if (status != srtp_err_status_ok) return translate(status);
  // A stream exists for this SSRC only now that the packet authenticated.
  noteSsrc(readWord(buffer.data() + 8));
  length = static_cast<std::size_t>(len);
  return Status::Ok;
}

Status SrtpSession::protectRtcp(std::span<std::uint8_t> buffer, std::size_t& length) noexcept {
  if (direction_ != Direction::Outbound) return Status::Error;
  if (Status check = checkRtcp(buffer, length, 0); check != Status::Ok) return check;
  if (buffer.size() - length < rtcpOverhead_) return Status::BadPacket;
  int len = static_cast<int>(length);
  const srtp_err_status_t status = useMki_ ? srtp_protect_rtcp_mki(ctx_, buffer.data(), &len, 1, 0)
                                           : srtp_protect_rtcp(ctx_, buffer.data(), &len);
  noteSsrc(readWord(buffer.data() + 4));
  if (status != srtp_err_status_ok) return translate(status);
  length = static_cast<std::size_t>(len);
  return Status::Ok;
}

Status SrtpSession::unprotectRtcp(std::span<std::uint8_t> buffer, std::size_t& length) noexcept {
  if (direction_ != Direction::Inbound) return Status::Error;
  if (Status check = checkRtcp(buffer, length, rtcpOverhead_); check != Status::Ok) return check;
  int len = static_cast<int>(length);
  const srtp_err_status_t status = useMki_ ? srtp_unprotect_rtcp_mki(ctx_, buffer.data(), &len, 1)
                                           : srtp_unprotect_rtcp(ctx_, buffer.data(), &len);
  if (status != srtp_err_status_ok) return translate(status);
  noteSsrc(readWord(buffer.data() + 4));
  length = static_cast<std::size_t>(len);
  return Status::Ok;
}

bool suiteAvailable(CryptoSuite suite) {
  static std::once_flag once;
  static std::array<bool, kSuiteCount> available{};
  std::call_once(once, [] {
    for (std::size_t i = 0; i < kSuiteCount; ++i) {
      const auto candidate = static_cast<CryptoSuite>(i);
      std::array<std::uint8_t, kMaxKeySaltLength> zeros{};
      try {
        const KeyMaterial key(std::span<const std::uint8_t>(zeros.data(),
                                                            suiteInfo(candidate).keySaltLength()));
        SrtpSession probe(candidate, key, Direction::Outbound);
        available[i] = true;
      } catch (const SrtpError&) {
        available[i] = false;
      }
    }
  });
  const auto index = static_cast<std::size_t>(suite);
  return index < available.size() && available[index];
}

}  // namespace medius::media::srtp
