// The data plane: relay workers (one epoll event loop and thread each) and the sessions
// pinned to them.
//
// A RelaySession has two legs (0 = A, 1 = B), each with a non-blocking UDP socket for RTP
// (even port) and one for RTCP (RTP + 1). A packet received on leg A's RTP socket is sent
// unchanged from leg B's RTP socket to leg B's remote, and vice versa; RTCP likewise on
// the RTCP sockets; RTCP multiplexed on the RTP port (RFC 5761) follows the RTP path.
// Remotes come from the SDP and are then latched (symmetric RTP): the first packet's
// source becomes the remote; later packets from another source are still relayed but do
// not move the remote, or are dropped when the leg is strict. A new address in the SDP
// (re-offer, final answer after early media) re-arms the latch.
//
// ICE-lite (RFC 8445 2.5, setIce): on a leg whose peer does ICE, datagrams whose first byte
// is 0..3 (RFC 7983) are STUN and never relayed. A Binding request whose USERNAME is
// "<our ufrag>:<their ufrag>" and whose MESSAGE-INTEGRITY checks with our pwd is answered
// (XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT) from the socket it came to; its
// source has passed a check. Requests with a bad integrity or another username get no
// answer (counted; no oracle for guessing). The first source that passes a check becomes
// the remote if none was latched; a check with USE-CANDIDATE (the peer is controlling, we
// are lite) makes its source the remote for good (nominated), replacing any earlier one,
// and neither the SDP address nor media from elsewhere moves it; a strict ICE leg drops
// media from sources that never passed a check. Legs without ICE keep symmetric latching.
//
// With a MediaPipeline (pipeline.hpp, set by setPipeline once SDP negotiation produced a
// MediaPlan) every datagram goes through it instead (SRTP, PT rewriting, transcoding, RTCP)
// and what it emits is sent with sendmmsg; sessions with a transcoding pipeline get a
// playout tick every MediaPipeline::kTickNanos (the epoll timeout shrinks to it while there
// is one), relay-only pipelines one per 50 ms tick. A session
// without a pipeline keeps the byte-for-byte fast path above.
//
// The packet path takes no lock and allocates nothing: fixed recvmmsg buffers and a
// PacketSink per worker, the per-leg counters are relaxed atomics written by the worker
// only (read by any thread for stats), and the Prometheus totals are added in batches once
// per loop tick.
//
// Ownership: the caller (SessionManager) owns RelaySessions and their sockets; a Worker
// only points at the sessions attached to it. Thread: Worker::post/run from any thread;
// attach/detach/setRemote only on the worker's thread (use run()).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "medius/media/leg_counters.hpp"
#include "medius/media/pipeline.hpp"

namespace prometheus {
class Counter;
}

namespace medius::media {

// An owned file descriptor (closed on destruction).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// A non-blocking, close-on-exec UDP socket bound to address:port; an invalid Fd (and
// errno set) when the bind fails.
Fd bindUdp(const std::string& address, std::uint16_t port);

// Where one leg's peer said (in SDP) it receives media.
struct RemoteSpec {
  std::string address;  // "0.0.0.0" (hold) or "" = do not send until latched
  std::uint16_t rtpPort = 0;
  std::string rtcpAddress;
  std::uint16_t rtcpPort = 0;
  bool operator==(const RemoteSpec&) const = default;
};

// A leg's ICE-lite state (worker thread only; set by Worker::setIce).
struct IceLeg {
  bool enabled = false;
  std::string localUfrag;
  std::string localPwd;
  // "" until the peer's SDP arrived (its checks may come first: then any is taken).
  std::string remoteUfrag;
  // Per socket (0 = RTP, 1 = RTCP): the nominated source, and the last sources that
  // passed a check (a small ring).
  static constexpr std::size_t kValidated = 4;
  std::array<bool, 2> nominated{};
  std::array<std::array<sockaddr_in, kValidated>, 2> validated{};
  std::array<std::size_t, 2> validatedCount{};
};

struct RelayLeg {
  Fd rtp;
  Fd rtcp;
  std::uint16_t localPort = 0;  // RTP; RTCP is localPort + 1
  bool strict = false;
  LegCounters counters;

