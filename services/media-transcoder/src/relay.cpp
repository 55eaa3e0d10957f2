#include "medius/media/relay.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <span>
#include <string_view>
#include <system_error>

#include <prometheus/counter.h>

#include "medius/common/logging.hpp"
#include "medius/common/stun.hpp"

namespace medius::media {

namespace {

// Upper bound of recvmmsg batches read from one socket per wake-up, so that one busy leg
// cannot starve the others of the same worker (level-triggered epoll brings it back).
constexpr int kMaxBatchesPerEvent = 2;
constexpr int kMaxEvents = 64;
// Timeouts are checked and totals flushed this often (and the loop sleeps at most this long).
constexpr int kTickMs = 50;

void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) {
  // Single writer (the worker): a load and a store, no locked read-modify-write.
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

bool sameSource(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port;
}

std::uint64_t pack(const sockaddr_in& a) {
  return (static_cast<std::uint64_t>(ntohl(a.sin_addr.s_addr)) << 16) | ntohs(a.sin_port);
}

bool toSockaddr(const std::string& address, std::uint16_t port, sockaddr_in& out) {
  if (address.empty() || address == "0.0.0.0" || port == 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1) return false;
  out = a;
  return true;
}

bool iceChecked(const IceLeg& ice, std::size_t component, const sockaddr_in& source) {
  for (std::size_t i = 0; i < std::min(ice.validatedCount[component], IceLeg::kValidated); ++i) {
    if (sameSource(ice.validated[component][i], source)) return true;
  }
  return false;
}

std::string addressText(const sockaddr_in& a) {
  char ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

}  // namespace

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

Fd bindUdp(const std::string& address, std::uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Fd();
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1) {
    errno = EINVAL;
    return Fd();
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return Fd();
  return fd;
}

namespace {
std::uint64_t monotonicNanos() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}
}  // namespace

std::int64_t monotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Worker::Worker(int index, TrafficCounters& totals, TimeoutHandler onTimeout)
    : index_(index), totals_(totals), onTimeout_(std::move(onTimeout)) {
  for (std::size_t i = 0; i < kBatch; ++i) {
    iovecs_[i].iov_base = buffers_[i].data();
    // kPacketBytes, not the buffer: a larger datagram sets MSG_TRUNC and is dropped.
    iovecs_[i].iov_len = kPacketBytes;
    messages_[i].msg_hdr.msg_iov = &iovecs_[i];
    messages_[i].msg_hdr.msg_iovlen = 1;
    messages_[i].msg_hdr.msg_name = &sources_[i];
  }
  epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
  if (epoll_.get() < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  wakeup_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (wakeup_.get() < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr marks the wake-up fd
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wakeup_.get(), &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl(eventfd)");
  }
}

Worker::~Worker() { stop(); }

void Worker::start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { loop(); });
}

void Worker::stop() {
  if (!running_.exchange(false)) return;
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakeup_.get(), &one, sizeof one);
  thread_.join();
  drainPosts();
  flushTotals();
}

void Worker::post(std::function<void()> fn) {
  {
    std::lock_guard lock(postMutex_);
    posted_.push_back(std::move(fn));
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakeup_.get(), &one, sizeof one);
}

void Worker::run(const std::function<void()>& fn) {
  if (!running_.load() || std::this_thread::get_id() == thread_.get_id()) {
    fn();
    return;
  }
  std::promise<void> done;
  auto future = done.get_future();
  post([&] {
    try {
      fn();
      done.set_value();
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  });
  future.get();
}

void Worker::drainPosts() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(postMutex_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void Worker::attach(RelaySession& session) {
  session.endpoints = {RelaySession::Endpoint{&session, 0, false},
                       RelaySession::Endpoint{&session, 0, true},
                       RelaySession::Endpoint{&session, 1, false},
                       RelaySession::Endpoint{&session, 1, true}};
  for (int i = 0; i < 4; ++i) {
    auto& endpoint = session.endpoints[static_cast<std::size_t>(i)];
    RelayLeg& leg = session.legs[static_cast<std::size_t>(endpoint.leg)];
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &endpoint;
    int fd = endpoint.rtcp ? leg.rtcp.get() : leg.rtp.get();
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      int error = errno;
      for (int j = 0; j < i; ++j) {
        auto& done = session.endpoints[static_cast<std::size_t>(j)];
        RelayLeg& l = session.legs[static_cast<std::size_t>(done.leg)];
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, done.rtcp ? l.rtcp.get() : l.rtp.get(), nullptr);
      }
      throw std::system_error(error, std::generic_category(), "epoll_ctl(ADD)");
    }
  }
  session.lastRtpMs = monotonicMs();
  session.workerIndex = sessions_.size();
  sessions_.push_back(&session);
  if (session.pipeline && session.pipeline->transcoding()) ++transcoding_;
  sessionCount_.store(sessions_.size(), std::memory_order_relaxed);
}

