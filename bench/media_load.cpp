// media_load: N concurrent calls through ONE media-transcoder process, and the worker's CPU
// per call (issue 6, "Performance": transcoded calls per core, relayed SRTP<->RTP packets/s
// per core). Figures are recorded in docs/performance.md; nothing here is asserted.
//
// What it does:
//   1. Starts build/bin/media-transcoder (or --transcoder) with a config it writes (workers 1,
//      a port range, a load limit nobody reaches, a long media timeout) on a free 127.0.0.1
//      gRPC port, or attaches to a running one (--grpc HOST:PORT --pid PID).
//   2. Creates --sessions sessions by gRPC like the gateway does: CreateSession with leg A's
//      offer and both legs' LegParams, then UpdateSession with leg B's answer. The --path
//      chooses the codecs and SRTP of both legs so that the worker's negotiation
//      (negotiation.hpp) transcodes or relays as named.
//   3. Drives real RTP from UDP sockets: peer A on 127.0.0.2, peer B on 127.0.0.3, 50 packets
//      per second each way per session (20 ms ptime), spread over the 20 ms period. Payloads
//      are correctly encoded by the project's own encoders (a 1 s tone encoded once at
//      start-up and replayed with running sequence numbers and timestamps, so the driver
//      spends no codec time), SRTP legs protected and what comes back unprotected with the
//      project's SrtpSession (so a broken key shows as unprotect failures).
//   4. After --warmup seconds measures --seconds: the worker process's utime+stime
//      (/proc/PID/stat) and its busiest thread's (the relay worker), the packets the worker
//      received and sent (ListSessions LegStats deltas), what the peers sent and received, the
//      worker's own load estimate (ListSessions load), the machine's busy share and load
//      average.
//   5. Checks what arrived: every packet a side received must carry the payload type that side
//      negotiated for its own codec (other payload types are counted, not received: a relay
//      that passed the other side's codec through), and session 0's payloads from the
//      measured window, decoded by the driver with that side's codec, must carry the other
//      side's tone (A sends 400 Hz, B 1000 Hz). A failure prints "FAILED: <why>" and exits 1;
//      so does a side receiving less than 90 % of what the other sent ("WARNING: ...").
//   6. Measures the added latency (issue 9): for every packet of every session sent in the
//      measured window, both ways, the time from its departure at the sending peer's socket
//      (just before sendto) to the arrival of the packet made of it at the other peer's
//      socket (just after recv), on this process's steady clock; p50, p99 and max in
//      microseconds, both directions together, in the table ("added latency: no figure:
//      <why>" instead when packets could not be paired). Relay paths pair exactly: the
//      driver writes the packet's index (inverted) into the first 4 payload octets and reads
//      it back. Transcoded paths change the payload and may legitimately drop a frame (an
//      adaptive jitter buffer shedding depth keeps its output numbering continuous), so
//      counting packets would pair the wrong ones: there, sessions 1..kProbeSessions send a
//      probe tone instead, loud for 5 frames then quiet (-30 dB) for 20, and the receiver
//      decodes those sessions' packets: the first loud packet after quiet ones is paired
//      with the departure of the loud onset sent last before it arrived (probePacket; one
//      sample per stream every 500 ms). Jitter-buffer, codec and packetisation delay inside
//      the system count; so does the driver's own delay in reading (one thread, epoll).
//   7. Deletes the sessions and stops the process it started (SIGTERM, then SIGKILL), by PID.
//
// --peer rtpengine runs the same streams through Debian's rtpengine instead (userspace,
// --table=-1, --num-threads=1: one poller thread receives, relays, decodes and encodes, like
// the worker's `workers: 1`; --media-num-threads=1: its send timer thread sends what it
// transcoded), set up over its ng protocol (ng_client.hpp). On transcoded paths the
// offer carries rtpengine's codec dictionary, mask = A's codec, transcode = B's codec: the
// offer to B then lists only B's codec, the answer to A only A's, and rtpengine transcodes.
// Its CPU is its process's utime+stime, its packets what the peers sent and received.
//
// Only 127.0.0.x addresses are used (docs/testing.md network rule).
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <utility>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <numbers>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "medius/media/codec/codec.hpp"
#include "medius/media/rtp/packet.hpp"
#include "medius/media/sdp.hpp"
#include "medius/media/srtp/crypto_attribute.hpp"
#include "medius/media/srtp/session.hpp"
#include "medius/v1/media.grpc.pb.h"
#include "ng_client.hpp"
#include "signal.hpp"  // tests/media/codec: Goertzel tone power (the tone check)

