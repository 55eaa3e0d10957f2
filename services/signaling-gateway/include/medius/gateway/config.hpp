// The gateway's configuration (gateway.json), read once at start-up, then immutable.
//
// Keys (defaults; environment override):
//   service            common block (grpc_listen 127.0.0.1:50054, metrics_listen 127.0.0.1:9104,
//                      shutdown_timeout_ms, log), see medius/common/service.hpp
//   gateway_id         "gw1"; MEDIUS_GATEWAY_ID. Identifies this replica to the registrar.
//   domain             required. Realm of the Authorization header relayed to the registrar.
//   internal.listen    ["sip:127.0.0.1:5062"]; MEDIUS_INTERNAL_LISTEN (comma-separated URLs).
//   trunk.listen       ["sip:127.0.0.1:5060"]; MEDIUS_TRUNK_LISTEN (comma-separated URLs).
//                      A sip: URL opens UDP and TCP; ";transport=udp" narrows it. sips:
//                      URLs belong in internal.tls.listen.
//   internal.tls       absent (no TLS): SIP over TLS on the internal side (sip_tls.hpp,
//                      docs/security.md). Relative paths from the config file's directory.
//     listen           required, "sips:host:port"; MEDIUS_INTERNAL_TLS_LISTEN
//     cert             required; MEDIUS_INTERNAL_TLS_CERT: PEM certificate chain (server
//                      certificate first, then intermediates)
//     key              required; MEDIUS_INTERNAL_TLS_KEY: PEM private key (unencrypted)
//     ca               ""; MEDIUS_INTERNAL_TLS_CA: PEM CAs that sign client certificates.
//                      Set: clients are asked for a certificate, one that does not verify
//                      is refused. Unset: none is asked for.
//     require_client_cert  false: true refuses clients without a valid certificate
//                      (mutual TLS); needs ca.
//     trusted_names    []: certificate names (CN or SAN DNS, exact, case-insensitive) of
//                      trusted peers: their requests need no digest credentials; needs ca.
//     ciphers          kDefaultSipTlsCiphers: OpenSSL cipher list for TLS 1.2 (TLS 1.3
//                      keeps OpenSSL's suites). TLS 1.0 and 1.1 are always refused.
//     reload_interval_s  60 (0..86400, 0 = only on SIGHUP): how often the files are
//                      checked for a change; a changed certificate is used by new
//                      connections without a restart.
//   trunk.tls          absent (no TLS toward trunks): SIP over TLS on the trunk side, for
//                      trunks whose routing.json transport is "tls" (docs/security.md).
//                      The keys of internal.tls (environment MEDIUS_TRUNK_TLS_*), except:
//     ca               required: the CAs that sign the trunks' certificates (a trunk's
//                      certificate is verified both when it connects and when we do).
//     require_client_cert  true: a trunk connecting in must present its certificate.
//     trusted_names    refused: each TLS trunk's certificate must carry its tls_name
//                      (routing.json), checked in the handshake against the trunk at
//                      the connection's address; trust comes from the trunk's "trusted".
//   registrar.address  "127.0.0.1:50051"; MEDIUS_REGISTRAR_ADDRESS.
//   registrar.timeout_ms  2000 (1..60000): deadline of every Register call.
//   retry_after_seconds   5 (0..86400): Retry-After of the 503 sent when the registrar fails.
//   flows              flows of registered clients (flow_table.hpp, docs/registrar.md):
//     flow_timer_s     120 (0..3600): Flow-Timer in the 200 to an RFC 5626 REGISTER
//                      (Require: outbound); 0 turns outbound off.
//     ping_interval_ms 15000 (100..600000): OPTIONS over a UDP flow from behind NAT (or
//                      with outbound) when nothing was heard from it for this long.
//     udp_timeout_ms   60000 (200..3600000): such a flow silent for this long is dead:
//                      its bindings are reported unreachable (calls skip them).
//   drain.timeout_seconds 600 (1..86400); MEDIUS_DRAIN_TIMEOUT_SECONDS: after SIGTERM/SIGINT
//                      or a Drain RPC, how long calls in progress may go on (new INVITEs
//                      and out-of-dialog OPTIONS get 503); then the rest are ended with BYE
//                      and the process exits 0. See medius/common/drain.hpp.
//   user_agent         "Medius/0.1": Server header of every response (User-Agent of our requests).
//   routing.address    "127.0.0.1:50052"; MEDIUS_ROUTING_ADDRESS.
//   routing.timeout_ms 1000 (1..60000): deadline of every Routing call.
//   trunk_keepalive.interval_ms      5000 (100..300000): one OPTIONS round to every trunk;
//                                    also the probe timeout (a probe unanswered when the
//                                    next round starts is a timeout).
//   trunk_keepalive.failures_to_down 2 (1..100): consecutive failures that mark a trunk down.
//   trunk_keepalive.successes_to_up  1 (1..100): consecutive answers that mark it up again.
//   media.workers      ["127.0.0.1:50053"]; MEDIUS_MEDIA_WORKERS (comma-separated): the
//                      media-transcoder gRPC addresses; sessions are spread over them.
//   media.timeout_ms   1000 (1..60000): deadline of every media call.
//   media.media_timeout_ms  0 (0..3600000): end a call after this long without RTP;
//                      0 leaves it to the worker's own default.
//   media.internal_srtp  "required" ("off" | "optional" | "required"): SRTP policy of the
//                      internal side's media leg (a trunk's comes from its routing.json
//                      "srtp"). The reference lab sets "optional": its SIPp clients have no SRTP.
//   media.internal_codecs  ["opus", "G722", "PCMU", "PCMA"]: the internal side's codecs in
//                      preference order; names as in routing.json's trunk "codecs"
//                      (case-insensitive, normalized; unknown names and duplicates refused).
//   calls.cdr_file     "" (off); MEDIUS_CDR_FILE: one JSON line per finished call.
//   calls.no_answer_timeout_ms  60000 (1000..600000): a target group that has no final
//                      answer after this long (when routing gives it no timeout) fails.
//   calls.rcc_dialog_events  true: a remote call control MonitorStart SUBSCRIBEs to the
//                      PBX phone's dialog events (RFC 4235) to report its own calls (rcc.md);
//                      false: the monitor reports the gateway's MakeCall calls only.
//   calls.max_calls    10000 (1..1000000): new INVITEs beyond this get 503.
//   calls.session_expires_s  1800 (90..86400): Session-Expires we ask of the called side
//                      (RFC 4028); the caller's own request is honoured on its leg.
//   calls.min_se_s     90 (1..86400): smaller Session-Expires requests get 422 with Min-SE.
//                      RFC 4028 forbids less than 90 on the wire; lower only in tests.
//   calls.rel100       true: reliable provisional responses (RFC 3262) per leg: INVITEs we
//                      send say Supported: 100rel and every reliable 18x we get is PRACKed;
//                      a caller that supports 100rel gets its early media (18x with SDP)
//                      reliably, one that requires it gets every 18x reliably. false:
//                      neither, and a caller's Require: 100rel gets 420.
//   security.flood     flood and scan protection (flood_guard.hpp, docs/security.md):
//     enabled          true
//     window_ms        2000 (100..60000): the per-source counting window.
//     max_requests     400 (1..1000000): out-of-dialog requests (and new TLS connections)
//                      one source address may send per window; more bans it.
//     ban_s            60 (1..86400): how long a banned source's requests are dropped.
//     max_sources      16384 (16..1000000): bound of the source table (least recently
//                      seen sources are forgotten first).
//     max_requests_per_second  0 (0..1000000, 0 = no limit): out-of-dialog requests the
//                      gateway admits per second from all sources; the rest get 503.
//     retry_after_s    retry_after_seconds (0..86400): Retry-After of those 503s and of the
//                      503 at calls.max_calls (the global dialog limit).
//     user_agent_deny  ["friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent", ...]:
//                      case-insensitive substrings of User-Agent whose requests are dropped.
//     exempt           []: addresses or prefixes ("192.0.2.0/24") never rate-limited or
//                      banned per source (configured trunk addresses always are exempt).
//   security.auth      failed-authentication limits (auth_guard.hpp, docs/security.md):
//     enabled          true
//     max_failures_per_source  10 (1..1000000): failed credentials from one source address
//                      within source_window_s that get it banned (as a flooding source).
//     source_window_s  60 (1..86400)
//     source_ban_s     600 (1..86400): how long that ban lasts.
//     max_failures_per_user  20 (1..1000000): failed credentials for one digest username,
//                      from any sources, within user_window_s that lock the user.
//     user_window_s    300 (1..86400)
//     user_lock_s      300 (1..86400): while locked, credentials for the user get 403
//                      without being checked, except from a known source.
//     known_source_s   86400 (0..2678400): a source address that authenticated as a user
//                      within this long is a known source of that user (0: none is).
//     max_entries      16384 (16..1000000): bound of each table (sources, users, known).
//   auth.calls         "required" ("required" | "off"): digest credentials (a 407 challenge,
//                      checked by the registrar) for every out-of-dialog request from the
//                      internal side other than REGISTER, OPTIONS, ACK and CANCEL (calls.md,
//                      docs/security.md). "off" lets anyone on the internal side call as
//                      whoever their From says: for a closed lab only.
//   auth.realm         `domain`: the realm of the challenges (the registrar must have the
//                      same auth.realm, it verifies the credentials).
//   auth.from_must_match  true: an authenticated request whose From AOR is not the
//                      authenticated user's gets 403 (as OCS/Lync and Teams refuse it);
//                      false: accepted, but routing and the CDR still see the
//                      authenticated user, never the From.
//
// Thread: plain values, read-only after loading.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "medius/common/config.hpp"
#include "medius/common/service.hpp"
#include "medius/gateway/auth_guard.hpp"
#include "medius/gateway/flood_guard.hpp"
#include "medius/v1/media.pb.h"