void Worker::detach(RelaySession& session) {
  flushDropped(session);
  for (auto& leg : session.legs) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, leg.rtp.get(), nullptr);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, leg.rtcp.get(), nullptr);
  }
  // Swap-remove; events already returned by this epoll_wait round for these sockets are
  // not a concern: detach runs between rounds (from the post queue).
  std::size_t i = session.workerIndex;
  if (i < sessions_.size() && sessions_[i] == &session) {
    if (session.pipeline && session.pipeline->transcoding()) --transcoding_;
    sessions_[i] = sessions_.back();
    sessions_[i]->workerIndex = i;
    sessions_.pop_back();
  }
  sessionCount_.store(sessions_.size(), std::memory_order_relaxed);
}

void Worker::setRemote(RelaySession& session, int legIndex, const RemoteSpec& spec) {
  RelayLeg& leg = session.legs[static_cast<std::size_t>(legIndex)];
  if (leg.spec == spec && (leg.rtpKnown || leg.rtpLatched)) return;  // same SDP: keep the latch
  leg.spec = spec;
  sockaddr_in rtp{};
  sockaddr_in rtcp{};
  // An ICE leg's remote is where the checks came from, not the SDP's default candidate.
  auto iceDecided = [&](std::size_t c) {
    return leg.ice.enabled && (leg.ice.nominated[c] || leg.ice.validatedCount[c] != 0);
  };
  bool haveRtp = !iceDecided(0) && toSockaddr(spec.address, spec.rtpPort, rtp);
  bool haveRtcp = !iceDecided(1) && toSockaddr(spec.rtcpAddress, spec.rtcpPort, rtcp);
  if (haveRtp) {
    leg.rtpRemote = rtp;
    leg.rtpKnown = true;
    leg.rtpLatched = false;
    leg.counters.remote.store(pack(rtp), std::memory_order_relaxed);
  }
  if (haveRtcp) {
    leg.rtcpRemote = rtcp;
    leg.rtcpKnown = true;
    leg.rtcpLatched = false;
  }
  // On hold (0.0.0.0 / port 0) the latched remote, if any, stays: the peer may still send.
}

void Worker::setIce(RelaySession& session, int legIndex, const IceConfig& config) {
  IceLeg& ice = session.legs[static_cast<std::size_t>(legIndex)].ice;
  if (!config.enabled) {
    ice = IceLeg{};  // the latch as it stands goes on as symmetric RTP
    return;
  }
  bool otherAgent = !ice.remoteUfrag.empty() && ice.remoteUfrag != config.remoteUfrag;
  if (ice.localUfrag != config.localUfrag || ice.localPwd != config.localPwd || otherAgent) {
    // ICE restart, the first credentials, or another agent (a fork's final answer after
    // another's early media): checks start over.
    ice.nominated = {};
    ice.validatedCount = {};
  }
  ice.enabled = true;
  ice.localUfrag = config.localUfrag;
  ice.localPwd = config.localPwd;
  ice.remoteUfrag = config.remoteUfrag;
}

void Worker::countIce(IceResult result) {
  prometheus::Counter* counter = totals_.iceChecks[static_cast<std::size_t>(result)];
  if (counter != nullptr) counter->Increment();
}