namespace {

namespace v1 = medius::v1;
namespace codec = medius::media::codec;
namespace rtp = medius::media::rtp;
namespace srtp = medius::media::srtp;
namespace sdp = medius::media::sdp;
using Clock = std::chrono::steady_clock;
using medius::bench::Bencode;
namespace signals = medius::media::codec::test;
using namespace std::chrono_literals;

// One peer's side of a path: what it offers/answers and what the worker's LegParams say.
struct LegSpec {
  v1::Side side = v1::SIDE_TRUNK;
  v1::SrtpPolicy policy = v1::SRTP_POLICY_OFF;
  codec::CodecId codec = codec::CodecId::Pcmu;
  bool srtp = false;  // the peer sends RTP/SAVP with a=crypto (leg A only)
};

struct PathSpec {
  std::string name;
  LegSpec a;
  LegSpec b;
  bool transcoded = false;
};

std::optional<PathSpec> pathByName(const std::string& name) {
  using codec::CodecId;
  auto plain = [](v1::Side side, CodecId id) { return LegSpec{side, v1::SRTP_POLICY_OFF, id, false}; };
  if (name == "pcmu-opus")
    return PathSpec{name, plain(v1::SIDE_INTERNAL, CodecId::Opus), plain(v1::SIDE_TRUNK, CodecId::Pcmu), true};
  if (name == "pcma-g722")
    return PathSpec{name, plain(v1::SIDE_INTERNAL, CodecId::G722), plain(v1::SIDE_TRUNK, CodecId::Pcma), true};
  if (name == "pcmu-g722")
    return PathSpec{name, plain(v1::SIDE_INTERNAL, CodecId::G722), plain(v1::SIDE_TRUNK, CodecId::Pcmu), true};
  if (name == "pcmu-g729")
    return PathSpec{name, plain(v1::SIDE_INTERNAL, CodecId::Pcmu), plain(v1::SIDE_TRUNK, CodecId::G729), true};
  if (name == "relay-srtp-rtp")
    return PathSpec{name, LegSpec{v1::SIDE_INTERNAL, v1::SRTP_POLICY_REQUIRED, CodecId::Pcmu, true},
                    plain(v1::SIDE_TRUNK, CodecId::Pcmu), false};
  if (name == "relay-rtp")
    return PathSpec{name, plain(v1::SIDE_INTERNAL, CodecId::Pcmu), plain(v1::SIDE_TRUNK, CodecId::Pcmu), false};
  return std::nullopt;
}

std::string codecParamName(codec::CodecId id) {
  switch (id) {
    case codec::CodecId::Pcmu: return "PCMU";
    case codec::CodecId::Pcma: return "PCMA";
    case codec::CodecId::G722: return "G722";
    case codec::CodecId::G729: return "G729";
    case codec::CodecId::Opus: return "opus";
  }
  return "PCMU";
}

// The m= payload type, a=rtpmap and a=fmtp lines a peer uses for its codec.
struct PeerFormat {
  int pt;
  std::string rtpmap;
  std::string fmtp;
};

PeerFormat peerFormat(codec::CodecId id) {
  switch (id) {
    case codec::CodecId::Pcmu: return {0, "PCMU/8000", ""};
    case codec::CodecId::Pcma: return {8, "PCMA/8000", ""};
    case codec::CodecId::G722: return {9, "G722/8000", ""};
    case codec::CodecId::G729: return {18, "G729/8000", "annexb=no"};
    case codec::CodecId::Opus: return {111, "opus/48000/2", "useinbandfec=1"};
  }
  return {0, "PCMU/8000", ""};
}

std::string peerSdp(const std::string& address, std::uint16_t port, const std::string& protocol, int pt,
                    const PeerFormat& format, const std::string& crypto) {
  std::string s = "v=0\r\no=load 1 1 IN IP4 " + address + "\r\ns=-\r\nc=IN IP4 " + address +
                  "\r\nt=0 0\r\nm=audio " + std::to_string(port) + " " + protocol + " " +
                  std::to_string(pt) + "\r\na=rtpmap:" + std::to_string(pt) + " " + format.rtpmap + "\r\n";
  if (!format.fmtp.empty()) s += "a=fmtp:" + std::to_string(pt) + " " + format.fmtp + "\r\n";
  if (!crypto.empty()) s += "a=crypto:" + crypto + "\r\n";
  s += "a=ptime:20\r\na=sendrecv\r\n";
  return s;
}

// The latency probe of transcoded paths (see probePacket): sessions 1..kProbeSessions send
// a tone loud for the first kProbeLoud frames of every kProbePeriod, quiet for the rest.
constexpr std::size_t kProbeSessions = 8;
constexpr std::size_t kProbePeriod = 25;  // frames: an onset every 500 ms
constexpr std::size_t kProbeLoud = 5;
constexpr double kLoud = 8000;        // the tone's peak amplitude (16-bit PCM)
constexpr double kProbeQuiet = 250;   // -30 dB: above any silence detector, far below loud
constexpr double kProbeThreshold = 1000;  // a decoded packet's RMS above it: loud (the loud
                                          // tone's is 5,657, the quiet one's 177)
constexpr int kProbeQuietRun = 5;         // quiet packets before a loud one make an onset

// One second of a tone, encoded once: the payloads a peer replays. onsets: the latency
// probe's loud/quiet pattern instead of a steady tone, and which payloads start a loud part
// (an encoder with VAD sends nothing for some quiet frames, so the payloads are not 50).
std::vector<std::vector<std::uint8_t>> encodeTone(codec::CodecId id, double hz, std::uint32_t& tsStep,
                                                  std::vector<bool>* onsets = nullptr) {
  const bool probe = onsets != nullptr;
  bool onsetPending = false;
  codec::CodecParams params;
  params.ptimeMs = 20;
  params.opus.useInbandFec = true;
  auto encoder = codec::makeEncoder(id, params);
  tsStep = encoder->timestampIncrement();
  const std::size_t n = encoder->samplesPerPacket();
  std::vector<std::int16_t> pcm(n);
  std::array<std::uint8_t, codec::kMaxPayloadBytes> out{};
  std::vector<std::vector<std::uint8_t>> frames;
  std::size_t t = 0;
  for (std::size_t f = 0; f < 50; ++f) {
    const double amplitude = !probe || f % kProbePeriod < kProbeLoud ? kLoud : kProbeQuiet;
    if (probe && f % kProbePeriod == 0) onsetPending = true;
    for (std::size_t i = 0; i < n; ++i, ++t) {
      pcm[i] = static_cast<std::int16_t>(amplitude * std::sin(2.0 * std::numbers::pi * hz * static_cast<double>(t) /
                                                           static_cast<double>(encoder->sampleRate())));
    }
    auto r = encoder->encode(pcm, out);
    if (r.status != codec::CodecStatus::Ok) throw std::runtime_error("encode failed: " + std::string(codec::toString(r.status)));
    if (r.bytes > 0) {
      frames.emplace_back(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(r.bytes));
      if (probe) onsets->push_back(std::exchange(onsetPending, false));
    }
  }
  if (frames.empty()) throw std::runtime_error("encoder produced nothing");
  return frames;
}

sockaddr_in inetAddress(const std::string& ip, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) throw std::runtime_error("bad IPv4 address " + ip);
  return sa;
}

// A bound non-blocking UDP socket on ip:0; returns the fd and its port.
int udpSocket(const std::string& ip, std::uint16_t& port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  sockaddr_in sa = inetAddress(ip, 0);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    throw std::runtime_error("bind " + ip + ": " + std::strerror(errno));
  }
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  port = ntohs(sa.sin_port);
  return fd;
}

std::uint16_t freeUdpPort() {
  std::uint16_t port = 0;
  int fd = udpSocket("127.0.0.1", port);
  close(fd);
  return port;
}

std::uint16_t freeTcpPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa = inetAddress("127.0.0.1", 0);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) throw std::runtime_error("no free port");
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  close(fd);
  return ntohs(sa.sin_port);
}

// One RTP endpoint of the driver (peer A or B of one session).
struct Peer {
  int fd = -1;
  std::uint16_t port = 0;
  sockaddr_in dest{};
  std::uint8_t pt = 0;
  std::uint32_t ssrc = 0;
  std::uint16_t seq = 0;
  std::uint32_t ts = 0;
  std::uint32_t tsStep = 160;
  const std::vector<std::vector<std::uint8_t>>* frames = nullptr;
  std::size_t frame = 0;
  std::unique_ptr<srtp::SrtpSession> out;  // protects what we send
  std::unique_ptr<srtp::SrtpSession> in;   // unprotects what the worker sends us
  // The payload type this peer negotiated for its own codec: whatever arrives in another one
  // (a relay passing the other side's codec through) is counted in wrongPt, not received.
  std::uint8_t expectPt = 0;
  int lastWrongPt = -1;
  // Session 0 only, from the start of the measured window: the payloads received, for the
  // tone check (decoded with this side's codec, the other side's tone must be heard).
  std::vector<std::vector<std::uint8_t>>* capture = nullptr;
  std::uint64_t sent = 0, sendErrors = 0, received = 0, rejected = 0, wrongPt = 0;
  // Added latency (issue 9). sentAt: when each packet left this peer's socket (index = the
  // packets sendOne was called for, from 0). On the receiving side: `from` is the peer whose
  // packets arrive here, and each packet received is paired with the one it sent (pairPacket).
  std::vector<Clock::time_point> sentAt;
  bool indexInPayload = false;  // relay paths: the first 4 payload octets carry ~index
  const Peer* from = nullptr;
  std::vector<std::int64_t>* latencyNs = nullptr;  // set in the measured window
  Clock::time_point windowFrom;                    // only packets sent from then on count
  bool pairStarted = false;
  std::uint32_t firstTs = 0;
  std::uint16_t firstSeq = 0;
  std::uint64_t lastIndex = 0;
  std::string unpaired;  // why this stream stopped pairing ("" while it pairs)
  // Transcoded paths, probe sessions: when each loud onset left (sending side), and the
  // decoder of what arrives with the quiet packets seen in a row (receiving side).
  const std::vector<bool>* onsetAt = nullptr;  // per payload of `frames`
  std::vector<Clock::time_point> onsetsSent;
  std::unique_ptr<codec::Decoder> probeDecoder;
  int quietRun = 0;
};

