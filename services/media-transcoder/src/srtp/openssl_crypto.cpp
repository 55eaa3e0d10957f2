#include "medius/media/srtp/openssl_crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <srtp2/auth.h>
#include <srtp2/cipher.h>
#include <srtp2/srtp.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>

// The crypto kernel's look-up of the types it has (crypto_kernel.h, not installed by
// libsrtp2-dev; exported by libsrtp2.so). Used for the test vectors of the NSS types our
// replacements must pass.
extern "C" {
const srtp_cipher_type_t* srtp_crypto_kernel_get_cipher_type(srtp_cipher_type_id_t id);
const srtp_auth_type_t* srtp_crypto_kernel_get_auth_type(srtp_auth_type_id_t id);
}

namespace medius::media::srtp {
namespace {

constexpr int kSaltLen = 14;     // SRTP_SALT_LEN: AES-ICM's key is key || 112-bit salt
constexpr int kGcmSaltLen = 12;  // SRTP_AEAD_SALT_LEN
constexpr int kSha1Len = 20;

// One key size of a cipher type: the EVP cipher and libsrtp's type and algorithm for it.
struct Variant {
  int keyLen;  // with the salt, as libsrtp passes it to alloc
  const EVP_CIPHER* (*evp)();
  srtp_cipher_type_t* type;
  int algorithm;
};

// A cipher for the variant of `keyLen`, whose state (an IcmState or GcmState, filled in but
// for the EVP parts) gets its own EVP context.
template <typename State, std::size_t N>
srtp_err_status_t newCipher(const std::array<Variant, N>& variants, srtp_cipher_t** c, int keyLen,
                            State initial) {
  const Variant* variant = nullptr;
  for (const auto& v : variants) {
    if (v.keyLen == keyLen) variant = &v;
  }
  if (variant == nullptr) return srtp_err_status_bad_param;
  initial.evp = variant->evp();
  auto* cipher = new (std::nothrow) srtp_cipher_t{};
  auto* state = new (std::nothrow) State(initial);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (!cipher || !state || !ctx) {
    delete cipher;
    delete state;
    EVP_CIPHER_CTX_free(ctx);
    return srtp_err_status_alloc_fail;
  }
  state->ctx = ctx;
  cipher->type = variant->type;
  cipher->state = state;
  cipher->key_len = keyLen;
  cipher->algorithm = variant->algorithm;
  *c = cipher;
  return srtp_err_status_ok;
}

template <typename State>
srtp_err_status_t deleteCipher(srtp_cipher_t* c) {
  auto* state = static_cast<State*>(c->state);
  EVP_CIPHER_CTX_free(state->ctx);
  OPENSSL_cleanse(state, sizeof(State));
  delete state;
  delete c;
  return srtp_err_status_ok;
}

// ---------------------------------------------------------------- AES-ICM (RFC 3711 4.1.1)

struct IcmState {
  EVP_CIPHER_CTX* ctx = nullptr;
  const EVP_CIPHER* evp = nullptr;
  int keySize = 0;
  std::array<std::uint8_t, 16> offset{};  // the salt, low 16 bits zero
};

// Defined below, with the functions; test_data is set by installOpenSslCrypto().
extern srtp_cipher_type_t icm128;
extern srtp_cipher_type_t icm256;

const std::array<Variant, 2> kIcmVariants{{
    {SRTP_AES_ICM_128_KEY_LEN_WSALT, EVP_aes_128_ctr, &icm128, SRTP_AES_ICM_128},
    {SRTP_AES_ICM_256_KEY_LEN_WSALT, EVP_aes_256_ctr, &icm256, SRTP_AES_ICM_256},
}};

srtp_err_status_t icmAlloc(srtp_cipher_t** c, int keyLen, int /*tagLen*/) {
  IcmState state;
  state.keySize = keyLen - kSaltLen;
  return newCipher(kIcmVariants, c, keyLen, state);
}

srtp_err_status_t icmDealloc(srtp_cipher_t* c) { return deleteCipher<IcmState>(c); }

srtp_err_status_t icmInit(void* s, const std::uint8_t* key) {
  auto* state = static_cast<IcmState*>(s);
  state->offset.fill(0);
  std::memcpy(state->offset.data(), key + state->keySize, kSaltLen);
  EVP_CIPHER_CTX_reset(state->ctx);
  if (EVP_EncryptInit_ex(state->ctx, state->evp, nullptr, key, nullptr) != 1) {
    return srtp_err_status_init_fail;
  }
  return srtp_err_status_ok;
}

srtp_err_status_t icmSetIv(void* s, std::uint8_t* iv, srtp_cipher_direction_t /*direction*/) {
  auto* state = static_cast<IcmState*>(s);
  std::array<std::uint8_t, 16> counter;
  for (std::size_t i = 0; i < counter.size(); ++i) counter[i] = state->offset[i] ^ iv[i];
  // Only the counter changes: the context keeps its key schedule.
  if (EVP_EncryptInit_ex(state->ctx, nullptr, nullptr, nullptr, counter.data()) != 1) {
    return srtp_err_status_cipher_fail;
  }
  return srtp_err_status_ok;
}

srtp_err_status_t icmEncrypt(void* s, std::uint8_t* buffer, unsigned int* octets) {
  auto* state = static_cast<IcmState*>(s);
  int out = 0;
  if (EVP_EncryptUpdate(state->ctx, buffer, &out, buffer, static_cast<int>(*octets)) != 1) {
    return srtp_err_status_cipher_fail;
  }
  *octets = static_cast<unsigned int>(out);
  return srtp_err_status_ok;
}

// ---------------------------------------------------------------- AES-GCM (RFC 7714)

struct GcmState {
  EVP_CIPHER_CTX* ctx = nullptr;
  const EVP_CIPHER* evp = nullptr;
  int tagLen = 16;
  srtp_cipher_direction_t direction = srtp_direction_any;
};

extern srtp_cipher_type_t gcm128;
extern srtp_cipher_type_t gcm256;

const std::array<Variant, 2> kGcmVariants{{
    {SRTP_AES_GCM_128_KEY_LEN_WSALT, EVP_aes_128_gcm, &gcm128, SRTP_AES_GCM_128},
    {SRTP_AES_GCM_256_KEY_LEN_WSALT, EVP_aes_256_gcm, &gcm256, SRTP_AES_GCM_256},
}};

srtp_err_status_t gcmAlloc(srtp_cipher_t** c, int keyLen, int tagLen) {
  if (tagLen != 16 && tagLen != 8) return srtp_err_status_bad_param;
  GcmState state;
  state.tagLen = tagLen;
  return newCipher(kGcmVariants, c, keyLen, state);
}

srtp_err_status_t gcmDealloc(srtp_cipher_t* c) { return deleteCipher<GcmState>(c); }

srtp_err_status_t gcmInit(void* s, const std::uint8_t* key) {
  auto* state = static_cast<GcmState*>(s);
  state->direction = srtp_direction_any;
  EVP_CIPHER_CTX_reset(state->ctx);
  if (EVP_CipherInit_ex(state->ctx, state->evp, nullptr, key, nullptr, 0) != 1) {
    return srtp_err_status_init_fail;
  }
  return srtp_err_status_ok;
}

srtp_err_status_t gcmSetIv(void* s, std::uint8_t* iv, srtp_cipher_direction_t direction) {
  auto* state = static_cast<GcmState*>(s);
  if (direction != srtp_direction_encrypt && direction != srtp_direction_decrypt) {
    return srtp_err_status_bad_param;
  }
  state->direction = direction;
  int enc = direction == srtp_direction_encrypt ? 1 : 0;
  if (EVP_CipherInit_ex(state->ctx, nullptr, nullptr, nullptr, nullptr, enc) != 1 ||
      EVP_CIPHER_CTX_ctrl(state->ctx, EVP_CTRL_GCM_SET_IVLEN, kGcmSaltLen, nullptr) != 1 ||
      EVP_CipherInit_ex(state->ctx, nullptr, nullptr, nullptr, iv, enc) != 1) {
    return srtp_err_status_init_fail;
  }
  return srtp_err_status_ok;
}

srtp_err_status_t gcmSetAad(void* s, const std::uint8_t* aad, std::uint32_t aadLen) {
  auto* state = static_cast<GcmState*>(s);
  if (state->direction != srtp_direction_encrypt && state->direction != srtp_direction_decrypt) {
    return srtp_err_status_bad_param;
  }
  int out = 0;
  if (EVP_CipherUpdate(state->ctx, nullptr, &out, aad, static_cast<int>(aadLen)) != 1) {
    return srtp_err_status_algo_fail;
  }
  return srtp_err_status_ok;
}

srtp_err_status_t gcmEncrypt(void* s, std::uint8_t* buffer, unsigned int* octets) {
  auto* state = static_cast<GcmState*>(s);
  if (state->direction != srtp_direction_encrypt) return srtp_err_status_bad_param;
  int out = 0;
  if (EVP_CipherUpdate(state->ctx, buffer, &out, buffer, static_cast<int>(*octets)) != 1) {
    return srtp_err_status_cipher_fail;
  }
  *octets = static_cast<unsigned int>(out);
  return srtp_err_status_ok;
}

// The tag after gcmEncrypt: the buffer ends there, libsrtp appends it.
srtp_err_status_t gcmGetTag(void* s, std::uint8_t* tag, std::uint32_t* len) {
  auto* state = static_cast<GcmState*>(s);
  int out = 0;
  std::array<std::uint8_t, 16> full{};
  if (EVP_CipherFinal_ex(state->ctx, nullptr, &out) != 1 ||
      EVP_CIPHER_CTX_ctrl(state->ctx, EVP_CTRL_GCM_GET_TAG, 16, full.data()) != 1) {
    return srtp_err_status_algo_fail;
  }
  std::memcpy(tag, full.data(), static_cast<std::size_t>(state->tagLen));
  *len = static_cast<std::uint32_t>(state->tagLen);
  return srtp_err_status_ok;
}

// The buffer holds ciphertext || tag: decrypted in place, the tag checked, its length removed.
srtp_err_status_t gcmDecrypt(void* s, std::uint8_t* buffer, unsigned int* octets) {
  auto* state = static_cast<GcmState*>(s);
  if (state->direction != srtp_direction_decrypt) return srtp_err_status_bad_param;
  if (*octets < static_cast<unsigned int>(state->tagLen)) return srtp_err_status_bad_param;
  unsigned int body = *octets - static_cast<unsigned int>(state->tagLen);
  if (EVP_CIPHER_CTX_ctrl(state->ctx, EVP_CTRL_GCM_SET_TAG, state->tagLen, buffer + body) != 1) {
    return srtp_err_status_algo_fail;
  }
  int out = 0;
  if (EVP_CipherUpdate(state->ctx, buffer, &out, buffer, static_cast<int>(body)) != 1) {
    return srtp_err_status_cipher_fail;
  }
  int last = 0;
  if (EVP_CipherFinal_ex(state->ctx, buffer + out, &last) != 1) return srtp_err_status_auth_fail;
  *octets = body;
  return srtp_err_status_ok;
}

// ---------------------------------------------------------------- HMAC-SHA1 (RFC 2104)

struct HmacState {
  EVP_MAC_CTX* ctx = nullptr;
};

extern srtp_auth_type_t hmac;

EVP_MAC* sha1Hmac() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
  return mac;
}

srtp_err_status_t hmacAlloc(srtp_auth_t** a, int keyLen, int outLen) {
  if (keyLen > kSha1Len || outLen > kSha1Len || outLen < 0) return srtp_err_status_bad_param;
  EVP_MAC* mac = sha1Hmac();
  if (!mac) return srtp_err_status_alloc_fail;
  auto* auth = new (std::nothrow) srtp_auth_t{};
  auto* state = new (std::nothrow) HmacState{};
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  if (!auth || !state || !ctx) {
    delete auth;
    delete state;
    EVP_MAC_CTX_free(ctx);
    return srtp_err_status_alloc_fail;
  }
  state->ctx = ctx;
  auth->type = &hmac;
  auth->state = state;
  auth->out_len = outLen;
  auth->key_len = keyLen;
  auth->prefix_len = 0;
  *a = auth;
  return srtp_err_status_ok;
}

srtp_err_status_t hmacDealloc(srtp_auth_t* a) {
  auto* state = static_cast<HmacState*>(a->state);
  EVP_MAC_CTX_free(state->ctx);
  delete state;
  delete a;
  return srtp_err_status_ok;
}

srtp_err_status_t hmacInit(void* s, const std::uint8_t* key, int keyLen) {
  auto* state = static_cast<HmacState*>(s);
  char digest[] = "SHA1";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(state->ctx, key, static_cast<std::size_t>(keyLen), params) != 1) {
    return srtp_err_status_auth_fail;
  }
  return srtp_err_status_ok;
}