void Worker::handleStun(const RelaySession::Endpoint& endpoint, const unsigned char* packet, std::size_t length,
                        const sockaddr_in& source) {
  RelaySession& session = *endpoint.session;
  RelayLeg& leg = session.legs[static_cast<std::size_t>(endpoint.leg)];
  IceLeg& ice = leg.ice;
  const std::size_t component = endpoint.rtcp ? 1 : 0;
  std::span<const std::uint8_t> bytes(packet, length);
  stun::ParseResult parsed = stun::parse(bytes);
  if (!parsed.message) {
    countIce(IceResult::Malformed);
    return;
  }
  const stun::Message& m = *parsed.message;
  if (m.fingerprintOffset && !stun::verifyFingerprint(bytes, m)) {
    countIce(IceResult::Malformed);
    return;
  }
  // Indications (keepalives) and responses: nothing to answer (a lite agent sends no
  // requests). Not checks: not counted.
  if (m.method != stun::kBinding || m.cls != stun::Class::Request) return;
  // USERNAME "<our ufrag>:<their ufrag>" (RFC 8445 7.2.2); their part is checked once
  // their SDP told it (their checks may overtake their answer).
  std::string_view user = m.username.value_or(std::string_view());
  std::size_t colon = user.find(':');
  if (colon == std::string_view::npos || user.substr(0, colon) != ice.localUfrag ||
      (!ice.remoteUfrag.empty() && user.substr(colon + 1) != ice.remoteUfrag)) {
    countIce(IceResult::UnknownUser);
    return;
  }
  if (!stun::verifyIntegrity(bytes, m, ice.localPwd)) {
    countIce(IceResult::BadIntegrity);
    return;
  }
  int fd = endpoint.rtcp ? leg.rtcp.get() : leg.rtp.get();
  auto reply = [&](const std::vector<std::uint8_t>& response) {
    ::sendto(fd, response.data(), response.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&source),
             sizeof source);
  };
  if (m.iceControlled) {
    // Both sides controlled: a lite agent cannot take the controlling role (RFC 8445
    // 6.1.1, 7.3.1.1): the full agent must switch.
    countIce(IceResult::RoleConflict);  // counted before the answer leaves, as the latch below
    reply(stun::bindingError(m.transactionId, 487, "Role Conflict", ice.localPwd));
    return;
  }
  if (!m.priority) {
    countIce(IceResult::Malformed);
    reply(stun::bindingError(m.transactionId, 400, "Bad Request", ice.localPwd));  // RFC 8445 7.1.1
    return;
  }
  // The latch moves (and the check is counted) before the answer leaves: whoever sees the
  // answer sees the new remote.
  if (!iceChecked(ice, component, source)) {
    ice.validated[component][ice.validatedCount[component] % IceLeg::kValidated] = source;
    ++ice.validatedCount[component];
  }
  sockaddr_in& remote = endpoint.rtcp ? leg.rtcpRemote : leg.rtpRemote;
  bool& latched = endpoint.rtcp ? leg.rtcpLatched : leg.rtpLatched;
  bool& known = endpoint.rtcp ? leg.rtcpKnown : leg.rtpKnown;
  // The first address to pass a check takes the media until a nomination (RFC 8445 lite:
  // a valid pair may carry media before); a nomination takes it for good.
  bool first = ice.validatedCount[component] == 1 && !ice.nominated[component];
  bool moved = !known || !sameSource(remote, source);
  bool latch = first;
  if (m.useCandidate) {
    latch = true;
    if (!ice.nominated[component] || moved) {
      ice.nominated[component] = true;
      if (totals_.iceNominations != nullptr) totals_.iceNominations->Increment();
      log::get("media")->info("session {}: leg {} ICE nominated {} for {}", session.id,
                              endpoint.leg == 0 ? "A" : "B", addressText(source), endpoint.rtcp ? "RTCP" : "RTP");
    }
  }
  if (latch) {
    remote = source;
    known = true;
    latched = true;
    if (!endpoint.rtcp) leg.counters.remote.store(pack(source), std::memory_order_relaxed);
  }
  stun::Address mapped = stun::Address::v4(ntohl(source.sin_addr.s_addr), ntohs(source.sin_port));
  countIce(IceResult::Ok);
  reply(stun::bindingSuccess(m.transactionId, mapped, ice.localPwd));
}

void Worker::armTimeout(RelaySession& session) {
  if (session.timeoutArmed) return;
  session.timeoutArmed = true;
  session.lastRtpMs = monotonicMs();
}

void Worker::setPipeline(RelaySession& session, std::unique_ptr<MediaPipeline> pipeline) {
  if (pipeline) {
    pipeline->bindCounters(session.legs[0].counters, session.legs[1].counters);
    if (session.pipeline) pipeline->adopt(*session.pipeline);
  }
  std::size_t i = session.workerIndex;
  if (i < sessions_.size() && sessions_[i] == &session) {
    if (session.pipeline && session.pipeline->transcoding()) --transcoding_;
    if (pipeline && pipeline->transcoding()) ++transcoding_;
  }
  session.pipeline = std::move(pipeline);
}

