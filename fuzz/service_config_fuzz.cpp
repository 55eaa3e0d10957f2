// libFuzzer target: any text as the JSON config of the signaling gateway, the registrar
// and the media-transcoder (routing's has routing_config_fuzz): each loader must return a
// config or throw config::ConfigError naming the file and JSON path, never crash, hang or
// throw anything else. Inputs that name certificate files (service.grpc_tls) are skipped:
// those loaders read the files, and a fuzzer must not read /dev/zero. The same text is
// also an AOR for the registrar's parseAor (its users' AORs and every gRPC request's).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "medius/common/config.hpp"
#include "medius/gateway/config.hpp"
#include "medius/media/config.hpp"
#include "medius/registrar/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (text.find("grpc_tls") != std::string_view::npos || text.find("\\u") != std::string_view::npos) {
    return 0;  // "\u0067rpc_tls" is grpc_tls too
  }
  try {
    auto doc = medius::config::Document::parse(text, "gateway.json");
    (void)medius::gateway::loadConfig(doc);
  } catch (const medius::config::ConfigError&) {
  }
  try {
    (void)medius::registrar::parse(text, "registrar.json");
  } catch (const medius::config::ConfigError&) {
  }
  (void)medius::registrar::parseAor(text);
  try {
    (void)medius::media::parse(text, "media.json");
  } catch (const medius::config::ConfigError&) {
  }
  return 0;
}