// Per packet: the same key again (OpenSSL keeps the keyed inner and outer states).
srtp_err_status_t hmacStart(void* s) {
  auto* state = static_cast<HmacState*>(s);
  if (EVP_MAC_init(state->ctx, nullptr, 0, nullptr) != 1) return srtp_err_status_auth_fail;
  return srtp_err_status_ok;
}

srtp_err_status_t hmacUpdate(void* s, const std::uint8_t* message, int octets) {
  auto* state = static_cast<HmacState*>(s);
  if (EVP_MAC_update(state->ctx, message, static_cast<std::size_t>(octets)) != 1) {
    return srtp_err_status_auth_fail;
  }
  return srtp_err_status_ok;
}

srtp_err_status_t hmacCompute(void* s, const std::uint8_t* message, int octets, int tagLen,
                              std::uint8_t* result) {
  auto* state = static_cast<HmacState*>(s);
  if (tagLen > kSha1Len || tagLen < 0) return srtp_err_status_bad_param;
  std::array<std::uint8_t, kSha1Len> full{};
  std::size_t len = 0;
  if (EVP_MAC_update(state->ctx, message, static_cast<std::size_t>(octets)) != 1 ||
      EVP_MAC_final(state->ctx, full.data(), &len, full.size()) != 1 || len != full.size()) {
    return srtp_err_status_auth_fail;
  }
  std::memcpy(result, full.data(), static_cast<std::size_t>(tagLen));
  return srtp_err_status_ok;
}

