// TrunkHealth: trunk up/down as reported by gateways; survives configuration reloads.
#include <map>
#include <mutex>
#include <shared_mutex>

#include "medius/routing/engine.hpp"

namespace medius::routing {

struct TrunkHealth::Impl {
  mutable std::shared_mutex mutex;
  // Only trunks reported at least once; std::less<> for lookups without a copy.
  std::map<std::string, bool, std::less<>> up;
};

std::shared_ptr<TrunkHealth::Impl> TrunkHealth::makeImpl() { return std::make_shared<Impl>(); }

void TrunkHealth::report(const std::string& trunk, bool up) {
  std::unique_lock lock(impl_->mutex);
  impl_->up.insert_or_assign(trunk, up);
}

bool TrunkHealth::isUp(const std::string& trunk) const {
  std::shared_lock lock(impl_->mutex);
  auto it = impl_->up.find(trunk);
  return it == impl_->up.end() || it->second;
}

std::vector<std::pair<std::string, bool>> TrunkHealth::snapshot() const {
  std::shared_lock lock(impl_->mutex);
  return {impl_->up.begin(), impl_->up.end()};
}

}  // namespace medius::routing
