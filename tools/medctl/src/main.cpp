// medctl: operator CLI for Medius. Thin: flags here, logic in medius_medctl.
//   medctl registrations [AOR] [--registrar HOST:PORT] [--json]
//   medctl health [--target HOST:PORT] [--service NAME]
//   medctl watch [AOR] [--registrar HOST:PORT] [--snapshot] [--json] [--count N]
// Exit codes: 0 success, 1 the call failed (or not SERVING), 2 usage error.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "medius/medctl/client.hpp"
#include "medius/medctl/format.hpp"

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

  std::string aor;
  bool json = false;
  auto* registrations =
      app.add_subcommand("registrations", "List registered bindings (all AORs, or one)");
  registrations->add_option("aor", aor, "Only this address-of-record, e.g. sip:alice@example.com");
  registrations->add_option("--registrar", registrar,
                            "Registrar gRPC address (env MEDIUS_REGISTRAR_ADDRESS)");
  registrations->add_flag("--json", json, "Print JSON instead of a table");

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  const auto timeout = std::chrono::milliseconds(timeoutMs);

  try {
    if (registrations->parsed()) {
      const auto bindings = listBindings(registrar, aor, timeout);
      std::cout << (json ? formatBindingsJson(bindings) : formatBindingsTable(bindings));
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
