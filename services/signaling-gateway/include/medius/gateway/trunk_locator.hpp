// Which configured trunk a request came from (the trunk ACL of inbound calls), how many
// calls a trunk may carry at once, and its media policy (SRTP, codecs).
//
// Thread: the SIP loop.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "medius/v1/routing.pb.h"

namespace medius::gateway {

class TrunkLocator {
 public:
  virtual ~TrunkLocator() = default;
  // The trunk whose address is host (and port, when several trunks share the host);
  // "" when none.
  virtual std::string trunkAt(const std::string& host, std::uint32_t port) const = 0;
  // The trunk's max_concurrent_calls from routing; 0 when unlimited or unknown.
  virtual std::uint32_t maxCalls(const std::string& trunk) const = 0;
  // The trunk's srtp and codecs from routing; an empty TrunkMedia (SRTP_POLICY_UNSPECIFIED,
  // no codecs: the media worker's defaults) when unknown.
  virtual v1::TrunkMedia media(const std::string& trunk) const = 0;
  // The trunk's "trusted" flag from routing (RFC 3325 trust domain: it gets
  // P-Asserted-Identity, and its own is believed); false when unknown.
  virtual bool trusted(const std::string& trunk) const = 0;
  // For a trunk reached over TLS (routing's transport "tls"): the name its certificate must
  // carry (routing's tls_name, else its address's host). nullopt for other trunks and
  // unknown ones.
  virtual std::optional<std::string> tlsName(const std::string& trunk) const = 0;
};

}  // namespace medius::gateway
