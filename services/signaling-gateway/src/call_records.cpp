#include "medius/gateway/call_records.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

#include <cmath>

#include <nlohmann/json.hpp>
#include <prometheus/counter.h>

#include "medius/common/logging.hpp"

namespace medius::gateway {

namespace {

// "2026-11-26T10:16:35.123Z"; null for 0 (not set).
nlohmann::ordered_json isoTime(std::int64_t ms) {
  if (ms <= 0) return nullptr;
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[96];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return std::string(buffer);
}

int openCdr(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

}  // namespace

MediaQuality mediaQualityOf(const v1::SessionStats& stats) {
  auto leg = [](const v1::LegStats& l) {
    MediaQuality::Leg out;
    out.codec = l.codec();
    out.srtp = l.srtp();
    out.packetsIn = l.packets_in();
    out.packetsOut = l.packets_out();
    out.packetsLost = l.packets_lost();
    // Two decimals are plenty for a record, and keep the line short.
    auto round2 = [](double v) { return std::round(v * 100.0) / 100.0; };
    out.lossPercent = round2(l.loss_percent());
    out.jitterMs = round2(l.jitter_ms());
    out.rttMs = round2(l.rtt_ms());
    out.mos = round2(l.mos());
    return out;
  };
  MediaQuality q;
  q.transcoding = stats.transcoding();
  q.mos = std::round(stats.mos() * 100.0) / 100.0;
  q.legA = leg(stats.leg_a());
  q.legB = leg(stats.leg_b());
  return q;
}

std::string cdrJson(const CallRecord& r) {
  nlohmann::ordered_json forks = nlohmann::ordered_json::array();
  for (const auto& fork : r.forks) {
    forks.push_back({{"target", fork.target},
                     {"trunk", fork.trunk},
                     {"status", fork.status},
                     {"reason", fork.reason}});
  }
  const double duration =
      r.answeredAtMs > 0 ? static_cast<double>(std::max<std::int64_t>(0, r.endedAtMs - r.answeredAtMs)) / 1000.0
                         : 0.0;
  nlohmann::ordered_json j;
  j["id"] = r.id;
  j["gateway_id"] = r.gatewayId;
  j["direction"] = r.direction;
  j["caller"] = {{"dialled", r.callerDialled},
                 {"normalized", r.callerNormalized},
                 {"authenticated", r.callerAuthenticated}};
  j["callee"] = {{"dialled", r.calleeDialled}, {"normalized", r.calleeNormalized}};
  j["source_trunk"] = r.sourceTrunk;
  j["route"] = r.route;
  j["trunk"] = r.trunk;
  j["answered_by"] = r.answeredBy;
  j["forks"] = std::move(forks);
  j["started_at"] = isoTime(r.startedAtMs);
  j["answered_at"] = isoTime(r.answeredAtMs);
  j["ended_at"] = isoTime(r.endedAtMs);
  j["duration_s"] = duration;
  j["final_status"] = r.finalStatus;
  j["end_cause"] = r.endCause;
  j["media_worker"] = r.mediaWorker;
  if (r.media) {
    auto leg = [](const MediaQuality::Leg& l) {
      return nlohmann::ordered_json{{"codec", l.codec},
                                    {"srtp", l.srtp},
                                    {"packets_in", l.packetsIn},
                                    {"packets_out", l.packetsOut},
                                    {"packets_lost", l.packetsLost},
                                    {"loss_percent", l.lossPercent},
                                    {"jitter_ms", l.jitterMs},
                                    {"rtt_ms", l.rttMs},
                                    {"mos", l.mos}};
    };
    j["media"] = {{"transcoding", r.media->transcoding},
                  {"mos", r.media->mos},
                  {"leg_a", leg(r.media->legA)},
                  {"leg_b", leg(r.media->legB)}};
  } else {
    j["media"] = nullptr;
  }
  // Compact (one line: control characters, newlines included, are escaped); bytes that are
  // not UTF-8 become U+FFFD instead of throwing, so a hostile From never loses the record.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// --- CallDirectory ---

void CallDirectory::publish(const v1::CallInfo& call) {
  std::lock_guard lock(mutex_);
  calls_[call.id()] = call;
}

void CallDirectory::remove(const std::string& id) {
  std::lock_guard lock(mutex_);
  calls_.erase(id);
}

v1::ListCallsResponse CallDirectory::list() const {
  std::vector<const v1::CallInfo*> sorted;
  v1::ListCallsResponse response;
  std::lock_guard lock(mutex_);
  sorted.reserve(calls_.size());
  for (const auto& [id, call] : calls_) sorted.push_back(&call);
  // calls_ is ordered by id, so a stable sort by start time keeps ids in order on ties.
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return a->started_at_ms() < b->started_at_ms();
  });
  response.mutable_calls()->Reserve(static_cast<int>(sorted.size()));
  for (const auto* call : sorted) *response.add_calls() = *call;
  return response;
}

std::size_t CallDirectory::size() const {
  std::lock_guard lock(mutex_);
  return calls_.size();
}

void CallDirectory::addTrunkCall(const std::string& trunk) {
  std::lock_guard lock(mutex_);
  ++trunkCalls_[trunk];
}

void CallDirectory::removeTrunkCall(const std::string& trunk) {
  std::lock_guard lock(mutex_);
  auto it = trunkCalls_.find(trunk);
  if (it == trunkCalls_.end()) return;  // unbalanced remove: never below zero
  if (--it->second == 0) trunkCalls_.erase(it);
}

std::uint32_t CallDirectory::trunkCalls(const std::string& trunk) const {
  std::lock_guard lock(mutex_);
  auto it = trunkCalls_.find(trunk);
  return it == trunkCalls_.end() ? 0 : it->second;
}

// --- CdrWriter ---

CdrWriter::CdrWriter(std::string path, prometheus::Counter* writeErrors)
    : path_(std::move(path)), writeErrors_(writeErrors) {
  if (path_.empty()) return;
  fd_ = openCdr(path_);
  if (fd_ < 0) {
    throw std::runtime_error("cannot open the CDR file " + path_ + ": " + std::strerror(errno));
  }
  thread_ = std::thread([this] { run(); });
}

CdrWriter::~CdrWriter() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  if (fd_ >= 0) ::close(fd_);
}

