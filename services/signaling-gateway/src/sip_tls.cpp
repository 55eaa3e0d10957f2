#include "medius/gateway/sip_tls.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sofia-sip/su_alloc.h>

#include "medius/common/logging.hpp"
#include "medius/gateway/metrics.hpp"
#include "medius/gateway/trunk_locator.hpp"

namespace medius::gateway {

namespace {

std::string opensslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no PEM data of that kind";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string timeText(const ASN1_TIME* t) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return "?";
  ASN1_TIME_print(bio, t);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data ? data : "", n > 0 ? static_cast<std::size_t>(n) : 0);
  BIO_free(bio);
  return out;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};

// PEM files are small: a path to a device, a directory or a huge file is refused before
// OpenSSL reads it (a PEM reader fed /dev/zero would never return).
constexpr off_t kMaxPemBytes = 1 << 20;

std::unique_ptr<BIO, BioDeleter> openPem(const std::string& field, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) throw TlsFileError(field, path + ": not a regular file");
    if (st.st_size > kMaxPemBytes) throw TlsFileError(field, path + ": larger than 1 MiB");
  }
  errno = 0;
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    int err = errno;
    ERR_clear_error();
    throw TlsFileError(field, path + ": cannot read: " + (err ? std::strerror(err) : "unknown error"));
  }
  return bio;
}

std::vector<X509Ptr> readCertificates(const std::string& field, const std::string& path) {
  auto bio = openPem(field, path);
  std::vector<X509Ptr> out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  // The loop ends on "no start line" after the last certificate; anything else is a
  // broken PEM block.
  unsigned long e = ERR_peek_last_error();
  if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
    throw TlsFileError(field, path + ": broken PEM certificate: " + opensslError());
  }
  ERR_clear_error();
  if (out.empty()) throw TlsFileError(field, path + ": holds no PEM certificate");
  return out;
}

int noPassphrase(char*, int, int, void*) { return -1; }

std::string oneLine(X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return "?";
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data ? data : "", n > 0 ? static_cast<std::size_t>(n) : 0);
  BIO_free(bio);
  return out;
}

// The SSL_CTXs created on this thread while armed (SipTls's constructor, around bind).
thread_local std::vector<SSL_CTX*>* tCapture = nullptr;

void onNewContext(void* parent, void*, CRYPTO_EX_DATA*, int, long, void*) {
  if (tCapture && parent) tCapture->push_back(static_cast<SSL_CTX*>(parent));
}

// One SSL_CTX ex_data index: its "new" callback captures, its slot points to the SipTls.
int contextIndex() {
  static const int index =
      CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, nullptr, &onNewContext, nullptr, nullptr);
  return index;
}

// Per connection: set once its handshake was counted.
int connectionIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string_view alertResult(int alert) {
  switch (alert) {
    case 70:  // protocol_version: TLS 1.0/1.1 (or SSL) offered
      return "protocol_version";
    case 116:  // certificate_required (TLS 1.3)
      return "no_certificate";
    case 42: case 43: case 44: case 45: case 46: case 48: case 49: case 51:
      return "bad_certificate";  // bad, unsupported, revoked, expired, unknown, unknown_ca...
    case 40:  // handshake_failure: no shared cipher, no certificate under TLS 1.2
      return "handshake_failure";
    default:
      return "other";
  }
}

// The contexts SipTls manages (any SIP loop of the process; tls_free below reads it).
std::mutex gManagedMutex;
std::vector<SSL_CTX*> gManaged;

bool managed(SSL_CTX* ctx) {
  std::lock_guard lock(gManagedMutex);
  return std::find(gManaged.begin(), gManaged.end(), ctx) != gManaged.end();
}

// The first members of Sofia's struct tls_s (tport_tls.c), as Debian's 1.12.11 binary
// uses them (tls_free: ctx at +0x18, con at +0x20, bio_con at +0x28, the type bit at
// +0x30 bit 0: 0 = "master", whose tls_free also does SSL_CTX_free).
struct SofiaTlsHead {
  su_home_t home[1];
  SSL_CTX* ctx;
  SSL* con;
  BIO* bio_con;
  unsigned int type : 1;
};

}  // namespace