void Worker::loop() {
  std::array<epoll_event, kMaxEvents> events{};
  nowNanos_ = monotonicNanos();
  nowMs_ = static_cast<std::int64_t>(nowNanos_ / 1'000'000);
  lastTickMs_ = nowMs_;
  while (running_.load(std::memory_order_relaxed)) {
    int timeoutMs = kTickMs;
    if (transcoding_ != 0) {
      // The playout tick: epoll's millisecond timeout, rounded up to the next tick.
      std::uint64_t wait = nextPlayoutNanos_ > nowNanos_ ? nextPlayoutNanos_ - nowNanos_ : 0;
      timeoutMs = static_cast<int>(std::min<std::uint64_t>((wait + 999'999) / 1'000'000, kTickMs));
    }
    int n = ::epoll_wait(epoll_.get(), events.data(), kMaxEvents, timeoutMs);
    nowNanos_ = monotonicNanos();
    nowMs_ = static_cast<std::int64_t>(nowNanos_ / 1'000'000);
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      auto* endpoint = static_cast<RelaySession::Endpoint*>(events[static_cast<std::size_t>(i)].data.ptr);
      if (endpoint == nullptr) {
        woken = true;
        continue;
      }
      readSocket(*endpoint);
    }
    if (woken) {
      std::uint64_t count = 0;
      [[maybe_unused]] auto r = ::read(wakeup_.get(), &count, sizeof count);
      // Posted work (attach/detach/setRemote) runs after this round's events: a detach
      // never frees an endpoint that a later event of the same round points at.
      drainPosts();
    }
    if (transcoding_ != 0 && nowNanos_ >= nextPlayoutNanos_) {
      playout(nowNanos_);
      nextPlayoutNanos_ = nowNanos_ + MediaPipeline::kTickNanos;
    }
    if (nowMs_ - lastTickMs_ >= kTickMs) tick(nowMs_);
  }
}

void Worker::playout(std::uint64_t nowNanos) {
  for (RelaySession* session : sessions_) {
    if (!session->pipeline || !session->pipeline->transcoding()) continue;
    session->pipeline->tick(nowNanos, sink_);
    flush(*session);
  }
}

void Worker::flush(RelaySession& session) {
  auto packets = sink_.packets();
  std::size_t count = 0;  // sendMessages_ built so far
  std::array<std::uint8_t, PacketSink::kSlots> legOf{};
  auto send = [&](int fd, std::size_t first, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      int sent = ::sendmmsg(fd, &sendMessages_[first + done], static_cast<unsigned>(n - done), MSG_DONTWAIT);
      if (sent < 0 && errno == EINTR) continue;
      if (sent <= 0) {
        ++done;  // full socket buffer or ICMP unreachable: this one is dropped, as UDP does
        continue;
      }
      for (std::size_t k = first + done; k < first + done + static_cast<std::size_t>(sent); ++k) {
        RelayLeg& out = session.legs[legOf[k]];
        bump(out.counters.packetsOut);
        bump(out.counters.bytesOut, sendMessages_[k].msg_len);
        pendingPackets_[1 - legOf[k]] += 1;
        pendingBytes_[1 - legOf[k]] += sendMessages_[k].msg_len;
      }
      done += static_cast<std::size_t>(sent);
    }
  };
  int runFd = -1;
  std::size_t runStart = 0;
  for (const PacketSink::Packet& packet : packets) {
    RelayLeg& out = session.legs[packet.leg];
    bool known = packet.rtcpSocket ? out.rtcpKnown : out.rtpKnown;
    if (!known) continue;  // the other leg has not answered or sent anything yet
    int fd = packet.rtcpSocket ? out.rtcp.get() : out.rtp.get();
    if (fd != runFd) {
      if (count > runStart) send(runFd, runStart, count - runStart);
      runFd = fd;
      runStart = count;
    }
    sockaddr_in& destination = packet.rtcpSocket ? out.rtcpRemote : out.rtpRemote;
    iovec& iov = sendIovecs_[count];
    iov.iov_base = const_cast<std::uint8_t*>(packet.data);
    iov.iov_len = packet.length;
    mmsghdr& message = sendMessages_[count];
    message = {};
    message.msg_hdr.msg_name = &destination;
    message.msg_hdr.msg_namelen = sizeof destination;
    message.msg_hdr.msg_iov = &iov;
    message.msg_hdr.msg_iovlen = 1;
    legOf[count] = packet.leg;
    ++count;
  }
  if (count > runStart) send(runFd, runStart, count - runStart);
  sink_.clear();
}

void Worker::readSocket(const RelaySession::Endpoint& endpoint) {
  RelayLeg& leg = endpoint.session->legs[static_cast<std::size_t>(endpoint.leg)];
  int fd = endpoint.rtcp ? leg.rtcp.get() : leg.rtp.get();
  for (int batch = 0; batch < kMaxBatchesPerEvent; ++batch) {
    for (auto& message : messages_) {
      message.msg_hdr.msg_namelen = sizeof(sockaddr_in);
      message.msg_hdr.msg_flags = 0;
      message.msg_len = 0;
    }
    int n = ::recvmmsg(fd, messages_.data(), static_cast<unsigned>(kBatch), MSG_DONTWAIT, nullptr);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: nothing (more) to read now
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
      const msghdr& header = messages_[i].msg_hdr;
      if ((header.msg_flags & MSG_TRUNC) != 0) continue;
      if (header.msg_namelen < sizeof(sockaddr_in) || sources_[i].sin_family != AF_INET) continue;
      relay(endpoint, buffers_[i].data(), messages_[i].msg_len, sources_[i]);
    }
    // Before the next recvmmsg reuses the buffers that relayed packets point into.
    flush(*endpoint.session);
    if (static_cast<std::size_t>(n) < kBatch) return;
  }
}

