// What the gateway checks on every request before anything acts on it (authentication,
// the registrar, routing): the syntax Sofia's parser lets through although RFC 3261 does
// not, and the RFC 3261 section 8.2 checks of a UAS. The verdicts are those of RFC 4475
// (the SIP torture messages, tests/e2e/test_torture.py):
//
//   505 a SIP-Version other than SIP/2.0 (8.2.x, RFC 4475 3.1.2.16)
//   400 a header Sofia could not parse or a repeated single header (headerErrorReply);
//       a missing Call-ID, From, To, CSeq or Via; a Request-Line that is not exactly
//       "Method SP Request-URI SP SIP-Version" (3.1.2.7-3.1.2.10); a Request-URI with
//       headers (3.1.2.11); LWS inside the <> of a name-addr (3.1.2.14); an unquoted
//       display name that is no token list (3.1.2.15); an addr-spec with headers outside
//       <> (3.1.2.13); a CSeq method other than the request's (3.1.2.17, 3.1.2.18)
//   416 a Request-URI scheme other than sip, sips and tel (8.2.2.1; 3.3.2, 3.3.3)
//   420 a Require option the gateway does not support, listed in Unsupported (8.2.2.3;
//       3.3.5); never for ACK and CANCEL
//   415 an INVITE or UPDATE body that is not application/sdp (nor multipart; nor
//       application/csta+xml in an INVITE with options.csta), with Accept: application/sdp
//       (8.2.3; 3.3.6)
//   406 an INVITE whose Accept excludes application/sdp: its answer would carry SDP
//       (3.3.15); with options.csta, an INVITE with a CSTA body may accept only
//       application/csta+xml
//
// Thread: any (pure function of the parsed message).
#pragma once

#include <optional>

#include <sofia-sip/sip.h>

#include "medius/gateway/register_request.hpp"

namespace medius::gateway {

struct RequestCheckOptions {
  // Require options accepted besides "timer" and "path": "100rel" when calls.rel100.
  bool rel100 = true;
  // Remote call control (rcc.hpp, the internal side): an INVITE may carry
  // application/csta+xml instead of SDP, and accept it in the answer.
  bool csta = false;
};

// The refusal for a request the gateway must not act on, or nullopt when it may go on.
std::optional<SipReply> requestErrorReply(const sip_t* sip, const RequestCheckOptions& options);

}  // namespace medius::gateway