// Sofia-SIP 1.12.11's tls_free() shuts a connection's SSL down and frees its BIO but never
// calls SSL_free(): every TLS connection leaked its SSL object and buffers (about 60 KB;
// LeakSanitizer on tests/gateway/sip_tls_test.cpp; Debian's binary does SSL_shutdown,
// SSL_CTX_free for the master, BIO_free, su_home_unref, and SSL_free only in its STUN
// code). Sofia calls tls_free through its PLT and the executable exports this definition
// (CMake: --export-dynamic-symbol=tls_free), so this one runs: for a connection of a
// context SipTls manages (recognised by pointer comparison before anything is read
// through the pointers) it takes one more reference on the BIO, lets Sofia's tls_free do
// its part (its BIO_free then drops only that reference), and frees the SSL, which frees
// the BIO. Sofia's tls_init_secondary copies the master's type into each connection, so
// its tls_free also drops one reference on the shared SSL_CTX per connection (which
// balanced the reference the leaked SSL kept): one more reference is taken for that too.
// Anything else goes to Sofia's unchanged.
extern "C" void tls_free(void* tls) {
  using Fn = void (*)(void*);
  static const Fn real = [] {
    void* symbol = dlsym(RTLD_NEXT, "tls_free");
    Fn fn = nullptr;
    std::memcpy(&fn, &symbol, sizeof fn);
    return fn;
  }();
  if (!real) std::abort();  // only Sofia calls this, so Sofia's is there
  SSL* con = nullptr;
  if (tls) {
    auto* head = static_cast<SofiaTlsHead*>(tls);
    if (head->con && head->bio_con && managed(head->ctx) &&
        SSL_get_SSL_CTX(head->con) == head->ctx && SSL_get_rbio(head->con) == head->bio_con) {
      con = head->con;
      BIO_up_ref(head->bio_con);
      if ((head->type & 1U) == 0) SSL_CTX_up_ref(head->ctx);  // Sofia's SSL_CTX_free takes it
    }
  }
  real(tls);
  if (con) SSL_free(con);
}

namespace {

// The subjectAltName method as libcrypto has it, and the copy Sofia is handed instead.
const X509V3_EXT_METHOD* gSanMethod = nullptr;
X509V3_EXT_METHOD gSanForSofia{};
std::once_flag gSanOnce;

struct ConfValuesFree {
  void operator()(STACK_OF(CONF_VALUE) * values) const {
    sk_CONF_VALUE_pop_free(values, X509V3_conf_free);
  }
};
// The name list Sofia is reading: freed at its next one, or when the thread ends.
thread_local std::unique_ptr<STACK_OF(CONF_VALUE), ConfValuesFree> tSofiaSanValues;

STACK_OF(CONF_VALUE) * sofiaSanI2v(const X509V3_EXT_METHOD* /*copy*/, void* names,
                                   STACK_OF(CONF_VALUE) * list) {
  STACK_OF(CONF_VALUE)* values = gSanMethod->i2v(gSanMethod, names, list);
  // Sofia passes what X509V3_EXT_d2i decoded and never reads it again.
  ASN1_item_free(static_cast<ASN1_VALUE*>(names), ASN1_ITEM_ptr(gSanMethod->it));
  if (!list) tSofiaSanValues.reset(values);
  return values;
}

bool calledFromSofia(const void* returnAddress) {
  static const void* sofiaBase = [] {
    void* symbol = dlsym(RTLD_DEFAULT, "tls_connect");
    Dl_info info{};
    return symbol && dladdr(symbol, &info) ? info.dli_fbase : nullptr;
  }();
  Dl_info info{};
  return sofiaBase && dladdr(returnAddress, &info) && info.dli_fbase == sofiaBase;
}

}  // namespace

