#include "medius/common/periodic_task.hpp"

#include <utility>

namespace medius {

PeriodicTask::PeriodicTask(std::chrono::milliseconds interval, std::function<void()> round)
    : interval_(interval), round_(std::move(round)), thread_([this] { run(); }) {}

PeriodicTask::~PeriodicTask() { stop(); }

void PeriodicTask::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PeriodicTask::run() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
    lock.unlock();
    round_();
    lock.lock();
  }
}

}  // namespace medius
