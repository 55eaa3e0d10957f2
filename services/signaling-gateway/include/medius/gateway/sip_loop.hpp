// SipLoop: the one thread that owns every Sofia-SIP object of the process.
//
// The constructor starts a thread that calls su_init (once per process), creates the
// su_root_t there (a Sofia port belongs to the thread that created it) and runs it.
// Other threads hand work to it with post(); undelivered work is freed by the su_msg
// deinitializer, never run. invoke() runs a function on the loop and waits for it.
//
// Thread: post(), invoke(), isLoopThread() and stop() are thread-safe; root() only on
// the loop thread. Everything that touches Sofia asserts isLoopThread().
#pragma once

#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include <sofia-sip/su_wait.h>

namespace medius::gateway {

class SipLoop {
 public:
  // Starts the loop thread; throws std::runtime_error when Sofia cannot start.
  SipLoop();
  // stop() and join.
  ~SipLoop();
  SipLoop(const SipLoop&) = delete;
  SipLoop& operator=(const SipLoop&) = delete;

  // The loop's root. Loop thread only.
  su_root_t* root() const;

  // Queues `fn` to run on the loop thread. Returns false (and drops fn) once the loop
  // is stopping. Exceptions thrown by fn are logged and swallowed.
  bool post(std::function<void()> fn);

  // Runs `fn` on the loop thread and waits for it; rethrows its exception. Must not be
  // called from the loop thread itself. Throws std::runtime_error if the loop stopped.
  void invoke(const std::function<void()>& fn);

  bool isLoopThread() const;

  // Stops accepting work, breaks the loop, joins the thread. Idempotent; not from the loop.
  void stop();

 private:
  void run(std::promise<void>* started);
  static void deliver(su_root_magic_t* magic, su_msg_r msg, su_msg_arg_t* arg) noexcept;
  static void discard(su_msg_arg_t* arg) noexcept;

  std::mutex mutex_;
  bool accepting_ = false;  // guarded by mutex_
  su_root_t* root_ = nullptr;
  std::thread thread_;
  std::thread::id loopId_;
};

// Routes Sofia's own log (su_log default, nta, tport) into the "sofia" logger and sets
// Sofia's log level from that logger's level. Call once, before creating the agent.
void redirectSofiaLogs();

}  // namespace medius::gateway