// ---------------------------------------------------------------- the types

const srtp_cipher_test_case_t* testsOf(srtp_cipher_type_id_t id) {
  const srtp_cipher_type_t* nss = srtp_crypto_kernel_get_cipher_type(id);
  return nss ? nss->test_data : nullptr;
}

// test_data is filled in by installOpenSslCrypto(): the vectors of the types replaced.
srtp_cipher_type_t icm128 = {icmAlloc, icmDealloc, icmInit, nullptr, icmEncrypt, icmEncrypt,
                             icmSetIv, nullptr, "AES-128 counter mode (OpenSSL)", nullptr,
                             SRTP_AES_ICM_128};
srtp_cipher_type_t icm256 = {icmAlloc, icmDealloc, icmInit, nullptr, icmEncrypt, icmEncrypt,
                             icmSetIv, nullptr, "AES-256 counter mode (OpenSSL)", nullptr,
                             SRTP_AES_ICM_256};
srtp_cipher_type_t gcm128 = {gcmAlloc, gcmDealloc, gcmInit, gcmSetAad, gcmEncrypt, gcmDecrypt,
                             gcmSetIv, gcmGetTag, "AES-128 GCM (OpenSSL)", nullptr,
                             SRTP_AES_GCM_128};
srtp_cipher_type_t gcm256 = {gcmAlloc, gcmDealloc, gcmInit, gcmSetAad, gcmEncrypt, gcmDecrypt,
                             gcmSetIv, gcmGetTag, "AES-256 GCM (OpenSSL)", nullptr,
                             SRTP_AES_GCM_256};
