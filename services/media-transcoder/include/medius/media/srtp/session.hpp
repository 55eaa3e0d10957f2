// One SRTP context (libsrtp2 srtp_t) for one direction of one leg.
//
// An Outbound session protects what we send (RTP -> SRTP, RTCP -> SRTCP); an Inbound one
// unprotects what the peer sends. A leg doing SRTP has one of each, with different keys:
// ours (generateKeyMaterial, sent in our a=crypto) and the peer's (from its a=crypto).
//
// Streams: the context uses libsrtp's wildcard SSRC (ssrc_any_outbound / ssrc_any_inbound),
// so any SSRC the peer or our relay uses is accepted; libsrtp keeps one stream (ROC,
// replay window) per SSRC, created on the first packet of that SSRC (Inbound: only after
// the packet authenticated). We keep at most kMaxStreams SSRCs: the 17th distinct SSRC
// removes the oldest one's stream (bounds the memory a peer can make us spend).
//
// Replay protection (RFC 3711 section 3.3.2) is on: a window of 1024 packets (libsrtp's
// default is 128) so that reordering under bursts is not mistaken for replay. Inbound, a
// packet seen before or older than the window is Replayed. Outbound, allow_repeat_tx is set:
// protecting the same sequence number twice gives the same SRTP packet again instead of
// srtp_err_status_replay_fail. Packets repeated on purpose with the same sequence number
// (RFC 4733 end-of-event packets some gateways send three times unchanged, duplicates the
// plain network made) keep their redundancy: if the first copy is lost on the SRTP side,
// the next one is accepted; if not, the far end's replay window drops it. The cost, the
// reason libsrtp makes it optional: a plain-RTP source that re-sends a sequence number
// within the window with a *different* payload gets both encrypted with one keystream,
// which shows their XOR to an eavesdropper of the SRTP side; both payloads crossed the
// plain network in clear already, and SRTP<->SRTP relaying never does it (the Inbound
// session's replay check is in front). A sequence number that jumps back by more than the
// window with the same SSRC fails (Replayed) until it catches up: a media source switch
// that keeps the SSRC needs re-keying.
//
// Re-keying (RFC 4568 section 7.1.4: a re-INVITE with new a=crypto) is constructing a new
// SrtpSession and replacing the old one; a session's keys never change. Roll-over counters
// and replay windows start afresh, so a new Outbound session must get a NEW key
// (generateKeyMaterial): two Outbound sessions on one key would encrypt different packets
// with the same keystream (RFC 3711 section 9.1).
//
// Packet path: protect/unprotect are noexcept, take no locks and do not allocate in our
// code; they work in place in the caller's buffer. libsrtp allocates when a new SSRC's
// stream is created (above). Debian's libsrtp2 uses NSS for AES: its AES-CM creates an
// NSS context per packet (aes_icm_nss.c set_iv) and GCM calls PK11_Encrypt per packet;
// that is inside the library and measured by bench/media_srtp_bench.cpp (perf: about two
// thirds of an AES-CM packet goes to NSS's per-packet context set-up, malloc and locks, one
// third to AES and SHA-1 themselves).
//
// Bad input: every length is checked before libsrtp sees the packet (libsrtp trusts the
// RTP header and reads 32-bit words): anything shorter than a header plus the tag, with a
// CSRC count or header extension running past the tag, a version other than 2, or longer
// than kMaxPacketLength is BadPacket, for any content and length, including 0.
// The buffer should be 4-byte aligned (libsrtp reads the header as 32-bit words; on x86-64
// a misaligned buffer only costs time).
//
// Thread: a session is used by one thread at a time (its relay worker); distinct sessions
// may be used concurrently. libsrtp's srtp_init() runs once per process (std::call_once)
// when the first session is created; srtp_shutdown() is never called.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string_view>

#include "medius/media/srtp/keys.hpp"
#include "medius/media/srtp/suite.hpp"

// libsrtp's srtp_ctx_t, kept out of our headers (C types stop at the adapter).
struct srtp_ctx_t_;

