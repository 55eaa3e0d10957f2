// Small SIP helpers of the B2BUA over Sofia's parsed messages.
//
// Thread: pure functions (the sip_t they read must stay alive during the call).
#pragma once

#include <cstddef>
#include <string>

#include <sofia-sip/sip.h>
#include <sofia-sip/url.h>

#include "medius/v1/common.pb.h"
#include "medius/v1/registrar.pb.h"

namespace medius::gateway {

// nta marks the responses it made itself (timeout, transport error) with this flag in
// sip_flags (NTA_INTERNAL_MSG in nta_internal.h, not a public header).
inline constexpr unsigned kNtaInternalMsg = 1u << 15;

// The body when the Content-Type is application/sdp (parameters ignored), else "".
std::string sdpBody(const sip_t* sip);
// The URL as text; without its parameters and headers when `bare`.
std::string urlText(const url_t* url, bool bare);
// "sip:user@host" (lower-case host, no port or parameters); "" without a host.
std::string aorOf(const url_t* url);
// A display name without its quotes and escapes.
std::string unquote(const char* display);
// A display name as a quoted-string (RFC 3261 25.1), control characters dropped.
std::string quoteDisplay(const std::string& display);
// A user part with characters outside RFC 3261's user set %-escaped.
std::string escapeUser(const std::string& user);
// A header value safe to send: CR, LF and other control characters become spaces; at
// most `max` bytes.
std::string sanitizeHeaderValue(const std::string& text, std::size_t max = 200);
// The value of one header as it would be printed ("SIP;cause=200;text=...").
std::string headerValue(const sip_t* sip, const sip_header_t* header);
// "udp", "tcp", "tls" (anything else: "udp").
std::string transportName(v1::Transport transport);
// "sip:host:port;transport=tcp" for an address (the next hop of an outgoing request).
std::string nextHopOf(const v1::SocketAddress& address);

// A binding only another gateway can reach (docs/registrar.md, "Several gateways"): its
// client is behind a NAT (Flow.nat) and registered straight to that gateway (no Path), so
// the NAT's mapping (or the connection) is that gateway's. Calls through this gateway
// skip such a fork (answered 503 for it, logged) instead of sending into the NAT.
bool flowOnOtherGateway(const v1::Binding& binding, const std::string& gatewayId);

// The remote target of a dialog with a client behind NAT (issue 10): `contact` (its first
// Contact) copied into `home` with host and port replaced by the flow's (`flow`, where its
// requests come from), when the Contact names another address (contactBehindNat, as
// nathelper's fix_nated_contact); otherwise `contact` itself. Requests in the dialog then
// go back over the flow (the same connection for TCP/TLS) instead of the private address.
const sip_contact_t* contactAtFlow(su_home_t* home, const sip_contact_t* contact,
                                   const v1::SocketAddress& flow);
// `n` random characters from [0-9a-z] (a Call-ID's local part).
std::string randomToken(std::size_t n);

}  // namespace medius::gateway