void CdrWriter::write(const CallRecord& record) {
  if (!enabled()) return;
  std::string line = cdrJson(record);
  line += '\n';
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(line));
  }
  wake_.notify_one();
}

void CdrWriter::reopen() {
  if (!enabled()) return;
  {
    std::lock_guard lock(mutex_);
    reopen_ = true;
  }
  wake_.notify_one();
}

void CdrWriter::flush() {
  if (!enabled()) return;
  std::unique_lock lock(mutex_);
  drained_.wait(lock, [this] { return queue_.empty() && !busy_ && !reopen_; });
}

void CdrWriter::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || reopen_ || !queue_.empty(); });
    const bool reopen = reopen_;
    std::deque<std::string> batch;
    batch.swap(queue_);
    const bool stopping = stopping_;
    busy_ = true;
    lock.unlock();

    if (reopen) reopenFile();
    if (!batch.empty()) {
      std::string data;
      for (const auto& line : batch) data += line;
      writeBatch(std::move(data));
    }

    lock.lock();
    busy_ = false;
    if (reopen) reopen_ = false;
    if (queue_.empty() && !reopen_) drained_.notify_all();
    if (stopping && queue_.empty()) return;
  }
}

void CdrWriter::reopenFile() {
  const int fd = openCdr(path_);
  if (fd < 0) {
    // Keep writing to the old file: a record in the rotated file beats a lost one.
    log::get("cdr")->error("cannot reopen the CDR file {}: {} (still writing to the old one)",
                           path_, std::strerror(errno));
    return;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  torn_ = false;
}

void CdrWriter::writeBatch(std::string data) {
  if (torn_) data.insert(data.begin(), '\n');
  torn_ = false;
  std::size_t done = 0;
  int error = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      break;
    }
    if (n == 0) {
      error = EIO;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  if (error == 0) {
    if (failing_) log::get("cdr")->info("CDR file {} is writable again", path_);
    failing_ = false;
    return;
  }
  // Lines not (completely) written: those whose newline is at or after the failure point.
  const auto lost = static_cast<std::size_t>(
      std::count(data.begin() + static_cast<std::ptrdiff_t>(done), data.end(), '\n'));
  // A torn line stays torn, but the next record starts on a line of its own.
  if (done > 0 && data[done - 1] != '\n') torn_ = true;
  if (writeErrors_) writeErrors_->Increment(static_cast<double>(lost));
  if (!failing_) {
    log::get("cdr")->error("cannot write to the CDR file {}: {} ({} record(s) lost; further "
                           "errors are counted, not logged, until a write succeeds)",
                           path_, std::strerror(error), lost);
  }
  failing_ = true;
}

}  // namespace medius::gateway