namespace medius::media::srtp {

enum class Direction { Inbound, Outbound };

enum class Status {
  Ok,
  // Authentication failed: tampered, wrong key, unknown MKI. Drop and count.
  AuthFailed,
  // Inbound: seen before or older than the replay window. Outbound: the sequence number
  // went back by more than the window. Drop and count.
  Replayed,
  // Not a packet we can process: too short, too long, version != 2, header lengths past
  // the end, or (protect) no room in the buffer for the tag. Drop and count.
  BadPacket,
  // Anything else libsrtp reports (e.g. the key reached its packet limit, 2^48 SRTP /
  // 2^31 SRTCP packets: RFC 3711 section 9.2): a new key is needed.
  Error,
};

// "ok", "auth_failed", "replayed", "bad_packet", "error": for logs and metric labels.
std::string_view statusName(Status status);

// Thrown by the constructor: unavailable suite, key of the wrong length, bad MKI set, or
// libsrtp refusing the policy.
class SrtpError : public std::runtime_error {
 public:
  explicit SrtpError(const std::string& message) : std::runtime_error(message) {}
};

class SrtpSession {
 public:
  // Largest packet accepted (before protection), in octets: more than any UDP payload.
  static constexpr std::size_t kMaxPacketLength = 65536;
  // Distinct SSRCs with a libsrtp stream at a time (see above).
  static constexpr std::size_t kMaxStreams = 16;
  // Replay window, in packets (RFC 3711 section 3.3.2 requires at least 64).
  static constexpr unsigned long kReplayWindow = 1024;

  // One key, no MKI: the usual SDES case.
  SrtpSession(CryptoSuite suite, const KeyMaterial& keySalt, Direction direction);
  // 1..16 master keys (libsrtp's SRTP_MAX_NUM_MASTER_KEYS). More than one key needs an MKI
  // on every key, all of the same length and distinct values (RFC 4568 section 6.1).
  // Outbound protects with keys[0] (and writes its MKI); Inbound accepts any of them,
  // chosen by the MKI in the packet.
  SrtpSession(CryptoSuite suite, std::span<const MasterKey> keys, Direction direction);
  ~SrtpSession();
  SrtpSession(const SrtpSession&) = delete;
  SrtpSession& operator=(const SrtpSession&) = delete;

  CryptoSuite suite() const { return suite_; }
  Direction direction() const { return direction_; }
  // Octets protectRtp()/protectRtcp() add: suiteInfo().rtpOverhead()/rtcpOverhead() plus
  // the MKI length. Size send buffers as payload + rtcpOverhead() (the larger).
  std::size_t rtpOverhead() const { return rtpOverhead_; }
  std::size_t rtcpOverhead() const { return rtcpOverhead_; }

  // In place: buffer[0, length) holds the RTP (RTCP) packet; on Ok, length grows by
  // rtpOverhead() (rtcpOverhead()) and buffer holds the SRTP (SRTCP) packet. The buffer
  // must have room: buffer.size() >= length + overhead, else BadPacket. On any other
  // status `length` is unchanged and the buffer content is unspecified: drop it.
  // Outbound sessions only (an Inbound one returns Error).
  Status protectRtp(std::span<std::uint8_t> buffer, std::size_t& length) noexcept;
  Status protectRtcp(std::span<std::uint8_t> buffer, std::size_t& length) noexcept;

  // In place: buffer[0, length) holds the SRTP (SRTCP) packet as received; on Ok, length
  // shrinks and buffer holds the plain packet. On any other status `length` is unchanged,
  // no plain packet is produced, and the buffer content is unspecified (may be partly
  // decrypted by libsrtp in some failure paths): drop it, never forward it.
  // Inbound sessions only (an Outbound one returns Error).
  Status unprotectRtp(std::span<std::uint8_t> buffer, std::size_t& length) noexcept;
  Status unprotectRtcp(std::span<std::uint8_t> buffer, std::size_t& length) noexcept;

 private:
  Status checkRtp(std::span<const std::uint8_t> buffer, std::size_t length,
                  std::size_t trailer) const noexcept;
  Status checkRtcp(std::span<const std::uint8_t> buffer, std::size_t length,
                   std::size_t trailer) const noexcept;
  void noteSsrc(std::uint32_t networkOrderSsrc) noexcept;

  srtp_ctx_t_* ctx_ = nullptr;
  CryptoSuite suite_;
  Direction direction_;
  bool useMki_ = false;
  std::size_t mkiLength_ = 0;
  std::size_t rtpOverhead_ = 0;
  std::size_t rtcpOverhead_ = 0;
  // SSRCs (network byte order, as libsrtp keys its streams) with a stream, oldest first
  // in ring order from next_.
  std::array<std::uint32_t, kMaxStreams> ssrcs_{};
  std::size_t ssrcCount_ = 0;
  std::size_t next_ = 0;
  std::uint32_t lastSsrc_ = 0;
  bool haveLast_ = false;
};

}  // namespace medius::media::srtp