// Sofia-SIP 1.12.11's tls_post_connection_check (tls_connect runs it when a handshake
// ends) copies the peer certificate's subjectAltName names into the connection's subject
// list (what tport_delivered_from_subjects gives Gateway::fromTrustedPeer) through
// X509V3_EXT_get, X509V3_EXT_d2i and the method's i2v, and frees neither the decoded
// GENERAL_NAMES nor the CONF_VALUE list i2v makes: about 150 bytes for every connection
// whose peer sent a certificate (LeakSanitizer, e2e test_tls MutualTls). Exported like
// tls_free above (--export-dynamic-symbol=X509V3_EXT_get), this X509V3_EXT_get hands a
// caller inside Sofia's library a copy of the subjectAltName method whose i2v frees the
// GENERAL_NAMES once converted (Sofia's next statement is its loop over the list) and
// keeps the list until the same thread's next one, or its end: Sofia reads it only in that
// loop. Every other caller, OpenSSL's own included, gets libcrypto's method unchanged.
extern "C" const X509V3_EXT_METHOD* X509V3_EXT_get(X509_EXTENSION* ext) {
  using Fn = const X509V3_EXT_METHOD* (*)(X509_EXTENSION*);
  static const Fn real = [] {
    void* symbol = dlsym(RTLD_NEXT, "X509V3_EXT_get");
    Fn fn = nullptr;
    std::memcpy(&fn, &symbol, sizeof fn);
    return fn;
  }();
  if (!real) std::abort();  // libcrypto is linked in, so it is there
  const X509V3_EXT_METHOD* method = real(ext);
  if (method && method->ext_nid == NID_subject_alt_name && method->it && method->i2v &&
      calledFromSofia(__builtin_return_address(0))) {
    std::call_once(gSanOnce, [method] {
      gSanMethod = method;
      gSanForSofia = *method;
      gSanForSofia.i2v = &sofiaSanI2v;
    });
    if (method == gSanMethod) return &gSanForSofia;
  }
  return method;
}

TlsCredentials loadTlsCredentials(const SipTlsSettings& s, std::time_t now) {
  TlsCredentials c;
  auto certs = readCertificates("cert", s.certFile);
  c.leaf = std::move(certs.front());
  for (std::size_t i = 1; i < certs.size(); ++i) c.chain.push_back(std::move(certs[i]));
  {
    auto bio = openPem("key", s.keyFile);
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, &noPassphrase, nullptr);
    if (!key) {
      std::string why = opensslError();
      bool encrypted = why.find("bad password") != std::string::npos ||
                       why.find("bad decrypt") != std::string::npos ||
                       why.find("interrupted or cancelled") != std::string::npos ||
                       why.find("problems getting password") != std::string::npos;
      throw TlsFileError("key", s.keyFile + (encrypted ? ": the private key is encrypted (a "
                                                         "passphrase is not supported)"
                                                       : ": holds no PEM private key (" + why + ")"));
    }
    c.key.reset(key);
  }
  if (X509_check_private_key(c.leaf.get(), c.key.get()) != 1) {
    ERR_clear_error();
    throw TlsFileError("key", s.keyFile + ": the private key does not match the certificate in " +
                                  s.certFile);
  }
  const ASN1_TIME* notBefore = X509_get0_notBefore(c.leaf.get());
  const ASN1_TIME* notAfter = X509_get0_notAfter(c.leaf.get());
  std::time_t t = now;
  if (X509_cmp_time(notAfter, &t) <= 0) {
    throw TlsFileError("cert", s.certFile + ": certificate expired on " + timeText(notAfter));
  }
  if (X509_cmp_time(notBefore, &t) >= 0) {
    throw TlsFileError("cert", s.certFile + ": certificate not valid before " + timeText(notBefore));
  }
  struct tm tmAfter {};
  if (ASN1_TIME_to_tm(notAfter, &tmAfter) == 1) c.notAfter = timegm(&tmAfter);
  c.subject = oneLine(X509_get_subject_name(c.leaf.get()));
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c.leaf.get()), nullptr)) {
    char* hex = BN_bn2hex(bn);
    c.serial = hex ? hex : "";
    OPENSSL_free(hex);
    BN_free(bn);
  }
  if (!s.caFile.empty()) c.cas = readCertificates("ca", s.caFile);
  return c;
}

