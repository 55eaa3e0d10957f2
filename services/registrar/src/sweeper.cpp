#include "medius/registrar/sweeper.hpp"

#include "medius/common/logging.hpp"

namespace medius::registrar {

Sweeper::Sweeper(Registrar& registrar, std::chrono::milliseconds interval)
    : registrar_(registrar), task_(interval, [this] { round(); }) {}

Sweeper::~Sweeper() { stop(); }

void Sweeper::round() {
  auto logger = log::get("registrar");
  try {
    std::size_t n = registrar_.sweep();
    if (n > 0) logger->info("expired {} binding(s)", n);
    if (failing_) logger->info("sweeper: store reachable again");
    failing_ = false;
  } catch (const std::exception& e) {
    if (!failing_) logger->warn("sweeper: {}", e.what());
    failing_ = true;
  }
}

}  // namespace medius::registrar
