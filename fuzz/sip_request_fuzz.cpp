// libFuzzer target: any bytes a client can send, parsed by Sofia's SIP parser as the
// gateway's nta agent parses them (MSG_DO_EXTRACT_COPY: each header keeps its raw text),
// then through what the gateway reads of a request before and while acting on it: the
// request checks (request_checks.hpp: the RFC 3261 8.2 and RFC 4475 verdicts, which walk
// the raw Request-Line and the raw From/To/Contact text) and the sip_util helpers the
// B2BUA uses to read and rewrite headers (SDP body, URIs and AORs, display names quoted
// again, user parts escaped, header values printed and sanitized). Nothing may crash,
// leak, hang or trip a sanitizer; every reply built must be sendable (one line each).
#include <cstddef>
#include <cstdint>
#include <string>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>

#include "medius/gateway/request_checks.hpp"
#include "medius/gateway/sip_util.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void address(const url_t* url, const char* display) {
  using namespace medius::gateway;
  (void)urlText(url, true);
  (void)urlText(url, false);
  std::string aor = aorOf(url);
  if (url && url->url_user) (void)escapeUser(url->url_user);
  std::string name = unquote(display);
  std::string quoted = quoteDisplay(name);
  check(quoted.size() >= 2 && quoted.front() == '"' && quoted.back() == '"');
  check(quoted.find_first_of("\r\n") == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace medius::gateway;
  msg_t* msg = msg_make(sip_default_mclass(), MSG_DO_CANONIC | MSG_DO_EXTRACT_COPY, data,
                        static_cast<ssize_t>(size));
  if (!msg) return 0;
  const sip_t* sip = sip_object(msg);
  if (sip && sip->sip_request) {
    for (bool rel100 : {true, false}) {
      if (auto reply = requestErrorReply(sip, RequestCheckOptions{rel100})) {
        check(reply->status >= 400 && reply->status < 600);
        check(reply->phrase.find_first_of("\r\n") == std::string::npos);
        for (const auto& [name, value] : reply->headers) {
          check(value.find_first_of("\r\n") == std::string::npos);
        }
        (void)reply->headerText();
      }
    }
    (void)headerErrorReply(sip);
    std::string sdp = sdpBody(sip);
    check(sdp.size() <= size);
    address(sip->sip_request->rq_url, nullptr);
    if (sip->sip_from) address(sip->sip_from->a_url, sip->sip_from->a_display);
    if (sip->sip_to) address(sip->sip_to->a_url, sip->sip_to->a_display);
    for (const sip_contact_t* m = sip->sip_contact; m; m = m->m_next) address(m->m_url, m->m_display);
    for (const sip_header_t* h : {reinterpret_cast<const sip_header_t*>(sip->sip_reason),
                                  reinterpret_cast<const sip_header_t*>(sip->sip_user_agent),
                                  reinterpret_cast<const sip_header_t*>(sip->sip_via),
                                  reinterpret_cast<const sip_header_t*>(sip->sip_contact),
                                  reinterpret_cast<const sip_header_t*>(sip->sip_subject)}) {
      std::string value = headerValue(sip, h);
      check(value.find_first_of("\r\n") == std::string::npos);
    }
    std::string body(sip->sip_payload && sip->sip_payload->pl_data ? sip->sip_payload->pl_data : "",
                     sip->sip_payload ? sip->sip_payload->pl_len : 0);
    std::string clean = sanitizeHeaderValue(body, 300);
    check(clean.size() <= 300 && clean.find_first_of("\r\n") == std::string::npos);
  }
  msg_destroy(msg);
  return 0;
}
