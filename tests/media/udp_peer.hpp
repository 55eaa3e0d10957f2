// A UDP socket on 127.0.0.1 (an ephemeral port) playing one media peer in the in-process
// relay tests: sends to a worker port, receives what the worker sends it.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace medius::media::test {

class UdpPeer {
 public:
  struct Received {
    std::vector<std::uint8_t> data;
    std::uint16_t fromPort = 0;
  };

  UdpPeer() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~UdpPeer() { ::close(fd_); }
  UdpPeer(const UdpPeer&) = delete;
  UdpPeer& operator=(const UdpPeer&) = delete;

  std::uint16_t port() const { return port_; }

  void sendTo(std::uint16_t port, const std::vector<std::uint8_t>& data) const {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a),
              static_cast<ssize_t>(data.size()));
  }

  std::optional<Received> receive(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) const {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    Received r;
    r.data.resize(4096);
    sockaddr_in from{};
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(fd_, r.data.data(), r.data.size(), 0,
                           reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return std::nullopt;
    r.data.resize(static_cast<std::size_t>(n));
    r.fromPort = ntohs(from.sin_port);
    return r;
  }

  // The payloads of everything queued now.
  std::vector<std::vector<std::uint8_t>> drain() const {
    std::vector<std::vector<std::uint8_t>> all;
    while (auto r = receive(std::chrono::milliseconds(0))) all.push_back(std::move(r->data));
    return all;
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace medius::media::test
