// rtpengine's ng replies as the benchmarks parse them (bench/ng_client.cpp): any octets are
// either a value or a std::runtime_error naming the offset, never a crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "ng_client.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto value = medius::bench::decode(text);
    (void)value.stringAt("sdp");
  } catch (const std::runtime_error&) {
  }
  return 0;
}