struct Session {
  std::string id;
  Peer a, b;
};

// utime+stime of a /proc stat file, in clock ticks.
std::uint64_t cpuTicks(const std::string& statFile) {
  std::ifstream f(statFile);
  std::string line;
  if (!std::getline(f, line)) return 0;
  auto close = line.rfind(')');
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  std::uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return utime + stime;
}

struct ThreadTicks {
  std::vector<std::pair<std::string, std::uint64_t>> perThread;  // (tid, ticks)
};

ThreadTicks threadTicks(int pid) {
  ThreadTicks t;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    t.perThread.emplace_back(e.path().filename().string(), cpuTicks(e.path().string() + "/stat"));
  }
  return t;
}

// A thread's name (/proc/PID/task/TID/comm), "?" once it is gone.
std::string threadName(int pid, const std::string& tid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + tid + "/comm");
  std::string name;
  if (!std::getline(f, name) || name.empty()) return "?";
  return name;
}

// Machine-wide (busy, total) jiffies from the first line of /proc/stat.
std::pair<std::uint64_t, std::uint64_t> machineTicks() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  f >> cpu;
  std::uint64_t v = 0, total = 0, idle = 0;
  for (int i = 0; i < 8 && f >> v; ++i) {
    total += v;
    if (i == 3 || i == 4) idle += v;  // idle, iowait
  }
  return {total - idle, total};
}

std::string loadAverage() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

double selfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// The media-transcoder this tool started; stopped by PID in the destructor.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Child() { stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  int pid() const { return pid_; }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  int pid_ = -1;
};

std::unique_ptr<grpc::ClientContext> rpcContext(std::chrono::seconds timeout = 10s) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + timeout);
  return c;
}

struct WorkerCounters {
  std::uint64_t in = 0, out = 0, dropped = 0;
  double load = 0, loadLimit = 0;
  std::size_t sessions = 0, transcoding = 0;
};

WorkerCounters listSessions(v1::MediaTranscoder::Stub& stub) {
  v1::ListSessionsResponse resp;
  auto st = stub.ListSessions(rpcContext(30s).get(), v1::ListSessionsRequest{}, &resp);
  if (!st.ok()) throw std::runtime_error("ListSessions: " + st.error_message());
  WorkerCounters c;
  c.load = resp.load();
  c.loadLimit = resp.load_limit();
  c.sessions = static_cast<std::size_t>(resp.sessions_size());
  for (const auto& s : resp.sessions()) {
    for (const auto* leg : {&s.leg_a(), &s.leg_b()}) {
      c.in += leg->packets_in();
      c.out += leg->packets_out();
      c.dropped += leg->srtp_auth_failures() + leg->srtp_replays() + leg->bad_packets() + leg->payload_drops();
    }
    if (s.transcoding()) ++c.transcoding;
  }
  return c;
}

