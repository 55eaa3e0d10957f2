#include "ng_client.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace medius::bench {

namespace {

void appendString(std::string& out, std::string_view s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Bencode value(int depth = 0) {
    if (depth > 32) fail("nesting too deep");
    if (pos_ >= text_.size()) fail("truncated");
    char c = text_[pos_];
    if (c == 'i') {
      ++pos_;
      auto end = text_.find('e', pos_);
      if (end == std::string_view::npos || end == pos_) fail("unterminated integer");
      std::int64_t v = 0;
      try {
        v = std::stoll(std::string(text_.substr(pos_, end - pos_)));
      } catch (const std::exception&) {
        fail("bad integer");
      }
      pos_ = end + 1;
      return Bencode{v};
    }
    if (c == 'l' || c == 'd') {
      ++pos_;
      Bencode::List list;
      Bencode::Dict dict;
      while (pos_ < text_.size() && text_[pos_] != 'e') {
        if (c == 'l') {
          list.push_back(value(depth + 1));
        } else {
          std::string key = string();
          dict.emplace(std::move(key), value(depth + 1));
        }
      }
      if (pos_ >= text_.size()) fail("unterminated list or dictionary");
      ++pos_;
      if (c == 'l') return Bencode{std::move(list)};
      return Bencode{std::move(dict)};
    }
    return Bencode{string()};
  }

  bool atEnd() const { return pos_ == text_.size(); }
  std::size_t position() const { return pos_; }

 private:
  std::string string() {
    auto colon = text_.find(':', pos_);
    if (colon == std::string_view::npos || colon == pos_ || colon - pos_ > 9) fail("bad string length");
    std::size_t length = 0;
    for (std::size_t i = pos_; i < colon; ++i) {
      if (text_[i] < '0' || text_[i] > '9') fail("bad string length");
      length = length * 10 + static_cast<std::size_t>(text_[i] - '0');
    }
    if (text_.size() - (colon + 1) < length) fail("string runs past the end");
    std::string s(text_.substr(colon + 1, length));
    pos_ = colon + 1 + length;
    return s;
  }

  [[noreturn]] void fail(const char* what) const {
    throw std::runtime_error("bencode: " + std::string(what) + " at offset " + std::to_string(pos_));
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string Bencode::stringAt(const std::string& key) const {
  const Dict* d = dict();
  if (!d) return "";
  auto it = d->find(key);
  if (it == d->end() || !it->second.string()) return "";
  return *it->second.string();
}

namespace {

void appendList(std::string& out, const std::vector<std::string>& list) {
  out += 'l';
  for (const auto& item : list) appendString(out, item);
  out += 'e';
}

}  // namespace

std::string encodeDict(const std::map<std::string, NgValue>& dict) {
  std::string out = "d";
  for (const auto& [key, value] : dict) {
    appendString(out, key);
    if (const auto* s = std::get_if<std::string>(&value)) {
      appendString(out, *s);
    } else if (const auto* list = std::get_if<std::vector<std::string>>(&value)) {
      appendList(out, *list);
    } else {
      out += 'd';
      for (const auto& [inner, items] : std::get<std::map<std::string, std::vector<std::string>>>(value)) {
        appendString(out, inner);
        appendList(out, items);
      }
      out += 'e';
    }
  }
  out += 'e';
  return out;
}

Bencode decode(std::string_view text) {
  Parser parser(text);
  Bencode v = parser.value();
  if (!parser.atEnd()) throw std::runtime_error("bencode: trailing data at offset " + std::to_string(parser.position()));
  return v;
}

NgClient::NgClient(std::uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("ng socket: " + std::string(std::strerror(errno)));
  server_.sin_family = AF_INET;
  server_.sin_port = htons(port);
  server_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

NgClient::~NgClient() {
  if (fd_ >= 0) ::close(fd_);
}

Bencode::Dict NgClient::call(const Request& request, std::chrono::milliseconds timeout,
                             const std::string& expectedResult) {
  const std::string cookie = "c" + std::to_string(nextCookie_++);
  const std::string datagram = cookie + " " + encodeDict(request);
  if (::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&server_),
               sizeof server_) < 0) {
    throw std::runtime_error("ng send: " + std::string(std::strerror(errno)));
  }
  std::array<char, 65536> buffer{};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("ng: no reply from rtpengine within the timeout");
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
    if (n <= 0) continue;
    std::string_view reply(buffer.data(), static_cast<std::size_t>(n));
    auto space = reply.find(' ');
    if (space == std::string_view::npos || reply.substr(0, space) != cookie) continue;  // a stale reply
    Bencode parsed = decode(reply.substr(space + 1));
    const Bencode::Dict* dict = parsed.dict();
    if (!dict) throw std::runtime_error("ng: the reply is not a dictionary");
    std::string result = parsed.stringAt("result");
    if (result != expectedResult) {
      throw std::runtime_error("ng " + std::string(request.count("command") ? std::get<std::string>(request.at("command")) : "") +
                               ": result '" + result + "': " + parsed.stringAt("error-reason"));
    }
    return *dict;
  }
}

}  // namespace medius::bench
