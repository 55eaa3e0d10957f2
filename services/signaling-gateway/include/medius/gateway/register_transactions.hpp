// RegisterTransactions: what nta's server transactions did for REGISTER (RFC 3261 17.2.2:
// absorb a retransmission while the request is being processed, answer it with the same
// final response for timer J afterwards), for a small fraction of their memory.
//
// Why: a REGISTER waits for the registrar (a gRPC round trip), and an nta server
// transaction then holds the parsed request, its text and the response for timer J
// (64*T1 = 32 s on UDP), about 8.5 KB each: 25,000 of them, some 220 MB, at 400
// registrations/s (docs/performance.md). The gateway now answers REGISTER without an nta
// transaction (nta_msg_treply, like Kamailio's `sl`) and keeps only this table: the
// transaction's key while the registrar works, then the final answer (status, phrase,
// headers) for the rest of timer J on UDP, nothing on TCP/TLS (timer J is 0 there:
// a reliable transport carries no retransmission).
//
// Keys are made by keyOf(): the top Via's branch and sent-by, Call-ID and CSeq number
// (RFC 3261 17.2.3; Call-ID and CSeq also cover RFC 2543 clients without a magic-cookie
// branch). Answered entries expire in arrival order; at most `maxAnswered` are kept (the
// oldest go first; a retransmission of one forgotten early is processed again, which the
// registrar answers as it would any REGISTER).
//
// Thread: one thread (the SIP loop). Time comes from an injectable Clock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include <sofia-sip/sip.h>

#include "medius/common/clock.hpp"
#include "medius/gateway/register_request.hpp"

namespace medius::gateway {

class RegisterTransactions {
 public:
  struct Settings {
    std::int64_t windowMs = 32000;    // timer J on UDP: 64 * T1 (500 ms)
    std::size_t maxAnswered = 200000;  // answers kept for retransmissions, at most
  };

  enum class Seen {
    New,       // first sight: now pending
    Pending,   // a retransmission while the registrar works: drop it, unanswered
    Answered,  // a retransmission of an answered one: send `reply` again
  };
  struct Arrival {
    Seen seen = Seen::New;
    const SipReply* reply = nullptr;  // Answered only; valid until the next call
  };

  explicit RegisterTransactions(const Clock& clock);
  RegisterTransactions(const Clock& clock, Settings settings);

  // The transaction key of a request, "" when it lacks a Via, Call-ID or CSeq.
  static std::string keyOf(const sip_t* sip);

  // A REGISTER arrived (key from keyOf, not empty).
  Arrival arrive(const std::string& key);
  // Its final answer was sent: kept for retransmissions on an unreliable transport,
  // forgotten at once on a reliable one.
  void answered(const std::string& key, SipReply reply, bool reliable);
  // A pending one is given up without an answer to remember (the gateway stops).
  void forget(const std::string& key);

  std::size_t pending() const { return pendingCount_; }
  std::size_t answeredKept() const { return entries_.size() - pendingCount_; }
  // Retransmissions absorbed (Pending) and answered again (Answered), since start.
  std::uint64_t absorbed() const { return absorbed_; }
  std::uint64_t replayed() const { return replayed_; }

 private:
  struct Entry {
    bool pending = true;
    std::uint64_t generation = 0;  // answered: which expiry record is this entry's
    SipReply reply;
  };
  struct Expiry {
    std::int64_t atMs;
    std::uint64_t generation;
    std::string key;
  };
  void expire();

  const Clock& clock_;
  Settings settings_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<Expiry> expiries_;  // answered entries, in expiry order (one window for all)
  std::size_t pendingCount_ = 0;
  std::uint64_t nextGeneration_ = 1;
  std::uint64_t absorbed_ = 0;
  std::uint64_t replayed_ = 0;
};

}  // namespace medius::gateway
