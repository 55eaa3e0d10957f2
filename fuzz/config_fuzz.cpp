// libFuzzer target: the JSON config reader must turn any input into either a value or a
// ConfigError, never a crash, hang or uncaught exception of another type.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "medius/common/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto doc = medius::config::Document::parse(text, "fuzz.json");
    auto root = doc.root();
    // Exercise the typed readers the services use, on whatever keys exist.
    (void)root.string("domain", "example.com");
    (void)root.integer("n", 0, -5, 5);
    (void)root.boolean("b", false);
    (void)root.strings("list", {});
    for (auto& o : root.objects("users")) {
      (void)o.optionalString("username");
      (void)o.keysOf("levels");
    }
    if (auto svc = root.optionalObject("service")) {
      (void)svc->choice("mode", "a", {"a", "b"});
    }
    root.finish();
  } catch (const medius::config::ConfigError&) {
  }
  try {
    (void)medius::config::parseHostPort(text);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