SofiaCertDir::SofiaCertDir(const TlsCredentials& credentials) {
  std::string base;
  if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run && *run) {
    base = run;
  } else {
    std::error_code ec;
    base = std::filesystem::temp_directory_path(ec).string();
    if (ec || base.empty()) base = "/tmp";
  }
  std::string pattern = base + "/medius-sip-tls-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    throw std::runtime_error("cannot create a private directory for Sofia's TLS files in " + base +
                             ": " + std::strerror(errno));
  }
  path_ = buf.data();
  auto write = [this](const char* name, const std::function<bool(BIO*)>& fill) {
    std::string file = path_ + "/" + name;
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot create " + file + ": " + std::strerror(errno));
    BIO* bio = BIO_new_fd(fd, BIO_CLOSE);
    bool ok = bio && fill(bio) && BIO_flush(bio) == 1;
    if (bio) {
      BIO_free(bio);
    } else {
      ::close(fd);
    }
    if (!ok) throw std::runtime_error("cannot write " + file);
  };
  try {
    write("agent.pem", [&](BIO* bio) {
      if (PEM_write_bio_PrivateKey(bio, credentials.key.get(), nullptr, nullptr, 0, nullptr,
                                   nullptr) != 1) {
        return false;
      }
      if (PEM_write_bio_X509(bio, credentials.leaf.get()) != 1) return false;
      for (const auto& x : credentials.chain) {
        if (PEM_write_bio_X509(bio, x.get()) != 1) return false;
      }
      return true;
    });
    write("cafile.pem", [&](BIO* bio) {
      if (credentials.cas.empty()) return PEM_write_bio_X509(bio, credentials.leaf.get()) == 1;
      for (const auto& x : credentials.cas) {
        if (PEM_write_bio_X509(bio, x.get()) != 1) return false;
      }
      return true;
    });
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    throw;
  }
}

SofiaCertDir::~SofiaCertDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool subjectsTrusted(const std::vector<std::string>& subjects,
                     const std::vector<std::string>& trusted) {
  for (const auto& s : subjects) {
    for (const auto& t : trusted) {
      if (!s.empty() && strcasecmp(s.c_str(), t.c_str()) == 0) return true;
    }
  }
  return false;
}

bool SipTls::FileStamp::operator==(const FileStamp& o) const {
  return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
         mtime.tv_nsec == o.mtime.tv_nsec;
}

SipTls::SipTls(const SipTlsSettings& settings, GatewayMetrics& metrics,
               const std::function<int(const char* dir)>& bind, SipTlsSide side)
    : settings_(settings), metrics_(metrics), side_(side) {
  stamps_ = stamps();
  current_ = loadTlsCredentials(settings_, std::time(nullptr));
  {
    SofiaCertDir dir(current_);
    std::vector<SSL_CTX*> created;
    (void)contextIndex();  // registered before Sofia makes its context
    tCapture = &created;
    int rc = -1;
    try {
      rc = bind(dir.path().c_str());
    } catch (...) {
      tCapture = nullptr;
      throw;
    }
    tCapture = nullptr;
    if (rc < 0) throw std::runtime_error(std::string("cannot listen: ") + std::strerror(errno));
    if (created.empty()) {
      // A Sofia that made no SSL_CTX of its own (another version): we could neither set the
      // TLS floor nor reload, so do not serve TLS at all.
      throw std::runtime_error("Sofia-SIP created no TLS context: TLS settings cannot be applied");
    }
    for (SSL_CTX* ctx : created) {
      SSL_CTX_up_ref(ctx);
      contexts_.push_back(ctx);
      std::lock_guard lock(gManagedMutex);
      gManaged.push_back(ctx);
    }
  }  // Sofia read the directory while binding: it is removed here
  for (SSL_CTX* ctx : contexts_) {
    SSL_CTX_set_ex_data(ctx, contextIndex(), this);
    // Sofia 1.12.11 has no tags for these (SOFIA.md 3).
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    if (SSL_CTX_set_cipher_list(ctx, settings_.ciphers.c_str()) != 1) {
      ERR_clear_error();
      throw std::runtime_error("cipher list \"" + settings_.ciphers + "\" refused by OpenSSL");
    }
    // Ours instead of Sofia's tls_verify_cb, which clears every verification error when
    // Sofia's own policy does not verify incoming connections: a certificate is either
    // verified by the CA or refused. Required (mutual TLS): no certificate is refused too.
    int mode = SSL_VERIFY_NONE;
    if (!settings_.caFile.empty()) {
      mode = SSL_VERIFY_PEER | (settings_.requireClientCert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    }
    SSL_CTX_set_verify(ctx, mode, &SipTls::verifyCallback);
    SSL_CTX_set_info_callback(ctx, &SipTls::infoCallback);
    SSL_CTX_set_client_hello_cb(ctx, &SipTls::clientHelloCallback, nullptr);
  }
  install(current_);
}

SipTls::~SipTls() {
  for (SSL_CTX* ctx : contexts_) {
    {
      std::lock_guard lock(gManagedMutex);
      gManaged.erase(std::remove(gManaged.begin(), gManaged.end(), ctx), gManaged.end());
    }
    SSL_CTX_set_info_callback(ctx, nullptr);
    SSL_CTX_set_client_hello_cb(ctx, nullptr, nullptr);
    SSL_CTX_set_ex_data(ctx, contextIndex(), nullptr);
    SSL_CTX_free(ctx);
  }
}

void SipTls::install(const TlsCredentials& c) {
  for (SSL_CTX* ctx : contexts_) {
    STACK_OF(X509)* chain = sk_X509_new_null();
    for (const auto& x : c.chain) sk_X509_push(chain, x.get());
    // One call replaces certificate, key and chain together (override = 1): there is
    // never a moment with a new certificate and an old key.
    int ok = SSL_CTX_use_cert_and_key(ctx, c.leaf.get(), c.key.get(), chain, 1);
    sk_X509_free(chain);  // the context took its own references
    if (ok != 1) {
      std::string why = opensslError();
      throw std::runtime_error("OpenSSL refused the certificate: " + why);
    }
    X509_STORE* store = X509_STORE_new();
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    for (const auto& ca : c.cas) {
      X509_STORE_add_cert(store, ca.get());
      sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(ca.get())));
    }
    ERR_clear_error();
    SSL_CTX_set_cert_store(ctx, store);         // frees the previous one
    SSL_CTX_set_client_CA_list(ctx, names);     // likewise
  }
  metrics_.setTlsCertificateExpiry(static_cast<double>(c.notAfter));
}

