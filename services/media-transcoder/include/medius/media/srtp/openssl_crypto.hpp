// OpenSSL primitives for libsrtp2's crypto kernel.
//
// Debian builds libsrtp2 on NSS, whose AES counter mode sets up a PK11 context for every
// packet and whose GCM goes through PK11_Encrypt per packet: with hundreds of sessions that
// is 15 us per SRTP operation (docs/performance.md, "Media worker under load"), most of the
// worker's CPU. libsrtp2 lets an application replace the implementation of a cipher or
// authentication type (srtp_replace_cipher_type / srtp_replace_auth_type, cipher.h and
// auth.h): libsrtp keeps doing SRTP (packet formats, key derivation, replay lists, MKI), and
// only the primitives come from OpenSSL's EVP interface, whose AES-NI code keeps its key
// schedule per context and is set up once per session key.
//
// Replaced: AES-ICM 128 and 256 (the AES_CM_* suites and libsrtp's key derivation),
// AES-GCM 128 and 256 (AEAD_AES_*_GCM) and HMAC-SHA1. Each replacement is checked by
// libsrtp's own self-test (the test vectors of the type it replaces) before libsrtp takes
// it; a type whose check fails stays on NSS.
#pragma once

#include <string>
#include <vector>

namespace medius::media::srtp {

// What installOpenSslCrypto() did, per type: e.g. "AES-ICM-128: openssl" or
// "AES-GCM-256: nss (self-test failed: 4)".
struct CryptoBackendReport {
  std::vector<std::string> types;
  bool allOpenSsl = false;
};

// Replaces the types once per process, after srtp_init() (SrtpSession's library set-up
// calls it); later calls return the first report. Thread-safe.
const CryptoBackendReport& installOpenSslCrypto();

}  // namespace medius::media::srtp