namespace medius::gateway {

enum class CallAuthMode { Required, Off };

// TLS 1.2 suites: forward secrecy and AEAD only (Mozilla's "intermediate" list).
inline constexpr const char* kDefaultSipTlsCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";

struct SipTlsSettings {
  std::string listen;  // "sips:127.0.0.1:5061"
  std::string certFile;
  std::string keyFile;
  std::string caFile;  // "" = no client certificates asked for
  bool requireClientCert = false;
  std::vector<std::string> trustedNames;
  std::string ciphers = kDefaultSipTlsCiphers;
  std::int64_t reloadIntervalS = 60;
};

struct GatewayConfig {
  ServiceSettings service;
  std::string gatewayId = "gw1";
  std::string domain;
  std::vector<std::string> internalListen{"sip:127.0.0.1:5062"};
  std::vector<std::string> trunkListen{"sip:127.0.0.1:5060"};
  std::optional<SipTlsSettings> internalTls;
  std::optional<SipTlsSettings> trunkTls;
  std::string registrarAddress = "127.0.0.1:50051";
  std::int64_t registrarTimeoutMs = 2000;
  std::int64_t retryAfterSeconds = 5;
  std::int64_t drainTimeoutSeconds = 600;
  std::string userAgent = "Medius/0.1";
  std::string routingAddress = "127.0.0.1:50052";
  std::int64_t routingTimeoutMs = 1000;
  std::int64_t keepaliveIntervalMs = 5000;
  std::int64_t keepaliveFailuresToDown = 2;
  std::int64_t keepaliveSuccessesToUp = 1;
  std::vector<std::string> mediaWorkers{"127.0.0.1:50053"};
  std::int64_t mediaTimeoutMs = 1000;
  // How often "dns:host:port" workers are re-resolved.
  std::int64_t mediaDiscoveryIntervalMs = 5000;
  std::int64_t mediaInactivityMs = 0;
  v1::SrtpPolicy internalSrtp = v1::SRTP_POLICY_REQUIRED;
  std::vector<std::string> internalCodecs{"opus", "G722", "PCMU", "PCMA"};
  std::string cdrFile;
  std::int64_t noAnswerTimeoutMs = 60000;
  bool rccDialogEvents = true;
  std::int64_t maxCalls = 10000;
  std::int64_t sessionExpiresS = 1800;
  std::int64_t minSeS = 90;
  bool rel100 = true;
  // maxDialogs is calls.max_calls; retryAfterSeconds defaults to retry_after_seconds.
  FloodSettings flood;
  AuthLimitSettings authLimits;
  CallAuthMode authCalls = CallAuthMode::Required;
  std::string authRealm;  // loadConfig sets it (the domain by default); "" means the domain
  bool authFromMustMatch = true;
  // flows.* (flow_table.hpp).
  std::int64_t flowTimerSeconds = 120;
  std::int64_t flowPingIntervalMs = 15000;
  std::int64_t flowUdpTimeoutMs = 60000;
};

// Reads and validates a document; throws config::ConfigError naming file and path.
GatewayConfig loadConfig(const config::Document& doc);

// True for a SIP URL Sofia can bind ("sip:host[:port][;params]"); used by loadConfig.
bool isListenUrl(const std::string& url);
// True for "sips:host[:port][;params]" (internal.tls.listen).
bool isTlsListenUrl(const std::string& url);

}  // namespace medius::gateway
