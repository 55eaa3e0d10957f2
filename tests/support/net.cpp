#include "net.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <stdexcept>

namespace medius::testing {

namespace {

bool canBind(int type, std::uint16_t port) {
  int fd = ::socket(AF_INET, type, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

std::uint16_t freeLoopbackPort() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> pick(20000, 31999);
  for (int attempt = 0; attempt < 500; ++attempt) {
    auto port = static_cast<std::uint16_t>(pick(rng));
    if (canBind(SOCK_STREAM, port) && canBind(SOCK_DGRAM, port)) return port;
  }
  throw std::runtime_error("no free loopback port");
}

}  // namespace medius::testing