srtp_auth_type_t hmac = {hmacAlloc, hmacDealloc, hmacInit, hmacCompute, hmacUpdate, hmacStart,
                         "HMAC-SHA1 (OpenSSL)", nullptr, SRTP_HMAC_SHA1};

}  // namespace

const CryptoBackendReport& installOpenSslCrypto() {
  static CryptoBackendReport report;
  static std::once_flag once;
  std::call_once(once, [] {
    report.allOpenSsl = true;
    auto cipher = [](srtp_cipher_type_t& type, const char* name) {
      std::string line = name;
      type.test_data = testsOf(type.id);
      srtp_err_status_t status = type.test_data ? srtp_replace_cipher_type(&type, type.id)
                                                : srtp_err_status_cant_check;
      if (status == srtp_err_status_ok) {
        line += ": openssl";
      } else {
        line += ": nss (replacement refused: libsrtp error " + std::to_string(status) + ")";
        report.allOpenSsl = false;
      }
      report.types.push_back(line);
    };
    cipher(icm128, "AES-ICM-128");
    cipher(icm256, "AES-ICM-256");
    cipher(gcm128, "AES-GCM-128");
    cipher(gcm256, "AES-GCM-256");
    std::string line = "HMAC-SHA1";
    const srtp_auth_type_t* nss = srtp_crypto_kernel_get_auth_type(SRTP_HMAC_SHA1);
    hmac.test_data = nss ? nss->test_data : nullptr;
    srtp_err_status_t status = hmac.test_data ? srtp_replace_auth_type(&hmac, SRTP_HMAC_SHA1)
                                              : srtp_err_status_cant_check;
    if (status == srtp_err_status_ok) {
      line += ": openssl";
    } else {
      line += ": nss (replacement refused: libsrtp error " + std::to_string(status) + ")";
      report.allOpenSsl = false;
    }
    report.types.push_back(line);
  });
  return report;
}

}  // namespace medius::media::srtp