void Worker::relay(const RelaySession::Endpoint& endpoint, unsigned char* packet, std::size_t length,
                   const sockaddr_in& source) {
  RelaySession& session = *endpoint.session;
  RelayLeg& in = session.legs[static_cast<std::size_t>(endpoint.leg)];
  const unsigned char* p = packet;
  // RFC 7983: 0..3 is STUN (RTP and RTCP start with 128..191). Only an ICE leg looks.
  if (in.ice.enabled && length != 0 && p[0] <= 3) {
    handleStun(endpoint, packet, length, source);
    return;
  }
  // RFC 5761 section 4: on a multiplexed port, RTCP packet types 192-223 in byte 1.
  bool rtcp = endpoint.rtcp || (length >= 2 && p[1] >= 192 && p[1] <= 223);

  sockaddr_in& remote = endpoint.rtcp ? in.rtcpRemote : in.rtpRemote;
  bool& latched = endpoint.rtcp ? in.rtcpLatched : in.rtpLatched;
  bool& known = endpoint.rtcp ? in.rtcpKnown : in.rtpKnown;
  const std::size_t component = endpoint.rtcp ? 1 : 0;
  if (in.ice.enabled && (in.ice.nominated[component] || in.ice.validatedCount[component] != 0)) {
    // The checks decided the remote: media never moves it; a strict leg takes media only
    // from sources that passed a check.
    if (in.strict && !iceChecked(in.ice, component, source)) {
      bump(in.counters.strangerDrops);
      return;
    }
  } else if (!latched) {
    remote = source;
    known = true;
    latched = true;
    if (!endpoint.rtcp) in.counters.remote.store(pack(source), std::memory_order_relaxed);
  } else if (in.strict && !sameSource(remote, source)) {
    bump(in.counters.strangerDrops);
    return;
  }

  bump(in.counters.packetsIn);
  bump(in.counters.bytesIn, length);
  if (!session.pipeline && session.holdUntilPipeline) {
    bump(in.counters.payloadDrops);
    return;
  }
  if (session.pipeline) {
    ReceiveResult result = session.pipeline->receive(endpoint.leg, endpoint.rtcp, {packet, kBufferBytes},
                                                     length, nowNanos_, sink_);
    if (result == ReceiveResult::Rtp) {
      session.lastRtpMs = nowMs_;
      if (session.timedOut.load(std::memory_order_relaxed)) {
        session.timedOut.store(false, std::memory_order_relaxed);
      }
    }
    if (sink_.full()) flush(session);  // the batch's earlier packets' buffers are still intact
    return;
  }
  if (!rtcp && length >= 12 && (p[0] >> 6) == 2) {
    session.lastRtpMs = nowMs_;
    if (session.timedOut.load(std::memory_order_relaxed)) {
      session.timedOut.store(false, std::memory_order_relaxed);
    }
    auto seq = static_cast<std::uint16_t>((p[2] << 8) | p[3]);
    std::uint32_t ssrc = (static_cast<std::uint32_t>(p[8]) << 24) |
                         (static_cast<std::uint32_t>(p[9]) << 16) |
                         (static_cast<std::uint32_t>(p[10]) << 8) | p[11];
    if (!in.seqStarted || ssrc != in.ssrc) {
      in.seqStarted = true;
      in.ssrc = ssrc;
      in.maxSeq = seq;
    } else {
      auto delta = static_cast<std::int16_t>(static_cast<std::uint16_t>(seq - in.maxSeq));
      if (delta > 3000 || delta < -3000) {
        in.maxSeq = seq;  // a jump (restarted sender): resynchronise, count nothing
      } else if (delta > 0) {
        if (delta > 1) bump(in.counters.lost, static_cast<std::uint64_t>(delta - 1));
        in.maxSeq = seq;
      } else {
        bump(in.counters.outOfOrder);
        // A late packet was counted lost when the gap opened.
        auto lost = in.counters.lost.load(std::memory_order_relaxed);
        if (delta < 0 && lost > 0) in.counters.lost.store(lost - 1, std::memory_order_relaxed);
      }
    }
  }

  // Same bytes, same socket and remote as ever; queued and sent with the rest of the batch
  // by flush() (sendmmsg: measured ~20 % less worker CPU per packet than a sendto each,
  // bench/media_pipeline_bench.cpp BM_WorkerRelay).
  sink_.emit(packet, length, 1 - endpoint.leg, endpoint.rtcp);
  if (sink_.full()) flush(session);
}

