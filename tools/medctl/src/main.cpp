// medctl: operator CLI for Medius. Thin: flags here, logic in medius_medctl.
//   medctl registrations [AOR] [--registrar HOST:PORT] [--json]
//   medctl flows [AOR] [--registrar HOST:PORT] [--json]
//   medctl flows --gateway HOST:PORT [--json]
//   medctl health [--target HOST:PORT] [--service NAME]
//   medctl watch [AOR] [--registrar HOST:PORT] [--snapshot] [--json] [--count N]
//   medctl route --from USER --to NUMBER [--from-trunk NAME] [--routing HOST:PORT] [--json]
//   medctl reload [--routing HOST:PORT]
//   medctl trunks [--gateway HOST:PORT] [--json]
//   medctl calls [--gateway HOST:PORT] [--json]
//   medctl sessions [--media HOST:PORT] [--json]
//   medctl drain (--gateway HOST:PORT [--grace-seconds N] | --media HOST:PORT)
// Exit codes: 0 success, 1 the call failed (or not SERVING), 2 usage error.
// route: 0 routed, 1 routing said no (the outcome and why are printed), 2 usage, 3 the
// routing service is unreachable or unavailable. reload: 0 reloaded or unchanged, 1 the
// file was refused (the config error is printed), 3 unreachable. trunks, calls, sessions: 0
// printed, 1 the call failed, 3 the service is unreachable. drain: 0 draining (the remaining
// calls or sessions are printed), 1 the call failed, 2 usage, 3 unreachable.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "medius/common/grpc_tls.hpp"
#include "medius/medctl/calls_format.hpp"
#include "medius/medctl/client.hpp"
#include "medius/medctl/format.hpp"
#include "medius/medctl/route_format.hpp"
#include "medius/medctl/status_format.hpp"

namespace {

std::string envOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace medius::medctl;
  CLI::App app{"medctl: inspect a running Medius cluster"};
  app.require_subcommand(1);

  std::string registrar = envOr("MEDIUS_REGISTRAR_ADDRESS", "127.0.0.1:50051");
  int timeoutMs = 3000;
  app.add_option("--timeout-ms", timeoutMs, "Deadline of each call in milliseconds")
      ->check(CLI::Range(1, 600000));
  // Mutual TLS toward services configured with service.grpc_tls (docs/security.md).
  std::string tlsCa = envOr("MEDIUS_GRPC_TLS_CA", ""), tlsCert = envOr("MEDIUS_GRPC_TLS_CERT", ""),
              tlsKey = envOr("MEDIUS_GRPC_TLS_KEY", "");
  app.add_option("--tls-ca", tlsCa, "CA of the services' certificates (env MEDIUS_GRPC_TLS_CA)");
  app.add_option("--tls-cert", tlsCert, "medctl's client certificate (env MEDIUS_GRPC_TLS_CERT)");
  app.add_option("--tls-key", tlsKey, "its private key (env MEDIUS_GRPC_TLS_KEY)");

  std::string aor;
  bool json = false;
  auto* registrations =
      app.add_subcommand("registrations", "List registered bindings (all AORs, or one)");
  registrations->add_option("aor", aor, "Only this address-of-record, e.g. sip:alice@example.com");
  registrations->add_option("--registrar", registrar,
                            "Registrar gRPC address (env MEDIUS_REGISTRAR_ADDRESS)");
  registrations->add_flag("--json", json, "Print JSON instead of a table");

  auto* flows = app.add_subcommand(
      "flows", "Flows of registered clients (NAT, outbound, state, keepalive age)");
  flows->add_option("aor", aor, "Only this address-of-record");
  flows->add_option("--registrar", registrar,
                    "Registrar gRPC address (env MEDIUS_REGISTRAR_ADDRESS)");
  flows->add_flag("--json", json, "Print the bindings (with their flow) as JSON");

  std::string target = "127.0.0.1:50051";
  std::string service;
  auto* health = app.add_subcommand("health", "grpc.health.v1 Check; exit 0 when SERVING");
  health->add_option("--target", target, "gRPC address of the service");
  health->add_option("--service", service, "Service name to check (default: the whole server)");
  bool quiet = false;
  health->add_flag("-q,--quiet", quiet, "Print nothing, only set the exit code");

  bool snapshot = false;
  long count = 0;
  auto* watch = app.add_subcommand("watch", "Stream binding changes until interrupted");
  watch->add_option("aor", aor, "Only this address-of-record");
  watch->add_option("--registrar", registrar,
                    "Registrar gRPC address (env MEDIUS_REGISTRAR_ADDRESS)");
  watch->add_flag("--snapshot", snapshot, "Start with the current bindings");
  watch->add_flag("--json", json, "One JSON object per line");
  watch->add_option("--count", count, "Stop after this many events (0: never)")
      ->check(CLI::NonNegativeNumber);

