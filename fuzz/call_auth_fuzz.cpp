// libFuzzer target: any bytes a client can send, parsed by Sofia's SIP parser (as nta
// does), then through the gateway's call authentication and identity code (call_auth.hpp):
// which requests need credentials, the Proxy-Authorization credentials for our realm,
// the From check of a verified user, and P-Asserted-Identity parsing and building.
// Nothing may crash, leak or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>

#include "medius/gateway/call_auth.hpp"
#include "medius/gateway/sip_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace medius::gateway;
  msg_t* msg = msg_make(sip_default_mclass(), 0, data, static_cast<ssize_t>(size));
  if (!msg) return 0;
  const sip_t* sip = sip_object(msg);
  if (sip && sip->sip_request) {
    (void)needsCredentials(sip, Side::Internal, CallAuthMode::Required);
    (void)headerErrorReply(sip);
    std::string method = sip->sip_request->rq_method_name ? sip->sip_request->rq_method_name : "";
    auto credentials = digestCredentials(sip->sip_proxy_authorization, "example.com", method);
    std::string fromAor = sip->sip_from ? aorOf(sip->sip_from->a_url) : std::string();
    medius::v1::VerifyDigestResponse verified;
    verified.set_result(medius::v1::VerifyDigestResponse::RESULT_OK);
    verified.set_aor(credentials ? "sip:" + credentials->username() + "@example.com"
                                 : std::string("sip:alice@example.com"));
    auto verdict = verifyVerdict(grpc::Status::OK, verified, fromAor, true, 5);
    (void)verdict.reply.headerText();
    std::string asserted = assertedIdentity(sip);
    std::string display = sip->sip_from && sip->sip_from->a_display ? unquote(sip->sip_from->a_display) : "";
    (void)assertedIdentityValue(display, asserted, "127.0.0.1");
  }
  msg_destroy(msg);
  return 0;
}