  // ---- worker thread only ----
  RemoteSpec spec;  // the last one applied
  sockaddr_in rtpRemote{};
  sockaddr_in rtcpRemote{};
  bool rtpKnown = false;
  bool rtcpKnown = false;
  bool rtpLatched = false;
  bool rtcpLatched = false;
  IceLeg ice;
  // RTP sequence tracking of what this leg receives.
  bool seqStarted = false;
  std::uint16_t maxSeq = 0;
  std::uint32_t ssrc = 0;
};

struct RelaySession {
  // Which socket an epoll event is for.
  struct Endpoint {
    RelaySession* session;
    int leg;    // 0 = A, 1 = B
    bool rtcp;  // the RTCP (+1) socket
  };

  std::string id;
  // The gateway that owns the session (its events go there).
  std::string owner;
  std::array<RelayLeg, 2> legs;
  // Drop every packet (counted in payloadDrops) until the first pipeline is set: before
  // the first answer nothing is agreed, and relaying raw could hand an SRTP client plain
  // RTP a far end sent early. Set before attach(); sessions made without negotiation
  // (tests of the bare relay) leave it false and relay byte for byte.
  bool holdUntilPipeline = false;
  std::uint32_t timeoutMs = 30000;
  // Fired (once until RTP flows again) by the worker after timeoutMs without RTP. Set
  // (release) after the timeout handler ran, so a reader that sees it true (acquire) sees
  // what the handler stored for this timeout (timedOutAtMs).
  std::atomic<bool> timedOut{false};
  // For the timeout handler (SessionManager: when the timeout fired, on its clock).
  std::atomic<std::int64_t> timedOutAtMs{0};

  // ---- worker thread only ----
  std::array<Endpoint, 4> endpoints{};
  // The timeout runs from the final answer on (a call may ring silently for long).
  bool timeoutArmed = false;
  std::int64_t lastRtpMs = 0;
  std::size_t workerIndex = 0;  // position in the worker's session list
  // Null: relay byte for byte (issue 5). Set and replaced by Worker::setPipeline.
  std::unique_ptr<MediaPipeline> pipeline;
  // Per leg, the drop counters already added to TrafficCounters::dropped (worker thread).
  std::array<std::array<std::uint64_t, 4>, 2> droppedReported{};
};

// Aggregate traffic totals (medius_media_packets_total / bytes_total by direction).
struct TrafficCounters {
  prometheus::Counter& packetsAtoB;
  prometheus::Counter& packetsBtoA;
  prometheus::Counter& bytesAtoB;
  prometheus::Counter& bytesBtoA;
  // medius_media_dropped_packets_total{reason}, in the order of RelaySession::droppedReported:
  // srtp_auth, srtp_replay, malformed, payload_type. Added as they happen (every tick and
  // at detach), not at the session's end.
  std::array<prometheus::Counter*, 4> dropped{};
  // medius_media_ice_checks_total{result}, in IceResult order, and
  // medius_media_ice_nominations_total; null in tests of the bare relay.
  std::array<prometheus::Counter*, 5> iceChecks{};
  prometheus::Counter* iceNominations = nullptr;
};

// What became of a STUN datagram on an ICE leg (TrafficCounters::iceChecks).
enum class IceResult : std::uint8_t {
  Ok,            // a Binding success response sent
  BadIntegrity,  // our ufrag, but MESSAGE-INTEGRITY missing or not with our pwd: ignored
  UnknownUser,   // USERNAME missing or not "<our ufrag>:<their ufrag>": ignored
  Malformed,     // not parseable STUN or a bad FINGERPRINT (ignored), or an authenticated
                 // request without PRIORITY (answered 400)
  RoleConflict,  // an authenticated request with ICE-CONTROLLED: answered 487
};

// The ICE-lite credentials of one leg (Worker::setIce).
struct IceConfig {
  bool enabled = false;
  std::string localUfrag;
  std::string localPwd;
  std::string remoteUfrag;
};

class Worker {
 public:
  // Called on the worker's thread when a session crosses its media timeout.
  using TimeoutHandler = std::function<void(RelaySession&)>;

  Worker(int index, TrafficCounters& totals, TimeoutHandler onTimeout);
  ~Worker();  // stops
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  void stop();
  int index() const { return index_; }

  // Queues `fn` to run on the worker's thread.
  void post(std::function<void()> fn);
  // Runs `fn` on the worker's thread and waits for it (inline when not running).
  void run(const std::function<void()>& fn);

