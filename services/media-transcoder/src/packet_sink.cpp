// PacketSink: the worker's preallocated list of packets to send (see pipeline.hpp).
#include "medius/media/pipeline.hpp"

#include <algorithm>

namespace medius::media {

PacketSink::PacketSink() : storage_(std::make_unique<std::uint8_t[]>(kSlots * kSlotBytes)) {}

std::span<std::uint8_t> PacketSink::slot() noexcept {
  if (count_ == kSlots || slotsUsed_ == kSlots) return {};
  return {storage_.get() + slotsUsed_ * kSlotBytes, kSlotBytes};
}

void PacketSink::commitSlot(std::size_t length, int leg, bool rtcpSocket) noexcept {
  if (count_ == kSlots || slotsUsed_ == kSlots) return;
  packets_[count_++] = {storage_.get() + slotsUsed_ * kSlotBytes, std::min(length, kSlotBytes),
                        static_cast<std::uint8_t>(leg), rtcpSocket};
  ++slotsUsed_;
}

bool PacketSink::emit(const std::uint8_t* data, std::size_t length, int leg, bool rtcpSocket) noexcept {
  if (count_ == kSlots) return false;
  packets_[count_++] = {data, length, static_cast<std::uint8_t>(leg), rtcpSocket};
  return true;
}

}  // namespace medius::media