void Worker::tick(std::int64_t nowMs) {
  lastTickMs_ = nowMs;
  // Relay-only pipelines need their tick only for statistics intervals (and relayed RTCP
  // needs none): this coarser tick is enough.
  for (RelaySession* session : sessions_) {
    if (!session->pipeline || session->pipeline->transcoding()) continue;
    session->pipeline->tick(nowNanos_, sink_);
    flush(*session);
  }
  flushTotals();
  for (RelaySession* session : sessions_) {
    flushDropped(*session);
    if (!session->timeoutArmed || session->timedOut.load(std::memory_order_relaxed)) continue;
    if (nowMs - session->lastRtpMs >= static_cast<std::int64_t>(session->timeoutMs)) {
      if (onTimeout_) onTimeout_(*session);
      session->timedOut.store(true, std::memory_order_release);
    }
  }
}

void Worker::flushDropped(RelaySession& session) {
  for (std::size_t leg = 0; leg < session.legs.size(); ++leg) {
    const LegCounters& c = session.legs[leg].counters;
    const std::array<std::uint64_t, 4> now{c.srtpAuthFailures.load(std::memory_order_relaxed),
                                           c.srtpReplays.load(std::memory_order_relaxed),
                                           c.badPackets.load(std::memory_order_relaxed),
                                           c.payloadDrops.load(std::memory_order_relaxed)};
    auto& reported = session.droppedReported[leg];
    for (std::size_t reason = 0; reason < now.size(); ++reason) {
      if (now[reason] > reported[reason] && totals_.dropped[reason] != nullptr) {
        totals_.dropped[reason]->Increment(static_cast<double>(now[reason] - reported[reason]));
      }
      reported[reason] = now[reason];
    }
  }
}

void Worker::flushTotals() {
  if (pendingPackets_[0] != 0) {
    totals_.packetsAtoB.Increment(static_cast<double>(pendingPackets_[0]));
    totals_.bytesAtoB.Increment(static_cast<double>(pendingBytes_[0]));
  }
  if (pendingPackets_[1] != 0) {
    totals_.packetsBtoA.Increment(static_cast<double>(pendingPackets_[1]));
    totals_.bytesBtoA.Increment(static_cast<double>(pendingBytes_[1]));
  }
  pendingPackets_[0] = pendingPackets_[1] = 0;
  pendingBytes_[0] = pendingBytes_[1] = 0;
}

}  // namespace medius::media
