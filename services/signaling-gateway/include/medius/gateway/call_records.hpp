// What the gateway tells operators about calls: the live directory (GatewayAdmin.ListCalls,
// medctl calls, per-trunk active counts) and one CDR line per finished call.
//
// CallDirectory: the SIP loop publishes a call's CallInfo when its state changes (never
// per packet); the admin service reads snapshots from gRPC threads. It also counts active
// calls per trunk (a call counts on the trunk of every live fork toward it, and on its
// source trunk), which the B2BUA checks against the trunk's max_concurrent_calls.
//
// CdrWriter: one JSON object per line (cdrJson), appended to the configured file by a
// background thread, so the SIP loop never waits on the disk. An empty path disables it.
// Write errors are logged (once per burst) and counted, never fatal. The file is opened
// with O_APPEND|O_CREAT (0640) and reopened by reopen() (SIGHUP, for logrotate).
//
// Thread: both classes are safe from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "medius/v1/gateway.pb.h"
#include "medius/v1/media.pb.h"

namespace prometheus {
class Counter;
}

namespace medius::gateway {

// One attempt toward one target of a call.
struct ForkAttempt {
  std::string target;     // Request-URI sent
  std::string trunk;      // "" for a user's device
  int status = 0;         // final SIP status received (0: cancelled/none, 408 local timeout)
  std::string reason;     // e.g. "answered", "cancelled", "503 Service Unavailable", "timeout"
};

// The media of a call as its worker reported it when the session was deleted
// (MediaTranscoder.DeleteSession's SessionStats).
struct MediaQuality {
  struct Leg {
    std::string codec;
    bool srtp = false;
    std::uint64_t packetsIn = 0;
    std::uint64_t packetsOut = 0;
    std::uint64_t packetsLost = 0;
    double lossPercent = 0;
    double jitterMs = 0;
    double rttMs = 0;   // 0 when RTCP gave none
    double mos = 0;     // 0 when the leg received no audio
  };
  bool transcoding = false;
  double mos = 0;       // the call's: the worse leg's
  Leg legA;             // the caller's side
  Leg legB;             // the called side
};
MediaQuality mediaQualityOf(const v1::SessionStats& stats);

// One finished call. Times are Unix epoch milliseconds; answeredAtMs is 0 when unanswered.
struct CallRecord {
  std::string id;                 // the gateway's call id (also the media session id)
  std::string gatewayId;
  std::string direction;          // "outbound", "inbound", "internal" or "transit"
  std::string callerDialled;      // From user part as received
  std::string callerAuthenticated;  // the AOR the caller authenticated as ("" if none)
  std::string calleeDialled;      // Request-URI user part as received
  std::string callerNormalized;   // from the route plan ("" when routing was not reached)
  std::string calleeNormalized;
  std::string sourceTrunk;        // "" when the call came from the internal side
  std::string route;              // route(s) of the plan's groups, comma-separated
  std::string trunk;              // trunk of the answering fork ("" when none or a device)
  std::string answeredBy;         // Request-URI of the answering fork
  std::vector<ForkAttempt> forks; // in the order they were sent
  std::int64_t startedAtMs = 0;
  std::int64_t answeredAtMs = 0;
  std::int64_t endedAtMs = 0;
  int finalStatus = 0;            // the final status sent to the caller (200 when answered)
  std::string endCause;           // see docs/calls.md: "caller-bye", "callee-bye",
                                  // "caller-cancel", "media-timeout", "no-route", ...
  std::string mediaWorker;        // "host:port" ("" when none)
  // nullopt when there was no media session or its worker did not answer the deletion.
  std::optional<MediaQuality> media;
};

// The CDR line (no trailing newline): a JSON object with the keys of docs/calls.md.
std::string cdrJson(const CallRecord& record);

class CallDirectory {
 public:
  void publish(const v1::CallInfo& call);   // insert or replace by call.id()
  void remove(const std::string& id);
  v1::ListCallsResponse list() const;       // sorted by started_at_ms, then id
  std::size_t size() const;
  // Per-trunk active call counters (SIP loop writes, anyone reads).
  void addTrunkCall(const std::string& trunk);
  void removeTrunkCall(const std::string& trunk);
  std::uint32_t trunkCalls(const std::string& trunk) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, v1::CallInfo> calls_;
  std::map<std::string, std::uint32_t> trunkCalls_;
};

class CdrWriter {
 public:
  // "" disables; throws std::runtime_error naming the path when it cannot be opened.
  // `writeErrors` (optional, must outlive the writer): incremented once per line that could
  // not be written (medius_gateway_cdr_write_errors_total).
  explicit CdrWriter(std::string path, prometheus::Counter* writeErrors = nullptr);
  ~CdrWriter();                          // writes what is queued, then stops
  CdrWriter(const CdrWriter&) = delete;
  CdrWriter& operator=(const CdrWriter&) = delete;

  void write(const CallRecord& record);  // queues one line; never blocks on I/O
  void reopen();                         // after log rotation
  void flush();                          // waits until the queue is written (tests, shutdown)
  bool enabled() const { return !path_.empty(); }

 private:
  void run();
  void reopenFile();                     // writer thread
  void writeBatch(std::string data);     // writer thread
  std::string path_;
  prometheus::Counter* writeErrors_ = nullptr;
  int fd_ = -1;                          // writer thread after construction
  bool failing_ = false;                 // writer thread: an error was logged, not yet cleared
  bool torn_ = false;                    // writer thread: the last write ended mid-line
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable drained_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  bool reopen_ = false;
  bool busy_ = false;
  std::thread thread_;
};

}  // namespace medius::gateway
