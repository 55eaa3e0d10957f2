#include "medius/registrar/sweeper.hpp"

#include "medius/common/logging.hpp"

namespace medius::registrar {

Sweeper::Sweeper(Registrar& registrar, std::chrono::milliseconds interval)
    : registrar_(registrar), interval_(interval), thread_([this] { run(); }) {}

Sweeper::~Sweeper() { stop(); }

void Sweeper::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Sweeper::run() {
  auto logger = log::get("registrar");
  bool failing = false;
  std::unique_lock lock(mutex_);
  while (!cv_.wait_for(lock, interval_, [this] { return stopping_; })) {
    lock.unlock();
    try {
      std::size_t n = registrar_.sweep();
      if (n > 0) logger->info("expired {} binding(s)", n);
      if (failing) logger->info("sweeper: store reachable again");
      failing = false;
    } catch (const std::exception& e) {
      if (!failing) logger->warn("sweeper: {}", e.what());
      failing = true;
    }
    lock.lock();
  }
}

}  // namespace medius::registrar