void sendOne(Peer& p) {
  alignas(4) std::array<std::uint8_t, 1600> buf{};
  const auto& payload = (*p.frames)[p.frame];
  const bool onset = p.onsetAt && (*p.onsetAt)[p.frame];
  p.frame = (p.frame + 1) % p.frames->size();
  buf[0] = 0x80;
  buf[1] = p.pt;
  buf[2] = static_cast<std::uint8_t>(p.seq >> 8);
  buf[3] = static_cast<std::uint8_t>(p.seq);
  for (int i = 0; i < 4; ++i) {
    buf[4 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(p.ts >> (24 - 8 * i));
    buf[8 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(p.ssrc >> (24 - 8 * i));
  }
  std::memcpy(buf.data() + 12, payload.data(), payload.size());
  const std::uint32_t index = static_cast<std::uint32_t>(p.sentAt.size());
  if (p.indexInPayload && payload.size() >= 4) {
    // Inverted, so that the high octets of a small index are 0xff: PCMU silence, not a click.
    for (int i = 0; i < 4; ++i) buf[12 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(~index >> (24 - 8 * i));
  }
  std::size_t len = 12 + payload.size();
  ++p.seq;
  p.ts += p.tsStep;
  if (p.out && p.out->protectRtp(buf, len) != srtp::Status::Ok) {
    ++p.sendErrors;
    p.sentAt.push_back(Clock::now());  // the index stays that of the sendOne call
    return;
  }
  p.sentAt.push_back(Clock::now());
  if (onset) p.onsetsSent.push_back(p.sentAt.back());
  if (sendto(p.fd, buf.data(), len, 0, reinterpret_cast<const sockaddr*>(&p.dest), sizeof p.dest) < 0) {
    ++p.sendErrors;
  } else {
    ++p.sent;
  }
}

// Packets of session 0 kept per side for the tone check: 1 s; the last kToneFrames decoded
// are analysed (the decoders settle in the first ones).
constexpr std::size_t kCapturePackets = 50;
constexpr std::size_t kToneFrames = 30;

std::uint32_t be32(const std::uint8_t* b) {
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

// The payload type an SDP stream gives `codec` (the first of its formats that is it), if any.
std::optional<int> payloadTypeOf(const sdp::AudioStream& stream, codec::CodecId codec) {
  for (const auto& f : stream.formatInfo) {
    if (codec::codecFromName(f.name, f.clock) == codec) return f.pt;
  }
  return std::nullopt;
}

// Relay paths: pairs a packet received at p (parsed: view) with the packet the other peer
// sent, and records the one-way added latency (arrival - departure, both taken on this
// process's steady clock) when that packet left in the measured window. The payload arrives
// unchanged, so its first 4 octets carry the index the sender wrote (exact: loss and
// reordering do not matter).
void pairPacket(Peer& p, const rtp::RtpView& view, Clock::time_point arrived) {
  if (view.payload.size() < 4) {
    p.unpaired = "a relayed payload shorter than its 4-octet packet index";
    return;
  }
  const std::uint64_t k = ~be32(view.payload.data());
  if (k >= p.from->sentAt.size()) {
    p.unpaired = "packet " + std::to_string(k) + " received, only " + std::to_string(p.from->sentAt.size()) + " sent";
    return;
  }
  const Clock::time_point left = p.from->sentAt[k];
  if (arrived < left) {
    p.unpaired = "packet " + std::to_string(k) + " received before it was sent (mispaired)";
    return;
  }
  if (p.latencyNs && left >= p.windowFrom) {
    p.latencyNs->push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(arrived - left).count());
  }
}

// Transcoded paths, probe sessions: decodes a packet received at p; the first loud one after
// kProbeQuietRun quiet ones is the other peer's latest onset coming out, so the added
// latency is its arrival minus the departure of the last onset sent before it (an onset
// leaves every 500 ms: a latency beyond that would alias, and the jitter buffer's 200 ms
// maximum keeps it far below). A frame dropped or concealed inside the system moves no
// pairing: the audio itself is followed.
void probePacket(Peer& p, const rtp::RtpView& view, Clock::time_point arrived) {
  std::array<std::int16_t, codec::kMaxDecodedSamples> pcm{};
  auto r = p.probeDecoder->decode(view.payload, pcm);
  if (r.status != codec::CodecStatus::Ok) {
    p.unpaired = "a probe packet does not decode (" + std::string(codec::toString(r.status)) + ")";
    return;
  }
  double energy = 0;
  for (std::size_t i = 0; i < r.samples; ++i) energy += static_cast<double>(pcm[i]) * pcm[i];
  const double rms = r.samples > 0 ? std::sqrt(energy / static_cast<double>(r.samples)) : 0;
  if (rms < kProbeThreshold) {
    ++p.quietRun;
    return;
  }
  const bool onset = p.quietRun >= kProbeQuietRun;
  p.quietRun = 0;
  if (!onset) return;
  const auto& sent = p.from->onsetsSent;
  auto after = std::upper_bound(sent.begin(), sent.end(), arrived);
  if (after == sent.begin()) {
    p.unpaired = "a loud onset received before any was sent (mispaired)";
    return;
  }
  const Clock::time_point left = *(after - 1);
  if (p.latencyNs && left >= p.windowFrom) {
    p.latencyNs->push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(arrived - left).count());
  }
}

void drain(Peer& p) {
  alignas(4) std::array<std::uint8_t, 2048> buf{};
  for (;;) {
    ssize_t n = recv(p.fd, buf.data(), buf.size(), 0);
    if (n < 0) return;
    const Clock::time_point arrived = Clock::now();
    if (n < 12) {
      ++p.rejected;
      continue;
    }
    // RTCP (PT 200-204 in the second octet, rtcp-mux or not) is not counted as media.
    if (buf[1] >= 200 && buf[1] <= 204) continue;
    std::size_t len = static_cast<std::size_t>(n);
    if (p.in && p.in->unprotectRtp(buf, len) != srtp::Status::Ok) {
      ++p.rejected;
      continue;
    }
    auto view = rtp::parseRtp(std::span<const std::uint8_t>(buf.data(), len));
    if (!view) {
      ++p.rejected;
      continue;
    }
    if (view->payloadType != p.expectPt) {
      ++p.wrongPt;
      p.lastWrongPt = view->payloadType;
      continue;
    }
    ++p.received;
    if (p.from && p.unpaired.empty()) {
      if (p.indexInPayload) {
        pairPacket(p, *view, arrived);
      } else if (p.probeDecoder) {
        probePacket(p, *view, arrived);
      }
    }
    if (p.capture && p.capture->size() < kCapturePackets && !view->payload.empty()) {
      p.capture->emplace_back(view->payload.begin(), view->payload.end());
    }
  }
}

struct PeerTotals {
  std::uint64_t sentA = 0, sentB = 0, recvA = 0, recvB = 0, rejected = 0, sendErrors = 0, wrongPtA = 0, wrongPtB = 0;
  int lastWrongPtA = -1, lastWrongPtB = -1;
};

PeerTotals totals(const std::vector<Session>& sessions) {
  PeerTotals t;
  for (const auto& s : sessions) {
    t.sentA += s.a.sent;
    t.sentB += s.b.sent;
    t.recvA += s.a.received;
    t.recvB += s.b.received;
    t.rejected += s.a.rejected + s.b.rejected;
    t.sendErrors += s.a.sendErrors + s.b.sendErrors;
    t.wrongPtA += s.a.wrongPt;
    t.wrongPtB += s.b.wrongPt;
    if (s.a.lastWrongPt >= 0) t.lastWrongPtA = s.a.lastWrongPt;
    if (s.b.lastWrongPt >= 0) t.lastWrongPtB = s.b.lastWrongPt;
  }
  return t;
}

std::string fmt(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

// The tone check of one side: its captured payloads decoded with its own codec must carry
// the other side's tone (a dominant frequency within 20 Hz of it, and not near silence).
// Returns "" when it does, else why not.
std::string toneCheck(const std::string& side, codec::CodecId id, const std::vector<std::vector<std::uint8_t>>& payloads,
                      double expectHz, double& heardHz) {
  heardHz = 0;
  if (payloads.size() < kToneFrames) {
    return side + " received " + std::to_string(payloads.size()) + " packets of session 0 in the measured window, " +
           std::to_string(kToneFrames) + " needed for the tone check";
  }
  codec::CodecParams params;
  params.ptimeMs = 20;
  auto decoder = codec::makeDecoder(id, params);
  std::vector<std::int16_t> pcm;
  std::array<std::int16_t, codec::kMaxDecodedSamples> out{};
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    auto r = decoder->decode(payloads[i], out);
    if (r.status != codec::CodecStatus::Ok) {
      return side + ": packet " + std::to_string(i) + " of session 0 does not decode as " + codecParamName(id) + " (" +
             std::string(codec::toString(r.status)) + ")";
    }
    if (i >= payloads.size() - kToneFrames) pcm.insert(pcm.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(r.samples));
  }
  const std::uint32_t rate = decoder->sampleRate();
  heardHz = signals::dominantFrequency(pcm, rate, 3400);
  const double level = signals::rms(pcm);
  if (level < 100) return side + ": decoded " + codecParamName(id) + " is near silence (RMS " + fmt(level, 0) + ")";
  if (std::abs(heardHz - expectHz) > 20) {
    return side + ": decoded " + codecParamName(id) + " carries " + fmt(heardHz, 0) + " Hz, not the other side's " +
           fmt(expectHz, 0) + " Hz tone";
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"media_load: N concurrent calls through one media-transcoder; CPU per call"};
  std::string pathName = "pcmu-opus";
  std::size_t sessionCount = 100;
  double warmupS = 5, seconds = 20;
  std::string transcoder = "build/bin/media-transcoder";
  std::string attach;
  int attachPid = 0;
  int portMin = 34000, portMax = 45999;
  std::string suiteName = "AES_CM_128_HMAC_SHA1_80";
  std::string addrA = "127.0.0.2", addrB = "127.0.0.3";
  std::string logLevel = "warn";
  int rtpengineLogLevel = 4;
  bool keepLogs = false;
  std::string peerName = "medius";
  std::string rtpengine = "/usr/bin/rtpengine";
  app.add_option("--path", pathName,
                 "pcmu-opus | pcma-g722 | pcmu-g722 | pcmu-g729 | relay-srtp-rtp | relay-rtp");
  app.add_option("--sessions,-n", sessionCount, "concurrent sessions");
  app.add_option("--warmup", warmupS, "seconds of traffic before the measured window");
  app.add_option("--seconds", seconds, "measured window, seconds");
  app.add_option("--transcoder", transcoder, "media-transcoder binary to start");
  app.add_option("--grpc", attach, "attach to a running worker at HOST:PORT instead of starting one");
  app.add_option("--pid", attachPid, "PID of the attached worker (for its CPU)");
  app.add_option("--port-min", portMin, "worker RTP port range (started worker only)");
  app.add_option("--port-max", portMax, "");
  app.add_option("--suite", suiteName, "SRTP suite peer A offers on relay-srtp-rtp");
  app.add_option("--log-level", logLevel, "log level of the started worker");
  app.add_option("--rtpengine-log-level", rtpengineLogLevel, "--log-level of the started rtpengine (syslog levels, 7 = debug)");
  app.add_flag("--keep-logs", keepLogs, "keep the work directory with the started process's log");
  app.add_option("--peer", peerName,
                 "medius (the media-transcoder) | rtpengine (Debian's rtpengine in userspace, one thread, driven "
                 "over its ng protocol: the same streams through the established peer; on transcoded paths its "
                 "codec dictionary masks A's codec and transcodes to B's)");
  app.add_option("--rtpengine", rtpengine, "rtpengine binary (--peer rtpengine)");
  CLI11_PARSE(app, argc, argv);

  auto path = pathByName(pathName);
  if (!path) {
    std::cerr << "unknown --path " << pathName << "\n";
    return 2;
  }
  auto suite = srtp::suiteFromName(suiteName);
  if (!suite || !srtp::suiteAvailable(*suite)) {
    std::cerr << "SRTP suite not available: " << suiteName << "\n";
    return 2;
  }
  const bool useRtpengine = peerName == "rtpengine";
  if (!useRtpengine && peerName != "medius") {
    std::cerr << "unknown --peer " << peerName << " (medius or rtpengine)\n";
    return 2;
  }
  if (useRtpengine && !attach.empty()) {
    std::cerr << "--peer rtpengine starts its own rtpengine: no --grpc\n";
    return 2;
  }
  if (!attach.empty() && attachPid <= 0) {
    std::cerr << "--grpc needs --pid\n";
    return 2;
  }

  std::unique_ptr<Child> child;
  std::string target = attach;
  int pid = attachPid;
  std::filesystem::path dir;
  std::unique_ptr<medius::bench::NgClient> ng;
  try {
    if (useRtpengine) {
      char tmpl[] = "/tmp/media-load-XXXXXX";
      if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
      dir = tmpl;
      std::uint16_t ngPort = freeUdpPort();
      // Userspace only (--table=-1: no kernel forwarding), one worker thread like our
      // worker's `workers: 1` (--num-threads=1: the poller thread receives, relays, decodes
      // and encodes) and one set of timer threads (--media-num-threads=1, the default for
      // one worker: its "send timer" thread sends the transcoded packets at their time; with
      // 0 they are never sent), no config file of the machine's.
      child = std::make_unique<Child>(
          std::vector<std::string>{rtpengine, "--config-file=none", "--foreground", "--log-stderr", "--table=-1",
                                   "--interface=127.0.0.1", "--listen-ng=127.0.0.1:" + std::to_string(ngPort),
                                   "--port-min=" + std::to_string(portMin), "--port-max=" + std::to_string(portMax),
                                   "--num-threads=1", "--media-num-threads=1", "--log-level=" + std::to_string(rtpengineLogLevel), "--delete-delay=0",
                                   "--timeout=600"},
          (dir / "rtpengine.log").string());
      pid = child->pid();
      ng = std::make_unique<medius::bench::NgClient>(ngPort);
      bool up = false;
      for (int i = 0; i < 50 && !up; ++i) {
        try {
          ng->call({{"command", "ping"}}, 200ms, "pong");
          up = true;
        } catch (const std::exception&) {
        }
      }
      if (!up) throw std::runtime_error("rtpengine did not answer ping on 127.0.0.1:" + std::to_string(ngPort) + " (see " + dir.string() + "/rtpengine.log)");
      std::cout << "started " << rtpengine << " pid " << pid << " ng 127.0.0.1:" << ngPort << "\n";
    } else if (attach.empty()) {
      char tmpl[] = "/tmp/media-load-XXXXXX";
      if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
      dir = tmpl;
      std::uint16_t grpcPort = freeTcpPort(), metricsPort = freeTcpPort();
      target = "127.0.0.1:" + std::to_string(grpcPort);
      std::ofstream(dir / "media.json")
          << "{\n  \"service\": {\"grpc_listen\": \"" << target << "\", \"metrics_listen\": \"127.0.0.1:"
          << metricsPort << "\", \"log\": {\"level\": \"" << logLevel << "\"}},\n"
          << "  \"advertised_address\": \"127.0.0.1\",\n  \"bind_address\": \"127.0.0.1\",\n"
          << "  \"port_range\": {\"min\": " << portMin << ", \"max\": " << portMax << "},\n"
          << "  \"workers\": 1,\n  \"media_timeout_ms\": 600000,\n  \"max_sessions\": 50000,\n"
          << "  \"load_limit\": 100000\n}\n";
      child = std::make_unique<Child>(std::vector<std::string>{transcoder, "--config", (dir / "media.json").string()},
                                      (dir / "media.log").string());
      pid = child->pid();
      std::cout << "started " << transcoder << " pid " << pid << " grpc " << target << " config "
                << (dir / "media.json").string() << "\n";
    }

    std::unique_ptr<v1::MediaTranscoder::Stub> stub;
    if (!useRtpengine) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(256 * 1024 * 1024);
      auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
      if (!channel->WaitForConnected(std::chrono::system_clock::now() + 15s)) {
        throw std::runtime_error("worker at " + target + " not reachable (see its log in " + dir.string() + ")");
      }
      stub = v1::MediaTranscoder::NewStub(channel);
    }

    // Payloads: a 1 s tone per peer, encoded once.
    std::uint32_t tsStepA = 0, tsStepB = 0;
    const auto framesA = encodeTone(path->a.codec, 400, tsStepA);
    const auto framesB = encodeTone(path->b.codec, 1000, tsStepB);
    std::vector<bool> onsetsA, onsetsB;
    const auto probeA = encodeTone(path->a.codec, 400, tsStepA, &onsetsA);
    const auto probeB = encodeTone(path->b.codec, 1000, tsStepB, &onsetsB);
    const PeerFormat fa = peerFormat(path->a.codec), fb = peerFormat(path->b.codec);

    std::mt19937 rng{std::random_device{}()};
    std::vector<Session> sessions(sessionCount);
    const std::string run = std::to_string(getpid());
    auto setupStart = Clock::now();
    for (std::size_t i = 0; i < sessionCount; ++i) {
      Session& s = sessions[i];
      s.id = "load-" + run + "-" + std::to_string(i);
      s.a.fd = udpSocket(addrA, s.a.port);
      s.b.fd = udpSocket(addrB, s.b.port);

      std::string cryptoA;
      if (path->a.srtp) {
        auto attr = srtp::makeLocalCryptoAttribute(1, *suite);
        cryptoA = srtp::formatCryptoAttribute(attr);
        s.a.out = std::make_unique<srtp::SrtpSession>(*suite, attr.keys.at(0).keySalt, srtp::Direction::Outbound);
      }
      const std::string offerA = peerSdp(addrA, s.a.port, path->a.srtp ? "RTP/SAVP" : "RTP/AVP", fa.pt, fa, cryptoA);
      std::string offerToB, answerToA;
      if (useRtpengine) {
        // The same offer/answer through rtpengine: A's offer (SRTP on relay-srtp-rtp) becomes
        // a plain RTP/AVP offer toward B, B's plain answer an SDES answer toward A.
        medius::bench::NgClient::Request offer{{"command", "offer"}, {"call-id", s.id}, {"from-tag", "a" + std::to_string(i)},
                                               {"sdp", offerA}, {"ICE", "remove"}, {"replace", std::vector<std::string>{"origin", "session-connection"}}};
        if (path->a.srtp) offer["transport-protocol"] = std::string("RTP/AVP");
        // Transcoded: rtpengine's codec dictionary (README "codec"): mask A's codec (kept for
        // A's side, gone from the offer to B) and transcode to B's (added to the offer).
        if (path->transcoded) {
          offer["codec"] = std::map<std::string, std::vector<std::string>>{
              {"mask", {codecParamName(path->a.codec)}}, {"transcode", {codecParamName(path->b.codec)}}};
        }
        Bencode reply{ng->call(offer)};
        offerToB = reply.stringAt("sdp");
      }
      v1::CreateSessionRequest req;
      v1::CreateSessionResponse created;
      if (!useRtpengine) {
      req.set_session_id(s.id);
      req.set_gateway_id("media-load");
      for (auto [legSpec, leg] : {std::pair{&path->a, req.mutable_leg_a()}, std::pair{&path->b, req.mutable_leg_b()}}) {
        leg->set_side(legSpec->side);
        leg->set_srtp(legSpec->policy);
        leg->add_codecs(codecParamName(legSpec->codec));
        if (legSpec->side == v1::SIDE_TRUNK) leg->set_trunk("load");
      }
      req.set_offer_sdp(offerA);
      auto st = stub->CreateSession(rpcContext().get(), req, &created);
      if (!st.ok()) throw std::runtime_error("CreateSession " + s.id + ": " + st.error_message());
      offerToB = created.offer_sdp();
      }
      auto offerB = sdp::Description::parse(offerToB).audio();
      std::optional<int> ptB = payloadTypeOf(offerB, path->b.codec);
      if (!ptB) throw std::runtime_error("the offer to B lacks " + codecParamName(path->b.codec) + ":\n" + offerToB);
      if (useRtpengine && path->transcoded && payloadTypeOf(offerB, path->a.codec)) {
        throw std::runtime_error("rtpengine's offer to B still carries A's " + codecParamName(path->a.codec) +
                                 " (it would not transcode):\n" + offerToB);
      }
      s.b.dest = inetAddress(offerB.address, offerB.rtpPort);

      const std::string answerB = peerSdp(addrB, s.b.port, "RTP/AVP", *ptB, fb, "");
      if (useRtpengine) {
        Bencode reply{ng->call({{"command", "answer"}, {"call-id", s.id}, {"from-tag", "a" + std::to_string(i)},
                                {"to-tag", "b" + std::to_string(i)}, {"sdp", answerB}, {"ICE", "remove"},
                                {"replace", std::vector<std::string>{"origin", "session-connection"}}})};
        answerToA = reply.stringAt("sdp");
      } else {
        v1::UpdateSessionRequest upd;
        upd.set_session_id(s.id);
        upd.set_from_leg(v1::LEG_B);
        upd.set_is_answer(true);
        upd.set_sdp(answerB);
        v1::UpdateSessionResponse answered;
        auto st = stub->UpdateSession(rpcContext().get(), upd, &answered);
        if (!st.ok()) throw std::runtime_error("UpdateSession " + s.id + ": " + st.error_message());
        answerToA = answered.sdp();
      }
      auto answerA = sdp::Description::parse(answerToA).audio();
      s.a.dest = inetAddress(answerA.address, answerA.rtpPort);
      std::optional<int> ptA = payloadTypeOf(answerA, path->a.codec);
      if (!ptA) throw std::runtime_error("the answer to A lacks A's " + codecParamName(path->a.codec) + ":\n" + answerToA);
      if (path->a.srtp) {
        if (answerA.cryptos.empty()) throw std::runtime_error("no a=crypto in the answer to A:\n" + answerToA);
        auto parsed = srtp::parseCryptoAttribute(answerA.cryptos.front());
        if (parsed.status != srtp::ParseStatus::Ok) throw std::runtime_error("answer crypto: " + parsed.error);
        auto keys = parsed.attribute->masterKeys();
        s.a.in = std::make_unique<srtp::SrtpSession>(parsed.attribute->suite, keys, srtp::Direction::Inbound);
      }
      if (i == 0) {
        std::cout << "--- offer from A\n" << offerA << "--- " << peerName << "'s offer to B\n" << offerToB
                  << "--- answer from B\n" << answerB << "--- " << peerName << "'s answer to A\n" << answerToA << "---\n";
      }
      s.a.pt = static_cast<std::uint8_t>(fa.pt);
      s.b.pt = static_cast<std::uint8_t>(*ptB);
      s.a.expectPt = static_cast<std::uint8_t>(*ptA);
      s.b.expectPt = static_cast<std::uint8_t>(*ptB);
      s.a.frames = &framesA;
      s.b.frames = &framesB;
      s.a.tsStep = tsStepA;
      s.b.tsStep = tsStepB;
      s.a.ssrc = static_cast<std::uint32_t>(rng());
      s.b.ssrc = static_cast<std::uint32_t>(rng());
      s.a.seq = static_cast<std::uint16_t>(rng());
      s.b.seq = static_cast<std::uint16_t>(rng());
      s.a.frame = i % framesA.size();
      s.b.frame = i % framesB.size();
      s.a.indexInPayload = s.b.indexInPayload = !path->transcoded;
      if (path->transcoded && i >= 1 && i <= kProbeSessions) {
        s.a.frames = &probeA;
        s.b.frames = &probeB;
        s.a.onsetAt = &onsetsA;
        s.b.onsetAt = &onsetsB;
        codec::CodecParams decoding;
        decoding.ptimeMs = 20;
        s.a.probeDecoder = codec::makeDecoder(path->a.codec, decoding);  // A receives A's codec
        s.b.probeDecoder = codec::makeDecoder(path->b.codec, decoding);
      }
    }
    auto setupMs = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - setupStart).count();
    // rtpengine has no per-leg counters we read: what goes in is what the peers sent, what
    // comes out what they received.
    auto counters = [&]() -> WorkerCounters {
      if (stub) return listSessions(*stub);
      PeerTotals t = totals(sessions);
      WorkerCounters c;
      c.in = t.sentA + t.sentB;
      c.out = t.recvA + t.recvB;
      c.sessions = sessions.size();
      return c;
    };
    auto initial = counters();
    std::cout << "path " << path->name << ": " << sessionCount << " sessions set up in " << setupMs
              << " ms; worker: " << initial.sessions << " sessions, " << initial.transcoding
              << " transcoding, load " << fmt(initial.load, 2) << " (limit " << fmt(initial.loadLimit, 0) << ")\n";
    if (stub && initial.transcoding != (path->transcoded ? sessionCount : 0)) {
      std::cout << "WARNING: expected " << (path->transcoded ? sessionCount : 0) << " transcoding sessions\n";
    }

    // Pointers into `sessions`, which no longer grows.
    for (auto& s : sessions) {
      s.a.from = &s.b;
      s.b.from = &s.a;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<Peer*> peers;
    for (auto& s : sessions) {
      for (Peer* p : {&s.a, &s.b}) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = static_cast<std::uint32_t>(peers.size());
        peers.push_back(p);
        epoll_ctl(ep, EPOLL_CTL_ADD, p->fd, &ev);
      }
    }

    // Every session sends one packet per direction every 20 ms; sessions are spread over 10
    // slots of 2 ms so the worker sees a steady stream, not one burst per period.
    constexpr int kSlots = 10;
    constexpr auto kSlot = 2ms;
    const auto start = Clock::now();
    const auto measureFrom = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmupS));
    const auto measureTo = measureFrom + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    auto nextSlot = start;
    int slot = 0;
    std::uint64_t lateSlots = 0;
    bool measuring = false;
    std::uint64_t ticks0 = 0;
    ThreadTicks threads0;
    std::pair<std::uint64_t, std::uint64_t> machine0;
    WorkerCounters worker0;
    PeerTotals peers0;
    double self0 = 0;
    std::string loadBefore;
    std::vector<std::vector<std::uint8_t>> capturedA, capturedB;
    std::vector<std::int64_t> latencyAtA, latencyAtB;  // ns, B->A and A->B
    Clock::time_point t0;
    const std::string statFile = "/proc/" + std::to_string(pid) + "/stat";
    std::array<epoll_event, 256> events{};
    for (;;) {
      auto now = Clock::now();
      if (now >= nextSlot) {
        if (now - nextSlot > kSlot) ++lateSlots;
        for (std::size_t i = static_cast<std::size_t>(slot); i < sessions.size(); i += kSlots) {
          sendOne(sessions[i].a);
          sendOne(sessions[i].b);
        }
        slot = (slot + 1) % kSlots;
        nextSlot += kSlot;
        if (!measuring && now >= measureFrom) {
          measuring = true;
          t0 = Clock::now();
          ticks0 = cpuTicks(statFile);
          threads0 = threadTicks(pid);
          machine0 = machineTicks();
          worker0 = counters();
          peers0 = totals(sessions);
          sessions[0].a.capture = &capturedA;
          sessions[0].b.capture = &capturedB;
          for (auto& s : sessions) {
            s.a.latencyNs = &latencyAtA;
            s.b.latencyNs = &latencyAtB;
            s.a.windowFrom = s.b.windowFrom = t0;
          }
          self0 = selfCpuSeconds();
          loadBefore = loadAverage();
        }
        if (measuring && now >= measureTo) break;
        // Behind schedule the loop sends slot after slot: still read what came back, or the
        // peers' receive buffers overflow and the counts lie.
        int ready = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 0);
        for (int i = 0; i < ready; ++i) drain(*peers[events[static_cast<std::size_t>(i)].data.u32]);
        continue;
      }
      // Rounded up: a 0 ms timeout with less than a millisecond left would spin.
      auto waitMs = std::chrono::ceil<std::chrono::milliseconds>(nextSlot - now).count();
      int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), static_cast<int>(waitMs));
      for (int i = 0; i < n; ++i) drain(*peers[events[static_cast<std::size_t>(i)].data.u32]);
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    const std::uint64_t ticks1 = cpuTicks(statFile);
    const ThreadTicks threads1 = threadTicks(pid);
    const auto machine1 = machineTicks();
    const WorkerCounters worker1 = counters();
    const PeerTotals peers1 = totals(sessions);
    const double self1 = selfCpuSeconds();
    const std::string loadAfter = loadAverage();
    close(ep);

    sessions[0].a.capture = nullptr;
    sessions[0].b.capture = nullptr;
    for (auto& s : sessions) s.a.latencyNs = s.b.latencyNs = nullptr;
    const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double cpuPct = 100.0 * static_cast<double>(ticks1 - ticks0) / hz / elapsed;
    double busiestPct = 0;
    std::vector<std::pair<double, std::string>> busyThreads;  // (% of a core, name)
    for (const auto& [tid, t1] : threads1.perThread) {
      for (const auto& [tid0, tb] : threads0.perThread) {
        if (tid0 != tid) continue;
        const double pct = 100.0 * static_cast<double>(t1 - tb) / hz / elapsed;
        busiestPct = std::max(busiestPct, pct);
        busyThreads.emplace_back(pct, threadName(pid, tid));
      }
    }
    std::sort(busyThreads.begin(), busyThreads.end(), std::greater<>());
    const double machinePct = 100.0 * static_cast<double>(machine1.first - machine0.first) /
                              static_cast<double>(std::max<std::uint64_t>(1, machine1.second - machine0.second));
    const double inPerS = static_cast<double>(worker1.in - worker0.in) / elapsed;
    const double outPerS = static_cast<double>(worker1.out - worker0.out) / elapsed;
    const double sentPerS = static_cast<double>((peers1.sentA + peers1.sentB) - (peers0.sentA + peers0.sentB)) / elapsed;
    const double recvAPerS = static_cast<double>(peers1.recvA - peers0.recvA) / elapsed;
    const double recvBPerS = static_cast<double>(peers1.recvB - peers0.recvB) / elapsed;
    const double perCall = cpuPct / static_cast<double>(sessionCount);
    const double usPerPacket = inPerS > 0 ? cpuPct / 100.0 * 1e6 / inPerS : 0;

    std::cout << "\nmeasured " << fmt(elapsed, 1) << " s after " << fmt(warmupS, 0) << " s warm-up; load average "
              << loadBefore << " -> " << loadAfter << "; machine busy " << fmt(machinePct, 0) << " % of all CPUs\n"
              << "peers: sent " << fmt(sentPerS, 0) << " pkt/s (A " << fmt(static_cast<double>(peers1.sentA - peers0.sentA) / elapsed, 0)
              << ", B " << fmt(static_cast<double>(peers1.sentB - peers0.sentB) / elapsed, 0) << "), received at A "
              << fmt(recvAPerS, 0) << " pkt/s, at B " << fmt(recvBPerS, 0) << " pkt/s; rejected (SRTP/short) "
              << (peers1.rejected - peers0.rejected) << ", send errors " << (peers1.sendErrors - peers0.sendErrors)
              << ", late 2 ms slots " << lateSlots << "; driver CPU " << fmt(100.0 * (self1 - self0) / elapsed, 1) << " %\n"
              << (stub ? "worker (ListSessions): received " : "rtpengine (from the peers' counts): received ") << fmt(inPerS, 0) << " pkt/s, sent " << fmt(outPerS, 0)
              << " pkt/s, dropped " << (worker1.dropped - worker0.dropped) << "; estimated load "
              << fmt(worker1.load, 2) << " % of a core\n";
    // Threads: both systems are measured as a whole process (every thread's CPU), each with
    // one media thread: the worker's `workers: 1`, rtpengine's --num-threads=1.
    std::cout << "threads: " << threads1.perThread.size() << " in the process ("
              << (useRtpengine ? "rtpengine --num-threads=1 --media-num-threads=1" : "media-transcoder workers: 1")
              << "; CPU counted for all of them); busiest:";
    for (std::size_t i = 0; i < busyThreads.size() && i < 3; ++i) {
      std::cout << (i ? ", " : " ") << busyThreads[i].second << " " << fmt(busyThreads[i].first, 1) << " %";
    }
    std::cout << "\n";

    // Each side must receive its own codec (the payload type it negotiated) and, decoded with
    // that codec, hear the other side's tone: proof that the system transcoded (or relayed)
    // rather than passed the other side's codec through or sent silence.
    std::vector<std::string> failures;
    const std::uint64_t wrongA = peers1.wrongPtA - peers0.wrongPtA, wrongB = peers1.wrongPtB - peers0.wrongPtB;
    std::cout << "payload types: A expects " << int{sessions[0].a.expectPt} << " (" << codecParamName(path->a.codec)
              << "), B expects " << int{sessions[0].b.expectPt} << " (" << codecParamName(path->b.codec)
              << "); in other payload types in the measured window: A " << wrongA << ", B " << wrongB << " packets\n";
    for (auto [side, wrong, last, expect] : {std::tuple{"A", wrongA, peers1.lastWrongPtA, int{sessions[0].a.expectPt}},
                                            std::tuple{"B", wrongB, peers1.lastWrongPtB, int{sessions[0].b.expectPt}}}) {
      if (wrong > 0) {
        failures.push_back(std::string(side) + " received " + std::to_string(wrong) + " packets in payload type " +
                           std::to_string(last) + ", not its own " + std::to_string(expect) +
                           " (the other side's codec passed through, not transcoded)");
      }
    }
    double heardA = 0, heardB = 0;
    const std::string toneA = toneCheck("A", path->a.codec, capturedA, 1000, heardA);
    const std::string toneB = toneCheck("B", path->b.codec, capturedB, 400, heardB);
    std::cout << "tone check (session 0, " << kToneFrames << " frames decoded by the driver): A hears " << fmt(heardA, 0)
              << " Hz (B sends 1000 Hz), B hears " << fmt(heardB, 0) << " Hz (A sends 400 Hz)\n\n";
    if (!toneA.empty()) failures.push_back("tone check: " + toneA);
    if (!toneB.empty()) failures.push_back("tone check: " + toneB);

    // Added latency: relay paths, every packet of every session sent in the measured window
    // and received before its end, both directions, paired as pairPacket says; transcoded
    // paths, every onset of the probe sessions (probePacket). A stream that stopped pairing
    // contributes its packets up to then; more than 10 % of them stopped: no figure.
    std::size_t streamsUnpaired = 0;
    std::string unpairedWhy;
    for (const auto& s : sessions) {
      for (const Peer* p : {&s.a, &s.b}) {
        if (p->unpaired.empty()) continue;
        ++streamsUnpaired;
        if (unpairedWhy.empty()) unpairedWhy = std::string(p == &s.a ? "at A" : "at B") + " of session " + s.id + ": " + p->unpaired;
      }
    }
    const std::size_t streams =
        2 * (path->transcoded ? std::min(kProbeSessions, sessions.size() - 1) : sessions.size());
    struct Quantiles {
      std::size_t n = 0;
      double p50 = 0, p99 = 0, max = 0;  // us
    };
    auto quantiles = [](std::vector<std::int64_t> v) {
      Quantiles q;
      q.n = v.size();
      if (v.empty()) return q;
      std::sort(v.begin(), v.end());
      auto rank = [&](double f) {  // nearest rank
        auto i = static_cast<std::size_t>(std::ceil(f * static_cast<double>(v.size())));
        return static_cast<double>(v[std::min(v.size() - 1, i > 0 ? i - 1 : 0)]) / 1e3;
      };
      q.p50 = rank(0.50);
      q.p99 = rank(0.99);
      q.max = static_cast<double>(v.back()) / 1e3;
      return q;
    };
    std::vector<std::int64_t> latencyBoth(latencyAtA);
    latencyBoth.insert(latencyBoth.end(), latencyAtB.begin(), latencyAtB.end());
    const Quantiles toB = quantiles(latencyAtB), toA = quantiles(latencyAtA), both = quantiles(latencyBoth);
    const std::string pairing =
        path->transcoded ? "decoded loud onsets of " + std::to_string(streams / 2) +
                               " probe sessions with the onset sent last before each arrived"
                         : std::string("packet index in the first 4 payload octets");
    std::string latencyWhy;
    if (10 * streamsUnpaired > streams) {
      latencyWhy = std::to_string(streamsUnpaired) + " of " + std::to_string(streams) +
                   " streams could not be paired (first: " + unpairedWhy + ")";
    } else if (toA.n == 0 || toB.n == 0) {
      latencyWhy = "no packet paired in the measured window " + std::string(toB.n == 0 ? "A->B" : "B->A") +
                   (unpairedWhy.empty() ? "" : " (" + unpairedWhy + ")");
    }
    if (!latencyWhy.empty()) {
      std::cout << "added latency: no figure: " << latencyWhy << "\n";
    } else {
      std::cout << "added latency (one way, departure from the sending peer's socket to arrival at the other's, "
                << "pairing: " << pairing << "): A->B " << toB.n << " packets p50 " << fmt(toB.p50, 0) << " us, p99 "
                << fmt(toB.p99, 0) << " us, max " << fmt(toB.max, 0) << " us; B->A " << toA.n << " packets p50 "
                << fmt(toA.p50, 0) << " us, p99 " << fmt(toA.p99, 0) << " us, max " << fmt(toA.max, 0) << " us; "
                << streamsUnpaired << " of " << streams << " streams stopped pairing"
                << (unpairedWhy.empty() ? "" : " (first: " + unpairedWhy + ")") << "\n";
    }
    auto latencyCell = [&](double v) { return latencyWhy.empty() ? fmt(v, 0) : std::string("-"); };
    std::cout << "| path | sessions | pkt/s into worker | pkt/s out | worker CPU % (process) | relay thread % | CPU per call (% of a core) | calls per core | us per relayed packet | packets/s per core | worker's estimated load % | added latency p50 us | added latency p99 us | added latency max us |\n"
              << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
              << "| " << path->name << (stub ? "" : " (rtpengine)") << " | " << sessionCount << " | " << fmt(inPerS, 0) << " | " << fmt(outPerS, 0) << " | "
              << fmt(cpuPct, 1) << " | " << fmt(busiestPct, 1) << " | " << fmt(perCall, 4) << " | "
              << (perCall > 0 ? fmt(100.0 / perCall, 0) : "-") << " | " << fmt(usPerPacket, 2) << " | "
              << (usPerPacket > 0 ? fmt(1e6 / usPerPacket, 0) : "-") << " | " << fmt(worker1.load, 1) << " | "
              << latencyCell(both.p50) << " | " << latencyCell(both.p99) << " | " << latencyCell(both.max) << " |\n";

    for (auto& s : sessions) {
      if (stub) {
        v1::DeleteSessionRequest del;
        del.set_session_id(s.id);
        v1::SessionStats ignored;
        (void)stub->DeleteSession(rpcContext().get(), del, &ignored);
      } else {
        try {
          ng->call({{"command", "delete"}, {"call-id", s.id}});
        } catch (const std::exception&) {
          // Stopped below in any case.
        }
      }
      close(s.a.fd);
      close(s.b.fd);
    }
    if (child) child->stop();
    if (!dir.empty() && !keepLogs) std::filesystem::remove_all(dir);
    if (keepLogs) std::cout << "logs kept in " << dir.string() << "\n";
    const bool broken = recvAPerS < 0.9 * sentPerS / 2 || recvBPerS < 0.9 * sentPerS / 2;
    if (broken) std::cout << "WARNING: peers received less than 90 % of what was sent the other way\n";
    for (const auto& f : failures) std::cout << "FAILED: " << f << "\n";
    return broken || !failures.empty() ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "media_load: " << e.what() << "\n";
    if (child) child->stop();
    if (!dir.empty()) std::cerr << "worker log kept in " << dir.string() << "/media.log\n";
    return 1;
  }
}
