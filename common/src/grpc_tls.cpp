#include "medius/common/grpc_tls.hpp"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <arpa/inet.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "medius/common/config.hpp"

namespace medius {

namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string pemFile(config::Object& o, const char* key, const std::string& baseDir, bool privateKey) {
  std::string path = o.requireString(key);
  if (path.empty()) o.fail(key, "is empty");
  std::filesystem::path p(path);
  if (p.is_relative() && !baseDir.empty()) p = std::filesystem::path(baseDir) / p;
  std::string text = readFile(p.string());
  if (text.empty()) o.fail(key, "cannot read " + p.string());
  bool ok = privateKey ? text.find("PRIVATE KEY-----") != std::string::npos
                       : text.find("-----BEGIN CERTIFICATE-----") != std::string::npos;
  if (!ok) {
    o.fail(key, p.string() + " holds no PEM " + (privateKey ? "private key" : "certificate"));
  }
  return p.string();
}

std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider(const GrpcTls& tls) {
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.keyFile, tls.certFile, tls.caFile, kGrpcTlsReloadSeconds);
}

std::mutex clientMutex;
std::optional<GrpcTls> clientTls;
std::shared_ptr<grpc::ChannelCredentials> clientTlsCredentials;

}  // namespace

std::optional<GrpcTls> readGrpcTls(config::Object& service, const std::string& baseDir) {
  std::optional<config::Object> o = service.optionalObject("grpc_tls");
  if (!o) return std::nullopt;
  GrpcTls tls;
  tls.caFile = pemFile(*o, "ca", baseDir, false);
  tls.certFile = pemFile(*o, "cert", baseDir, false);
  tls.keyFile = pemFile(*o, "key", baseDir, true);
  tls.requireClientCert = o->boolean("require_client_cert", true);
  o->finish();
  return tls;
}

namespace {

// "host:port", "[v6]:port" or a bare host: inside 127.0.0.0/8, ::1 or localhost.
bool isLoopbackHostPort(std::string_view host) {
  if (host.starts_with("[")) {
    auto close = host.find(']');
    host = close == std::string_view::npos ? host : host.substr(1, close - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(':') == colon) {
    host = host.substr(0, colon);
  }
  if (host == "localhost" || host == "::1") return true;
  if (!host.starts_with("127.")) return false;
  // A dotted quad inside 127.0.0.0/8, nothing else (not "127.example.com").
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

// The comma-separated addresses of an "ipv4:"/"ipv6:" target (scheme removed).
std::vector<std::string_view> splitAddresses(std::string_view list) {
  std::vector<std::string_view> out;
  while (true) {
    auto comma = list.find(',');
    out.push_back(list.substr(0, comma));
    if (comma == std::string_view::npos) return out;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

bool isLoopbackTarget(std::string_view target) {
  if (target.starts_with("unix:") || target.starts_with("unix-abstract:")) return true;
  // gRPC's static address lists: loopback only when every address is.
  for (std::string_view scheme : {"ipv4:", "ipv6:"}) {
    if (target.starts_with(scheme)) {
      target.remove_prefix(scheme.size());
      auto addresses = splitAddresses(target);
      return std::all_of(addresses.begin(), addresses.end(), [](std::string_view a) {
        return !a.empty() && isLoopbackHostPort(a);
      });
    }
  }
  for (std::string_view scheme : {"dns:///", "dns:"}) {
    if (target.starts_with(scheme)) {
      target.remove_prefix(scheme.size());
      break;
    }
  }
  return isLoopbackHostPort(target);
}

void checkGrpcTarget(std::string_view target) {
  for (auto [scheme, family] : {std::pair<std::string_view, int>{"ipv4:", AF_INET},
                                std::pair<std::string_view, int>{"ipv6:", AF_INET6}}) {
    if (!target.starts_with(scheme)) continue;
    for (std::string_view address : splitAddresses(target.substr(scheme.size()))) {
      auto hostPort = config::parseHostPort(address);
      unsigned char binary[sizeof(in6_addr)];
      if (::inet_pton(family, hostPort.host.c_str(), binary) != 1) {
        throw std::invalid_argument("\"" + std::string(address) + "\" in " + std::string(target) +
                                    " is not a numeric " +
                                    (family == AF_INET ? "IPv4" : "IPv6") + " host:port");
      }
    }
    return;
  }
  config::parseHostPort(target);
}

void requireTlsOrLoopback(config::Object& o, std::string_view key, const std::string& target, bool tls) {
  if (tls || isLoopbackTarget(target)) return;
  o.fail(key, target + " is not a loopback address: plaintext gRPC only on loopback, configure "
                       "service.grpc_tls (CA, certificate, key) to call it");
}

std::shared_ptr<grpc::ServerCredentials> serverCredentials(const std::optional<GrpcTls>& tls) {
  if (!tls) return grpc::InsecureServerCredentials();
  grpc::experimental::TlsServerCredentialsOptions options(provider(*tls));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(tls->requireClientCert
                                    ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                    : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
}

void setClientTls(std::optional<GrpcTls> tls) {
  std::lock_guard lock(clientMutex);
  clientTls = std::move(tls);
  clientTlsCredentials.reset();
  if (clientTls) {
    grpc::experimental::TlsChannelCredentialsOptions options;
    options.set_certificate_provider(provider(*clientTls));
    options.watch_root_certs();
    options.watch_identity_key_cert_pairs();
    clientTlsCredentials = grpc::experimental::TlsCredentials(options);
  }
}

std::shared_ptr<grpc::ChannelCredentials> clientCredentials(const std::string& target) {
  std::lock_guard lock(clientMutex);
  if (clientTlsCredentials) return clientTlsCredentials;
  if (!isLoopbackTarget(target)) {
    throw std::invalid_argument("plaintext gRPC to " + target +
                                ", which is not a loopback address: configure service.grpc_tls");
  }
  return grpc::InsecureChannelCredentials();
}

}  // namespace medius