  // ---- worker thread (through run()) ----
  // Registers the session's four sockets; throws std::system_error.
  void attach(RelaySession& session);
  void detach(RelaySession& session);
  // Applies a remote from SDP; a change re-arms latching. Hold (0.0.0.0) or port 0 stops
  // sending to the SDP address but keeps a latched remote.
  void setRemote(RelaySession& session, int leg, const RemoteSpec& spec);
  // Turns ICE-lite on or off for a leg. New local credentials (an ICE restart) or another
  // remote ufrag than a known one (another agent: a fork's final answer) forget the checks
  // passed so far; the remote as it stands keeps receiving media until a new check.
  void setIce(RelaySession& session, int leg, const IceConfig& config);
  // Starts the media timeout (at the final answer); the silence is counted from now.
  void armTimeout(RelaySession& session);
  // Replaces the session's pipeline (null: back to the byte-for-byte relay). The new one
  // adopts the old one's state that must survive a re-negotiation (SRTP contexts whose keys
  // did not change, generated streams' SSRC/sequence/timestamp, statistics: see
  // MediaPipeline::adopt) and is bound to the session's LegCounters; the old one is
  // destroyed here, on the worker thread. Build the pipeline before (it may throw), then
  // call this through run().
  void setPipeline(RelaySession& session, std::unique_ptr<MediaPipeline> pipeline);

  std::size_t sessionCount() const { return sessionCount_.load(std::memory_order_relaxed); }

 private:
  void loop();
  void drainPosts();
  void readSocket(const RelaySession::Endpoint& endpoint);
  void relay(const RelaySession::Endpoint& endpoint, unsigned char* packet, std::size_t length,
             const sockaddr_in& source);
  // An ICE leg's STUN datagram: checks, answers, latches.
  void handleStun(const RelaySession::Endpoint& endpoint, const unsigned char* packet, std::size_t length,
                  const sockaddr_in& source);
  void countIce(IceResult result);
  void tick(std::int64_t nowMs);
  void playout(std::uint64_t nowNanos);
  // Sends what the session's pipeline put in sink_ (sendmmsg per run of one socket) and
  // empties it.
  void flush(RelaySession& session);
  void flushTotals();
  // Adds the session's drops since the last call to TrafficCounters::dropped.
  void flushDropped(RelaySession& session);

  const int index_;
  TrafficCounters& totals_;
  TimeoutHandler onTimeout_;
  Fd epoll_;
  Fd wakeup_;  // eventfd
  std::thread thread_;
  std::atomic<bool> running_{false};

  std::mutex postMutex_;
  std::vector<std::function<void()>> posted_;

  // ---- worker thread only ----
  std::vector<RelaySession*> sessions_;
  std::atomic<std::size_t> sessionCount_{0};
  std::int64_t nowMs_ = 0;
  std::uint64_t nowNanos_ = 0;
  std::int64_t lastTickMs_ = 0;
  std::size_t transcoding_ = 0;  // attached sessions with a transcoding pipeline: playout ticks
  std::uint64_t nextPlayoutNanos_ = 0;
  std::uint64_t pendingPackets_[2] = {0, 0};
  std::uint64_t pendingBytes_[2] = {0, 0};
  // recvmmsg batches into fixed buffers (no allocation per packet). A datagram larger
  // than kPacketBytes (never RTP on a 1500-byte MTU) is dropped, not relayed truncated.
  static constexpr std::size_t kBatch = 32;
  static constexpr std::size_t kPacketBytes = 4096;
  // Aligned: libsrtp reads headers as 32-bit words. Each buffer has room after the largest
  // accepted datagram for the SRTP tag a pipeline may append in place.
  static constexpr std::size_t kBufferBytes = kPacketBytes + 64;
  alignas(16) std::array<std::array<unsigned char, kBufferBytes>, kBatch> buffers_{};
  std::array<iovec, kBatch> iovecs_{};
  std::array<sockaddr_in, kBatch> sources_{};
  std::array<mmsghdr, kBatch> messages_{};
  // What pipelines emit, and sendmmsg's headers for it.
  PacketSink sink_;
  std::array<iovec, PacketSink::kSlots> sendIovecs_{};
  std::array<mmsghdr, PacketSink::kSlots> sendMessages_{};
};

// Milliseconds on the monotonic clock.
std::int64_t monotonicMs();

}  // namespace medius::media
