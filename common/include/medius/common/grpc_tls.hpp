// TLS between the cluster's own services (issue 7): gRPC servers and clients with mutual
// authentication from certificate files, and plaintext only on loopback.
//
// Config (the "service" block of every service, see readServiceSettings):
//   "grpc_tls": {"ca": "ca.pem", "cert": "svc.pem", "key": "svc.key",
//                "require_client_cert": true}
// `ca` verifies the peer (clients' certificates on the server, the server's on a client),
// `cert`/`key` are this service's identity, presented both as a server and as a client.
// Relative paths are taken from the config file's directory. The files are watched
// (gRPC's FileWatcherCertificateProvider, every kReloadSeconds): renewed certificates are
// taken without a restart. TLS 1.2 or newer (gRPC's own floor).
//
// Without "grpc_tls" the service speaks plaintext gRPC, and then only on loopback: a
// grpc_listen, or an address this service calls, that is not 127.0.0.0/8, ::1 or
// localhost is refused (a config error naming the field, or std::invalid_argument from
// clientCredentials()).
//
// Thread: setClientTls() once in main() before any client exists; the rest is pure or
// read-only.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace grpc {
class ServerCredentials;
class ChannelCredentials;
}  // namespace grpc

namespace medius {

namespace config {
class Object;
}

struct GrpcTls {
  std::string caFile;
  std::string certFile;
  std::string keyFile;
  bool requireClientCert = true;
};

// How often certificate files are checked for a change.
constexpr unsigned kGrpcTlsReloadSeconds = 60;

// Reads "grpc_tls" of a service block: nullopt when absent. Each file must exist and hold
// PEM of its kind (certificate or private key); errors name the file's field.
// `baseDir` resolves relative paths (the config file's directory).
std::optional<GrpcTls> readGrpcTls(config::Object& service, const std::string& baseDir);

// True for 127.0.0.0/8, ::1 and localhost, as "host:port", "[::1]:port", "ipv4:..." or
// "unix:..." gRPC targets; an "ipv4:"/"ipv6:" address list only when every address is.
bool isLoopbackTarget(std::string_view target);

// Checks an address a service calls: "host:port", "[v6]:port", or gRPC's static list of
// replicas "ipv4:a.b.c.d:port,a.b.c.d:port" ("ipv6:[..]:port,..."; numeric hosts only), which
// the channel tries in order (pick_first: the first that connects takes the calls; when it
// goes away the next RPC connects to the next one). Throws std::invalid_argument naming the
// problem.
void checkGrpcTarget(std::string_view target);

// Credentials for a server: TLS (client certificates verified against the CA, and
// required unless require_client_cert is false) or, without tls, plaintext.
std::shared_ptr<grpc::ServerCredentials> serverCredentials(const std::optional<GrpcTls>& tls);

// Fails (config error naming `key` of `o`) when `target`, an address this service calls,
// would be reached in plaintext (`tls` false) and is not loopback.
void requireTlsOrLoopback(config::Object& o, std::string_view key, const std::string& target, bool tls);

// The TLS every gRPC client of this process uses (nullopt: plaintext, loopback only).
void setClientTls(std::optional<GrpcTls> tls);
// Credentials to call `target`; throws std::invalid_argument for plaintext to an address
// that is not loopback.
std::shared_ptr<grpc::ChannelCredentials> clientCredentials(const std::string& target);

}  // namespace medius