  std::string routing = envOr("MEDIUS_ROUTING_ADDRESS", "127.0.0.1:50052");
  std::string domain = envOr("MEDIUS_DOMAIN", "example.com");
  std::string from;
  std::string to;
  std::string fromTrunk;
  auto* route = app.add_subcommand(
      "route", "Explain where a call would go (dry run: dial plan, policy, routes, trunks)");
  route->add_option("--from", from,
                    "Caller: a user (alice = sip:alice@DOMAIN), a URI, or a number on a trunk");
  route->add_option("--to", to, "Number or URI as dialled, e.g. 2200, '(425) 555-0123', tel:+1...")
      ->required();
  route->add_option("--from-trunk", fromTrunk,
                    "The call arrives on this trunk (inbound) instead of from --from");
  route->add_option("--routing", routing, "Routing gRPC address (env MEDIUS_ROUTING_ADDRESS)");
  route->add_option("--domain", domain, "Domain of bare user names (env MEDIUS_DOMAIN)");
  route->add_flag("--json", json, "Print the explanation as JSON");
  auto* reload = app.add_subcommand("reload", "Make the routing service re-read its config");
  reload->add_option("--routing", routing, "Routing gRPC address (env MEDIUS_ROUTING_ADDRESS)");

  std::string gateway = envOr("MEDIUS_GATEWAY_ADDRESS", "127.0.0.1:50054");
  std::string flowsGateway;
  flows->add_option("--gateway", flowsGateway,
                    "Instead: the live flows one gateway watches (its admin gRPC address)");
  auto* trunks = app.add_subcommand("trunks", "Trunk keepalive state as the gateway sees it");
  trunks->add_option("--gateway", gateway,
                     "Gateway admin gRPC address (env MEDIUS_GATEWAY_ADDRESS)");
  trunks->add_flag("--json", json, "Print JSON instead of a table");
  auto* calls = app.add_subcommand("calls", "Active calls on the gateway and their legs");
  calls->add_option("--gateway", gateway,
                    "Gateway admin gRPC address (env MEDIUS_GATEWAY_ADDRESS)");
  calls->add_flag("--json", json, "Print JSON instead of a table");
  std::string media = envOr("MEDIUS_MEDIA_ADDRESS", "127.0.0.1:50053");
  auto* sessions =
      app.add_subcommand("sessions", "Relay sessions of a media worker and its load");
  sessions->add_option("--media", media, "Media worker gRPC address (env MEDIUS_MEDIA_ADDRESS)");
  sessions->add_flag("--json", json, "Print JSON instead of lines");

  std::string drainGatewayAt, drainMediaAt;
  std::uint32_t graceSeconds = 0;
  auto* drain = app.add_subcommand(
      "drain", "Drain a gateway or a media worker: no new calls/sessions, the process exits "
               "when the last one ends (or at the limit)");
  drain->add_option("--gateway", drainGatewayAt, "Gateway admin gRPC address");
  drain->add_option("--media", drainMediaAt, "Media worker gRPC address");
  drain->add_option("--grace-seconds", graceSeconds,
                    "Gateway: longest time calls may go on (0: its drain.timeout_seconds)")
      ->check(CLI::Range(0, 86400));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  const auto timeout = std::chrono::milliseconds(timeoutMs);
  if (!tlsCa.empty() || !tlsCert.empty() || !tlsKey.empty()) {
    if (tlsCa.empty() || tlsCert.empty() || tlsKey.empty()) {
      std::cerr << "medctl: --tls-ca, --tls-cert and --tls-key go together\n";
      return 2;
    }
    medius::setClientTls(medius::GrpcTls{tlsCa, tlsCert, tlsKey, true});
  }