std::vector<SipTls::FileStamp> SipTls::stamps() const {
  std::vector<FileStamp> out;
  for (const std::string* f : {&settings_.certFile, &settings_.keyFile, &settings_.caFile}) {
    FileStamp stamp;
    struct stat st {};
    if (!f->empty() && ::stat(f->c_str(), &st) == 0) {
      stamp.dev = st.st_dev;
      stamp.ino = st.st_ino;
      stamp.size = st.st_size;
      stamp.mtime = st.st_mtim;
    }
    out.push_back(stamp);
  }
  return out;
}

bool SipTls::reload(bool force) {
  auto now = stamps();
  if (!force && now == stamps_) return false;
  try {
    TlsCredentials fresh = loadTlsCredentials(settings_, std::time(nullptr));
    install(fresh);
    current_ = std::move(fresh);
    stamps_ = std::move(now);
    failedStamps_.clear();
    metrics_.countTlsReload(true);
    log::get("sip")->info("TLS certificate reloaded: {} (serial {}), valid until {}",
                          current_.subject, current_.serial,
                          static_cast<long long>(current_.notAfter));
    return true;
  } catch (const std::exception& e) {
    // Files being replaced may be caught half-written: tried again at the next check,
    // logged and counted once per state of the files.
    if (force || now != failedStamps_) {
      metrics_.countTlsReload(false);
      log::get("sip")->error("TLS certificate not reloaded, the current one stays: {}", e.what());
      failedStamps_ = std::move(now);
    }
    return false;
  }
}

int SipTls::verifyCallback(int ok, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const auto* self =
      ssl ? static_cast<SipTls*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), contextIndex()))
          : nullptr;
  const char* whose = ssl && !SSL_is_server(ssl) ? "server" : "client";
  if (!ok) {
    int err = X509_STORE_CTX_get_error(store);
    log::get("sip")->debug("TLS {} certificate refused at depth {}: {}", whose,
                           X509_STORE_CTX_get_error_depth(store), X509_verify_cert_error_string(err));
    return ok;
  }
  if (self && self->side_ == SipTlsSide::Trunk && X509_STORE_CTX_get_error_depth(store) == 0) {
    std::string why;
    if (!self->trunkCertificateNamed(ssl, X509_STORE_CTX_get_current_cert(store), why)) {
      X509_STORE_CTX_set_error(store, X509_V_ERR_HOSTNAME_MISMATCH);
      log::get("sip")->warn("TLS {} certificate refused on the trunk side: {}", whose, why);
      return 0;
    }
  }
  return ok;
}

