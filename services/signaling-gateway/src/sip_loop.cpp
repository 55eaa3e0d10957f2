#include "medius/gateway/sip_loop.hpp"

#include <cassert>
#include <exception>
#include <stdexcept>

#include "medius/common/logging.hpp"

namespace medius::gateway {

namespace {

struct Task {
  std::function<void()> fn;
};

// su_init() is per process; the first loop does it and nobody undoes it (su_deinit at
// exit would race other loops in tests).
void initSofiaOnce() {
  static std::once_flag once;
  static int result = 0;
  std::call_once(once, [] { result = su_init(); });
  if (result != 0) throw std::runtime_error("su_init failed");
}

}  // namespace

SipLoop::SipLoop() {
  std::promise<void> started;
  auto future = started.get_future();
  thread_ = std::thread([this, &started] { run(&started); });
  try {
    future.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

SipLoop::~SipLoop() { stop(); }

void SipLoop::run(std::promise<void>* started) {
  try {
    initSofiaOnce();
    // The root must be created on the thread that runs it: the port records its owner.
    root_ = su_root_create(nullptr);
    if (!root_) throw std::runtime_error("su_root_create failed");
  } catch (...) {
    started->set_exception(std::current_exception());
    return;
  }
  {
    std::lock_guard lock(mutex_);
    loopId_ = std::this_thread::get_id();
    accepting_ = true;
  }
  started->set_value();
  su_root_run(root_);
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
  }
  // Run what was posted before stop() (one step delivers the whole queue); nothing new
  // can arrive since accepting_ is false.
  su_root_step(root_, 0);
  su_root_destroy(root_);
  root_ = nullptr;
}

su_root_t* SipLoop::root() const {
  assert(isLoopThread());
  return root_;
}

bool SipLoop::isLoopThread() const { return std::this_thread::get_id() == loopId_; }

bool SipLoop::post(std::function<void()> fn) {
  std::lock_guard lock(mutex_);
  if (!accepting_) return false;
  su_msg_r msg = SU_MSG_R_INIT;
  if (su_msg_create(msg, su_root_task(root_), su_task_null, &SipLoop::deliver,
                    sizeof(Task*)) != 0) {
    return false;
  }
  auto* slot = static_cast<Task**>(static_cast<void*>(su_msg_data(msg)));
  *slot = new Task{std::move(fn)};
  su_msg_deinitializer(msg, &SipLoop::discard);
  if (su_msg_send(msg) != 0) {
    su_msg_destroy(msg);  // runs discard, which frees the task
    return false;
  }
  return true;
}

void SipLoop::deliver(su_root_magic_t*, su_msg_r, su_msg_arg_t* arg) noexcept {
  auto* slot = static_cast<Task**>(static_cast<void*>(arg));
  Task* task = *slot;
  *slot = nullptr;  // the deinitializer runs after delivery too: leave it nothing to free
  if (!task) return;
  try {
    task->fn();
  } catch (const std::exception& e) {
    log::get("sip")->error("task on the SIP loop threw: {}", e.what());
  } catch (...) {
    log::get("sip")->error("task on the SIP loop threw");
  }
  delete task;
}

void SipLoop::discard(su_msg_arg_t* arg) noexcept {
  auto* slot = static_cast<Task**>(static_cast<void*>(arg));
  delete *slot;
  *slot = nullptr;
}

void SipLoop::invoke(const std::function<void()>& fn) {
  assert(!isLoopThread());
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  bool posted = post([&fn, done] {
    try {
      fn();
      done->set_value();
    } catch (...) {
      done->set_exception(std::current_exception());
    }
  });
  if (!posted) throw std::runtime_error("the SIP loop is stopped");
  future.get();
}

void SipLoop::stop() {
  if (!thread_.joinable()) return;
  assert(!isLoopThread());
  // su_root_break is loop-thread only: ask the loop to break itself.
  post([this] { su_root_break(root_); });
  thread_.join();
}

}  // namespace medius::gateway
