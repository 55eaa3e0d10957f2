// SIP over TLS for the gateway's internal side (issue 7 item 1): the certificate files
// checked with OpenSSL, handed to Sofia-SIP, and then managed in Sofia's own SSL_CTX.
//
// Why this much, for Sofia-SIP 1.12.11 (docs/security.md, /work/shared/SOFIA.md 3):
// - TPTAG_CERTIFICATE takes a *directory* (agent.pem = key + chain, cafile.pem) and fails
//   silently on a bad one (the port listens, every handshake fails). loadTlsCredentials()
//   checks the files first and throws naming the file and the problem; SofiaCertDir
//   composes the directory (0700, files 0600) for the one call that binds, and removes it.
// - It has no tags for the TLS version, the ciphers, a certificate chain file or a
//   reload. SipTls captures the SSL_CTX Sofia creates while the TLS primary is bound (an
//   OpenSSL ex_data "new" callback of the SSL_CTX class, armed on this thread for that
//   call only) and sets, through OpenSSL's public API: TLS 1.2 minimum, the cipher list,
//   the full chain, the CA store, the client-certificate policy, and an info callback
//   that counts refused handshakes. A reload replaces certificate, key and CA in that
//   context: new connections get the new certificate, existing ones go on untouched.
//   (Sofia cannot remove one primary transport and re-add it: only tport_destroy of the
//   whole master, i.e. of the nta agent, frees a primary.)
//
// Thread: SipTls is created, used and destroyed on the SIP loop; OpenSSL calls its
// callbacks from Sofia's SSL_accept/SSL_read on that same thread.
#pragma once

#include <sys/stat.h>

#include <ctime>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "medius/gateway/config.hpp"

namespace medius::gateway {

class GatewayMetrics;
class TrunkLocator;

// Which side a TLS listener serves. On the trunk side every peer is a trunk reached over
// TLS: the handshake (either direction) succeeds only when the peer's certificate
// verifies against the CA and names the tls_name of the trunk at the connection's address
// (X509_check_host / X509_check_ip_asc: SAN DNS or IP, CN only without SANs, a wildcard
// for one label); our outgoing connections send that name as SNI.
enum class SipTlsSide { Internal, Trunk };

// A problem with one of the files; field() is its config key ("cert", "key", "ca").
class TlsFileError : public std::runtime_error {
 public:
  TlsFileError(std::string field, const std::string& message)
      : std::runtime_error(message), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// The server identity and the CAs, parsed and checked.
struct TlsCredentials {
  X509Ptr leaf;                // the first certificate of `cert`
  std::vector<X509Ptr> chain;  // the rest of `cert` (intermediates), in file order
  PkeyPtr key;
  std::vector<X509Ptr> cas;    // every certificate of `ca` (empty without `ca`)
  std::string subject;         // of the leaf, one line ("CN=gw.example.com")
  std::string serial;          // hex
  std::time_t notAfter = 0;
};

// Reads and checks the files of `s`: each readable and PEM of its kind, the key
// unencrypted and matching the certificate, the certificate valid at `now` (not expired,
// not before its start), the CA file holding at least one certificate. Throws
// TlsFileError ("/path/gw.pem: certificate expired on 2026-01-01 00:00:00 UTC").
TlsCredentials loadTlsCredentials(const SipTlsSettings& s, std::time_t now);

// The directory Sofia's TPTAG_CERTIFICATE reads: agent.pem (key + chain) and cafile.pem
// (the CAs, or the chain when there are none: Sofia refuses to start without one). Made
// with mkdtemp (0700) under $XDG_RUNTIME_DIR or the temp directory, files 0600; removed
// by the destructor. Throws std::runtime_error.
class SofiaCertDir {
 public:
  explicit SofiaCertDir(const TlsCredentials& credentials);
  ~SofiaCertDir();
  SofiaCertDir(const SofiaCertDir&) = delete;
  SofiaCertDir& operator=(const SofiaCertDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// True when one of `subjects` (a verified peer certificate's CN and SAN DNS names, as
// Sofia lists them) equals one of `trusted`, ignoring case. No wildcards.
bool subjectsTrusted(const std::vector<std::string>& subjects,
                     const std::vector<std::string>& trusted);

// True when the certificate `leaf` names `name`: an IP literal against its SAN IP
// addresses, a DNS name against its SAN DNS names (its CN only when it has none), a
// certificate wildcard covering one whole label (X509_check_host).
bool certificateNames(X509* leaf, const std::string& name);

// Label values of medius_gateway_tls_handshakes_total{result}.
inline constexpr const char* kTlsHandshakeResults[] = {
    "ok", "protocol_version", "no_certificate", "bad_certificate", "handshake_failure",
    "peer_alert", "banned_source", "other"};

class SipTls {
 public:
  // Checks the files, then calls bind(dir) (which must add the TLS transport with
  // TPTAG_CERTIFICATE(dir) and return nta_agent_add_tport's result) and takes over the
  // SSL_CTX Sofia made. Throws TlsFileError or std::runtime_error.
  SipTls(const SipTlsSettings& settings, GatewayMetrics& metrics,
         const std::function<int(const char* dir)>& bind,
         SipTlsSide side = SipTlsSide::Internal);
  ~SipTls();
  SipTls(const SipTls&) = delete;
  SipTls& operator=(const SipTls&) = delete;

  // Re-reads the files when one changed (size, mtime, inode), or always with `force`
  // (SIGHUP). Bad new files are logged and counted, the current certificate stays.
  // Returns true when a new certificate was installed.
  bool reload(bool force);
  const TlsCredentials& credentials() const { return current_; }
  // The trunks whose names the trunk side pins (null: every trunk-side handshake fails).
  // Loop thread, like the handshakes that read it.
  void setTrunkLocator(const TrunkLocator* trunks) { trunks_ = trunks; }
  // Asked at every incoming connection's ClientHello with the peer's address, before any
  // crypto: false refuses the handshake (a banned or flooding source: the flood guard).
  using ConnectionGate = std::function<bool(const std::string& host, std::uint32_t port)>;
  void setConnectionGate(ConnectionGate gate) { gate_ = std::move(gate); }

 private:
  struct FileStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    std::timespec mtime{};
    bool operator==(const FileStamp& o) const;
  };
  std::vector<FileStamp> stamps() const;
  void install(const TlsCredentials& c);
  static void infoCallback(const SSL* ssl, int where, int ret);
  static int verifyCallback(int ok, X509_STORE_CTX* store);
  static int clientHelloCallback(SSL* ssl, int* alert, void* arg);
  // Trunk side: whether `leaf`, presented on ssl's connection, carries the tls_name of the
  // trunk at the connection's peer address; `why` says what failed.
  bool trunkCertificateNamed(SSL* ssl, X509* leaf, std::string& why) const;
  // Trunk side, our outgoing connection: the SNI name (the trunk's tls_name when it is a
  // DNS name).
  void setServerName(SSL* ssl) const;

  SipTlsSettings settings_;
  GatewayMetrics& metrics_;
  SipTlsSide side_;
  const TrunkLocator* trunks_ = nullptr;
  ConnectionGate gate_;
  std::vector<SSL_CTX*> contexts_;  // one reference each (SSL_CTX_up_ref)
  TlsCredentials current_;
  std::vector<FileStamp> stamps_;
  std::vector<FileStamp> failedStamps_;  // the last files that failed (logged once)
};

}  // namespace medius::gateway
