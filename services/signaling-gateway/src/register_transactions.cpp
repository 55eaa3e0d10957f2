#include "medius/gateway/register_transactions.hpp"

#include <utility>

namespace medius::gateway {

RegisterTransactions::RegisterTransactions(const Clock& clock)
    : RegisterTransactions(clock, Settings{}) {}

RegisterTransactions::RegisterTransactions(const Clock& clock, Settings settings)
    : clock_(clock), settings_(settings) {}

std::string RegisterTransactions::keyOf(const sip_t* sip) {
  if (!sip || !sip->sip_via || !sip->sip_call_id || !sip->sip_call_id->i_id || !sip->sip_cseq) {
    return {};
  }
  const sip_via_t* via = sip->sip_via;
  std::string key;
  key.reserve(128);
  key += via->v_branch ? via->v_branch : "";
  key += '\n';
  key += via->v_host ? via->v_host : "";
  key += ':';
  key += via->v_port ? via->v_port : "";
  key += '\n';
  key += sip->sip_call_id->i_id;
  key += '\n';
  key += std::to_string(sip->sip_cseq->cs_seq);
  return key;
}

void RegisterTransactions::expire() {
  const std::int64_t now = clock_.nowMs();
  while (!expiries_.empty() &&
         (expiries_.front().atMs <= now || expiries_.size() > settings_.maxAnswered)) {
    auto it = entries_.find(expiries_.front().key);
    // An entry answered again (a new generation) or pending again is not this record's.
    if (it != entries_.end() && !it->second.pending &&
        it->second.generation == expiries_.front().generation) {
      entries_.erase(it);
    }
    expiries_.pop_front();
  }
}

RegisterTransactions::Arrival RegisterTransactions::arrive(const std::string& key) {
  expire();
  auto [it, inserted] = entries_.try_emplace(key);
  if (inserted) {
    ++pendingCount_;
    return {Seen::New, nullptr};
  }
  if (it->second.pending) {
    ++absorbed_;
    return {Seen::Pending, nullptr};
  }
  ++replayed_;
  return {Seen::Answered, &it->second.reply};
}

void RegisterTransactions::answered(const std::string& key, SipReply reply, bool reliable) {
  auto it = entries_.find(key);
  if (it == entries_.end() || !it->second.pending) return;
  --pendingCount_;
  if (reliable) {
    entries_.erase(it);
    return;
  }
  Entry& e = it->second;
  e.pending = false;
  e.generation = nextGeneration_++;
  e.reply = std::move(reply);
  expiries_.push_back(Expiry{clock_.nowMs() + settings_.windowMs, e.generation, key});
  expire();
}

void RegisterTransactions::forget(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end() || !it->second.pending) return;
  --pendingCount_;
  entries_.erase(it);
}

}  // namespace medius::gateway
