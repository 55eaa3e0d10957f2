// A minimal client of rtpengine's "ng" control protocol (bencoded dictionaries over UDP,
// each datagram "<cookie> <dictionary>"), for the benchmarks that run rtpengine as the
// peer of the media worker (bench/media_load.cpp --peer rtpengine). It speaks only what
// those benchmarks need: offer, answer and delete with string-valued keys, string lists and
// dictionaries of string lists (the `codec` dictionary: transcode, mask, strip).
//
// Thread: one NgClient per thread; calls block until the reply or the timeout.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace medius::bench {

// A bencode value as far as ng replies go: strings, integers, lists and dictionaries.
struct Bencode {
  using List = std::vector<Bencode>;
  using Dict = std::map<std::string, Bencode>;
  std::variant<std::string, std::int64_t, List, Dict> value;

  const std::string* string() const { return std::get_if<std::string>(&value); }
  const Dict* dict() const { return std::get_if<Dict>(&value); }
  // The string at key of a dictionary; "" when absent or not a string.
  std::string stringAt(const std::string& key) const;
};

// A request value: a string, a list of strings, or a dictionary of string lists.
using NgValue = std::variant<std::string, std::vector<std::string>, std::map<std::string, std::vector<std::string>>>;

// Encodes a dictionary of request values (bencode keys are sorted, as required).
std::string encodeDict(const std::map<std::string, NgValue>& dict);

// Parses one bencoded value that spans the whole input; throws std::runtime_error naming
// the offset of the first malformed octet.
Bencode decode(std::string_view text);

class NgClient {
 public:
  // Talks to rtpengine's --listen-ng at 127.0.0.1:port.
  explicit NgClient(std::uint16_t port);
  ~NgClient();
  NgClient(const NgClient&) = delete;
  NgClient& operator=(const NgClient&) = delete;

  using Request = std::map<std::string, NgValue>;
  // Sends the request and returns the reply's dictionary; throws std::runtime_error on a
  // timeout, a malformed reply or "result" other than "ok" (with rtpengine's error-reason).
  // expectedResult: "pong" for a ping.
  Bencode::Dict call(const Request& request, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                     const std::string& expectedResult = "ok");

 private:
  int fd_ = -1;
  sockaddr_in server_{};
  std::uint64_t nextCookie_ = 1;
};

}  // namespace medius::bench
