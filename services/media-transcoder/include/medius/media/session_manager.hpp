// Media sessions: creation (ports, sockets, worker), SDP offer/answer rewriting, stats,
// deletion, drain, and the media-timeout events. The gRPC service is a thin adapter.
//
// Life of a session: create() parses leg A's offer, books two port pairs, binds four
// sockets, pins the session to the least loaded worker and returns the offer for leg B;
// update() with new_peer makes an offer to a new peer of a leg (a blind transfer's target,
// Negotiator::retarget) and keeps the o= line and strictness it will need. update()
// otherwise applies an answer or re-offer from one leg (its remote moves, latching
// re-arms when the address changed) and returns the SDP for the other leg, whose local
// port never changes; the first final answer (is_answer, not provisional) starts the media
// timeout, so a call may ring in silence for as long as it likes; remove() detaches the sockets on the worker, closes them and
// returns the ports.
//
// Orphans: only the owning gateway deletes a session (remove()); the media timeout only
// tells it. A session nobody will delete is deleted by reapOrphans() (the OrphanSweeper
// calls it) like remove() does, once orphan_grace_ms passed since either
//  - owner_gone: the last WatchEvents stream of its gateway_id ended (a crashed gateway;
//    EventHub::goneOwners) and none came back. A gateway_id that never watched is
//    never taken for gone.
//  - timeout_unhandled: its media timeout fired and RTP did not resume (the owner is
//    alive but does not know the session, or did not act).
//
// Ownership: owns the workers, the port pool and every session. Thread: thread-safe
// (control calls from gRPC threads; one mutex for the table and one per session, never
// taken on the packet path).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "medius/common/clock.hpp"
#include "medius/media/config.hpp"
#include "medius/media/event_hub.hpp"
#include "medius/media/metrics.hpp"
#include "medius/media/port_pool.hpp"
#include "medius/media/relay.hpp"
#include "medius/media/sdp.hpp"
#include "medius/v1/media.pb.h"

namespace medius::media {

// A refused control request; the service maps `code` to a gRPC status.
class MediaError : public std::runtime_error {
 public:
  enum class Code { InvalidArgument, NotFound, AlreadyExists, ResourceExhausted, Unavailable, FailedPrecondition };
  MediaError(Code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  Code code() const { return code_; }

 private:
  Code code_;
};

class SessionManager {
 public:
  // Starts config.workers relay workers. `clock` (borrowed) times sessions, the gone
  // owners and the media timeouts for reapOrphans().
  SessionManager(const MediaConfig& config, MediaMetrics& metrics,
                 const Clock& clock = SystemClock::instance());
  ~SessionManager();  // shutdown()
  SessionManager(const SessionManager&) = delete;
  SessionManager& operator=(const SessionManager&) = delete;

  // All throw MediaError.
  medius::v1::CreateSessionResponse create(const medius::v1::CreateSessionRequest& request);
  medius::v1::UpdateSessionResponse update(const medius::v1::UpdateSessionRequest& request);
  medius::v1::SessionStats remove(const std::string& sessionId);
  medius::v1::SessionStats stats(const std::string& sessionId) const;
  medius::v1::ListSessionsResponse list() const;

  // New sessions are refused (UNAVAILABLE) from now on; returns the sessions remaining.
  std::uint32_t drain();
  bool draining() const { return draining_.load(); }

  EventHub& events() { return events_; }
  std::size_t sessionCount() const;

  // Deletes the orphaned sessions (see the top of this file): ports released, load and
  // gauges updated, stats observed, KIND_SESSION_DELETED published, a log line per session
  // and medius_media_sessions_orphaned_total{reason}. Returns how many, per reason.
  struct Reaped {
    std::size_t ownerGone = 0;
    std::size_t timeoutUnhandled = 0;
  };
  Reaped reapOrphans();

  // Deletes every session and stops the workers. Idempotent.
  void shutdown();

 private:
  struct Session;
  medius::v1::UpdateSessionResponse offerToNewPeer(Session& session,
                                                   const medius::v1::UpdateSessionRequest& request);

  std::shared_ptr<Session> find(const std::string& sessionId) const;
  medius::v1::SessionStats statsOf(const Session& session) const;
  void onTimeout(RelaySession& relay);
  void destroy(Session& session);
  // destroy(), then the final stats observed and KIND_SESSION_DELETED published; the
  // session is out of the table and its mutex held.
  medius::v1::SessionStats retire(Session& session);
  void updatePoolGauge();

  const MediaConfig& config_;
  MediaMetrics& metrics_;
  const Clock& clock_;
  PortPool pool_;
  // config.loadLimit, or 80 % of each worker's core when it is 0.
  const double loadLimit_;
  EventHub events_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> draining_{false};
  std::atomic<std::uint64_t> nextOrigin_;

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Session>, std::less<>> sessions_;
  // Sessions being created count against max_sessions before they are in the table.
  std::size_t reserved_ = 0;
  // Sum of the sessions' load (percent of one core) and how many transcode.
  double load_ = 0;
  std::int64_t transcoding_ = 0;
  bool stopped_ = false;
};

}  // namespace medius::media