namespace {

// The connection's peer address, as the gateway writes a request's source.
bool peerOf(SSL* ssl, std::string& host, std::uint32_t& port) {
  int fd = SSL_get_fd(ssl);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (fd < 0 || ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  char text[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    sockaddr_in sin{};
    std::memcpy(&sin, &ss, sizeof sin);
    inet_ntop(AF_INET, &sin.sin_addr, text, sizeof text);
    port = ntohs(sin.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sin6{};
    std::memcpy(&sin6, &ss, sizeof sin6);
    inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof text);
    port = ntohs(sin6.sin6_port);
  } else {
    return false;
  }
  host = text;
  return true;
}

bool isIpLiteral(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

bool certificateNames(X509* leaf, const std::string& name) {
  if (!leaf || name.empty()) return false;
  if (isIpLiteral(name)) return X509_check_ip_asc(leaf, name.c_str(), 0) == 1;
  return X509_check_host(leaf, name.data(), name.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                         nullptr) == 1;
}

bool SipTls::trunkCertificateNamed(SSL* ssl, X509* leaf, std::string& why) const {
  std::string host;
  std::uint32_t port = 0;
  if (!peerOf(ssl, host, port)) {
    why = "the connection's peer address is unknown";
    return false;
  }
  std::string where = host + ":" + std::to_string(port);
  if (!trunks_) {
    why = "the trunk list is not known yet (" + where + ")";
    return false;
  }
  std::string trunk = trunks_->trunkAt(host, port);
  if (trunk.empty()) {
    why = where + " is not a configured trunk";
    return false;
  }
  auto name = trunks_->tlsName(trunk);
  if (!name) {
    why = "trunk " + trunk + " (" + where + ") is not configured for TLS (routing.json transport)";
    return false;
  }
  if (!certificateNames(leaf, *name)) {
    why = "trunk " + trunk + " (" + where + ") presented " +
          oneLine(X509_get_subject_name(leaf)) + ", which does not name " + *name;
    return false;
  }
  return true;
}

void SipTls::setServerName(SSL* ssl) const {
  std::string host;
  std::uint32_t port = 0;
  if (side_ != SipTlsSide::Trunk || !trunks_ || !peerOf(ssl, host, port)) return;
  std::string trunk = trunks_->trunkAt(host, port);
  auto name = trunk.empty() ? std::nullopt : trunks_->tlsName(trunk);
  if (name && !isIpLiteral(*name)) {
    // SSL_set_tlsext_host_name, without its C cast.
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(name->c_str()));
  }
}

int SipTls::clientHelloCallback(SSL* ssl, int* alert, void*) {
  auto* self = static_cast<SipTls*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), contextIndex()));
  std::string host;
  std::uint32_t port = 0;
  if (!self || !self->gate_ || !peerOf(ssl, host, port) || self->gate_(host, port)) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  // Counted here, not as the alert the refusal sends.
  SSL_set_ex_data(ssl, connectionIndex(), reinterpret_cast<void*>(1));
  self->metrics_.countTlsHandshake("banned_source");
  *alert = SSL_AD_HANDSHAKE_FAILURE;
  return SSL_CLIENT_HELLO_ERROR;
}

void SipTls::infoCallback(const SSL* ssl, int where, int ret) {
  auto* self = static_cast<SipTls*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), contextIndex()));
  if (!self) return;
  SSL* s = const_cast<SSL*>(ssl);
  if (!SSL_is_server(s)) {
    // Our connection toward a trunk: the ClientHello is written after this.
    if (where & SSL_CB_HANDSHAKE_START) self->setServerName(s);
    return;
  }
  if (SSL_get_ex_data(s, connectionIndex())) return;  // counted already
  std::string_view result;
  if (where & SSL_CB_HANDSHAKE_DONE) {
    result = "ok";
  } else if ((where & SSL_CB_ALERT) && ((ret >> 8) & 0xff) == SSL3_AL_FATAL &&
             !SSL_is_init_finished(s)) {
    result = (where & SSL_CB_WRITE) ? alertResult(ret & 0xff) : std::string_view("peer_alert");
    log::get("sip")->info("TLS handshake refused: {} (alert {} {})", result,
                          (where & SSL_CB_WRITE) ? "sent" : "received",
                          SSL_alert_desc_string_long(ret));
  } else {
    return;
  }
  SSL_set_ex_data(s, connectionIndex(), reinterpret_cast<void*>(1));
  self->metrics_.countTlsHandshake(result);
}

}  // namespace medius::gateway
