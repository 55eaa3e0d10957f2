// libFuzzer target: any bytes a client can send, parsed by Sofia's SIP parser (as nta
// does), then through the gateway's REGISTER adapter: header-error detection, validation
// and conversion to RegisterRequest, and the reply built back from a registrar answer that
// echoes the request's contacts. Nothing may crash, leak or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <variant>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>

#include "medius/gateway/register_request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  msg_t* msg = msg_make(sip_default_mclass(), 0, data, static_cast<ssize_t>(size));
  if (!msg) return 0;
  const sip_t* sip = sip_object(msg);
  if (sip && sip->sip_request) {
    (void)medius::gateway::headerErrorReply(sip);
    medius::gateway::RegisterContext ctx;
    ctx.source.host = "127.0.0.1";
    ctx.source.port = 5062;
    ctx.source.transport = medius::v1::TRANSPORT_UDP;
    ctx.gatewayId = "gw-fuzz";
    ctx.domain = "example.com";
    auto result = medius::gateway::buildRegisterRequest(sip, ctx);
    if (auto* request = std::get_if<medius::v1::RegisterRequest>(&result)) {
      medius::v1::RegisterResponse response;
      response.set_result(medius::v1::RegisterResponse::RESULT_OK);
      for (const auto& c : request->contacts()) {
        auto* b = response.add_bindings();
        b->set_aor(request->aor());
        b->set_contact_uri(c.uri());
        b->set_instance_id(c.instance_id());
        b->set_reg_id(c.reg_id());
        b->set_expires_in(c.has_expires() ? c.expires() : 3600);
      }
      auto reply = medius::gateway::registerReply(response, std::time_t{0});
      (void)reply.headerText();
    } else {
      (void)std::get<medius::gateway::SipReply>(result).headerText();
    }
  }
  msg_destroy(msg);
  return 0;
}