  if (route->parsed()) {
    if (from.empty() && fromTrunk.empty()) {
      std::cerr << "medctl route: give --from USER (an internal caller) or --from-trunk NAME\n";
      return 2;
    }
    const auto request = routeRequest(from, to, fromTrunk, domain);
    try {
      const auto explanation = explainRoute(routing, request, timeout);
      if (json) {
        std::cout << explanationToJson(explanation);
      } else {
        RouteFormatOptions options;
        const char* term = std::getenv("TERM");
        options.color = isatty(STDOUT_FILENO) != 0 && std::getenv("NO_COLOR") == nullptr &&
                        (term == nullptr || std::string(term) != "dumb");
        std::cout << formatExplanation(request, explanation, options);
      }
      return explanation.plan().outcome() == medius::v1::RoutePlan::OUTCOME_ROUTED ? 0 : 1;
    } catch (const CallError& e) {
      std::cerr << "medctl: " << e.what() << '\n';
      if (e.unavailable()) return 3;
      return e.code() == 3 ? 2 : 1;  // INVALID_ARGUMENT: the request was unusable
    }
  }
  if (reload->parsed()) {
    try {
      std::cout << formatReload(reloadRouting(routing, timeout));
      return 0;
    } catch (const CallError& e) {
      if (e.code() == 9) {  // FAILED_PRECONDITION: the file was refused
        std::cerr << "medctl: reload refused, the old configuration keeps serving:\n  "
                  << e.what() << '\n';
        return 1;
      }
      std::cerr << "medctl: " << e.what() << '\n';
      return e.unavailable() ? 3 : 1;
    }
  }

  if (drain->parsed()) {
    if (drainGatewayAt.empty() == drainMediaAt.empty()) {
      std::cerr << "medctl drain: give exactly one of --gateway HOST:PORT or --media HOST:PORT\n";
      return 2;
    }
    if (!drainMediaAt.empty() && graceSeconds != 0) {
      std::cerr << "medctl drain: --grace-seconds is for a gateway (a media worker uses its "
                   "drain.timeout_seconds)\n";
      return 2;
    }
    try {
      // The call first: nothing is printed on stdout when it fails.
      if (!drainGatewayAt.empty()) {
        const auto inProgress = drainGateway(drainGatewayAt, graceSeconds, timeout);
        std::cout << drainGatewayAt << ": draining, " << inProgress << " call(s) in progress\n";
      } else {
        const auto inProgress = drainMedia(drainMediaAt, timeout);
        std::cout << drainMediaAt << ": draining, " << inProgress << " session(s) in progress\n";
      }
      return 0;
    } catch (const CallError& e) {
      std::cerr << "medctl: " << e.what() << '\n';
      return e.unavailable() ? 3 : 1;
    }
  }

  if (trunks->parsed() || calls->parsed() || sessions->parsed()) {
    const auto nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    try {
      if (trunks->parsed()) {
        const auto response = listTrunkStatus(gateway, timeout);
        std::cout << (json ? messageToJson(response)
                           : formatTrunksTable(response, static_cast<std::int64_t>(nowMs)));
      } else if (calls->parsed()) {
        const auto response = listCalls(gateway, timeout);
        std::cout << (json ? messageToJson(response)
                           : formatCallsTable(response, static_cast<std::int64_t>(nowMs)));
      } else {
        const auto response = listSessions(media, timeout);
        std::cout << (json ? messageToJson(response)
                           : formatSessions(response, static_cast<std::int64_t>(nowMs)));
      }
      return 0;
    } catch (const CallError& e) {
      std::cerr << "medctl: " << e.what() << '\n';
      return e.unavailable() ? 3 : 1;
    }
  }

  try {
    if (registrations->parsed()) {
      const auto bindings = listBindings(registrar, aor, timeout);
      std::cout << (json ? formatBindingsJson(bindings) : formatBindingsTable(bindings));
      return 0;
    }
    if (flows->parsed() && !flowsGateway.empty()) {
      const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      try {
        const auto response = listFlows(flowsGateway, timeout);
        std::cout << (json ? messageToJson(response)
                           : formatGatewayFlowsTable(response, static_cast<std::int64_t>(now)));
        return 0;
      } catch (const CallError& e) {
        std::cerr << "medctl: " << e.what() << '\n';
        return e.unavailable() ? 3 : 1;
      }
    }
    if (flows->parsed()) {
      const auto bindings = listBindings(registrar, aor, timeout);
      const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
      std::cout << (json ? formatBindingsJson(bindings) : formatFlowsTable(bindings, now));
      return 0;
    }
    if (health->parsed()) {
      const HealthState state = checkHealth(target, service, timeout);
      if (!quiet) {
        std::cout << target << (service.empty() ? "" : " " + service) << ": "
                  << healthStateName(state) << '\n';
      }
      return state == HealthState::Serving ? 0 : 1;
    }
    if (watch->parsed()) {
      long seen = 0;
      watchBindings(registrar, aor, snapshot, timeout, [&](const medius::v1::BindingEvent& e) {
        std::cout << (json ? formatEventJson(e) : formatEventLine(e)) << std::flush;
        ++seen;
        return count == 0 || seen < count;
      });
      return 0;
    }
  } catch (const CallError& e) {
    std::cerr << "medctl: " << e.what() << '\n';
    return 1;
  }
  return 2;
}
