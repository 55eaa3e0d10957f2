// The checks of request_checks.hpp. Sofia's parser is liberal: it reads a Request-Line
// with extra spaces, an addr-spec with spaces inside <>, an unquoted display name with a
// comma. Where RFC 3261 says such a message is malformed (and RFC 4475 says to answer it
// 400), the gateway looks at the raw text Sofia keeps of each header (h_data/h_len: the
// header line as received, CRLF included).
#include "medius/gateway/request_checks.hpp"

#include <cstring>
#include <string>
#include <string_view>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>

#include "medius/gateway/sip_util.hpp"

namespace medius::gateway {

namespace {

// The raw text of a header as received, without its line end; "" when Sofia has none
// (a header made by us, or one of a comma list after the first).
std::string_view rawText(const msg_common_t* common) {
  if (!common || !common->h_data || common->h_len == 0) return {};
  std::string_view text(static_cast<const char*>(common->h_data), common->h_len);
  while (!text.empty() && (text.back() == '\r' || text.back() == '\n')) text.remove_suffix(1);
  return text;
}

// RFC 3261 25.1: Request-Line = Method SP Request-URI SP SIP-Version CRLF, single spaces.
bool requestLineOk(std::string_view line) {
  if (line.empty()) return true;  // nothing to look at
  if (line.find_first_of("\t\r\n") != std::string_view::npos) return false;
  if (line.front() == ' ' || line.back() == ' ') return false;
  std::size_t spaces = 0;
  for (char c : line) spaces += c == ' ';
  return spaces == 2;
}

bool isTokenChar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::strchr("-.!%*_+`'~", c) != nullptr;
}

// RFC 3261 25.1: display-name = *(token LWS) / quoted-string: ASCII separators such as the
// comma of RFC 4475 3.1.2.15 are refused; octets above 0x7f are left to Sofia's parser.
bool displayOk(const char* display) {
  if (!display || !*display || *display == '"') return true;
  for (const char* p = display; *p; ++p) {
    auto c = static_cast<unsigned char>(*p);
    if (c >= 0x80) continue;
    if (!isTokenChar(c) && c != ' ' && c != '\t') return false;
  }
  return true;
}

// No LWS between the < and > of a name-addr (RFC 3261 25.1: LAQUOT addr-spec RAQUOT;
// RFC 4475 3.1.2.14). Quoted strings are skipped.
bool angleBracketsOk(std::string_view raw) {
  bool quoted = false;
  bool inside = false;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
      continue;
    }
    if (inside) {
      if (c == '>') inside = false;
      else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') return false;
      continue;
    }
    if (c == '"') quoted = true;
    else if (c == '<') inside = true;
  }
  return true;
}

// One From, To or Contact: display name, <> and an addr-spec's headers (RFC 3261 20:
// a URI with headers must be enclosed in <>, RFC 4475 3.1.2.13).
std::optional<SipReply> addressError(const char* name, const msg_common_t* common,
                                     const char* display, const url_t* url) {
  std::string_view raw = rawText(common);
  std::string what = std::string("Malformed ") + name + " header";
  if (!displayOk(display)) return SipReply::of(400, what + ": display name is not a token or quoted");
  if (!angleBracketsOk(raw)) return SipReply::of(400, what + ": white space inside <>");
  if (url && url->url_headers && !raw.empty() && raw.find('<') == std::string_view::npos) {
    return SipReply::of(400, what + ": a URI with headers must be enclosed in <>");
  }
  return std::nullopt;
}

bool sameMethod(const sip_request_t* rq, const sip_cseq_t* cs) {
  if (rq->rq_method != cs->cs_method) return false;
  if (rq->rq_method != sip_method_unknown) return true;
  return rq->rq_method_name && cs->cs_method_name &&
         std::strcmp(rq->rq_method_name, cs->cs_method_name) == 0;
}

// A body type the gateway reads in an INVITE or UPDATE: SDP; multipart bodies (SIP-T's
// SDP plus ISUP) are left to the call handling.
bool bodyTypeOk(const sip_t* sip) {
  if (!sip->sip_payload || sip->sip_payload->pl_len == 0) return true;
  if (!sip->sip_content_type || !sip->sip_content_type->c_type) return true;
  const char* type = sip->sip_content_type->c_type;
  return strncasecmp(type, "application/sdp", 15) == 0 || strncasecmp(type, "multipart/", 10) == 0;
}

// An Accept that allows an SDP answer: no Accept (RFC 3261 20.1: application/sdp is then
// assumed), or one naming application/sdp, application/* or */*.
bool acceptsSdp(const sip_accept_t* accept) {
  bool typed = false;
  for (const sip_accept_t* a = accept; a; a = a->ac_next) {
    if (!a->ac_type) continue;
    typed = true;
    if (strcasecmp(a->ac_type, "application/sdp") == 0 || strcasecmp(a->ac_type, "*/*") == 0 ||
        strcasecmp(a->ac_type, "application/*") == 0) {
      return true;
    }
  }
  return !typed;
}

}  // namespace

std::optional<SipReply> requestErrorReply(const sip_t* sip, const RequestCheckOptions& options) {
  if (!sip || !sip->sip_request) return SipReply::of(400, "Malformed Request");
  const sip_request_t* rq = sip->sip_request;
  if (!rq->rq_version || strcasecmp(rq->rq_version, "SIP/2.0") != 0) {
    SipReply r = SipReply::of(505, "Version Not Supported");
    r.headers.emplace_back("Warning", "399 medius \"Only SIP/2.0 is supported\"");
    return r;
  }
  if (!requestLineOk(rawText(rq->rq_common))) {
    return SipReply::of(400, "Malformed Request-Line (Method SP Request-URI SP SIP/2.0)");
  }
  if (auto bad = headerErrorReply(sip)) return bad;
  if (!sip->sip_via) return SipReply::of(400, "Missing Via header");
  if (!sip->sip_call_id) return SipReply::of(400, "Missing Call-ID header");
  if (!sip->sip_from) return SipReply::of(400, "Missing From header");
  if (!sip->sip_to) return SipReply::of(400, "Missing To header");
  if (!sip->sip_cseq) return SipReply::of(400, "Missing CSeq header");
  if (!sameMethod(rq, sip->sip_cseq)) return SipReply::of(400, "CSeq Method Does Not Match The Request");
  if (rq->rq_url->url_headers) return SipReply::of(400, "Request-URI Must Not Have Headers");
  if (auto bad = addressError("From", sip->sip_from->a_common, sip->sip_from->a_display,
                              sip->sip_from->a_url)) {
    return bad;
  }
  if (auto bad = addressError("To", sip->sip_to->a_common, sip->sip_to->a_display, sip->sip_to->a_url)) {
    return bad;
  }
  for (const sip_contact_t* m = sip->sip_contact; m; m = m->m_next) {
    if (auto bad = addressError("Contact", m->m_common, m->m_display, m->m_url)) return bad;
  }
  bool ackOrCancel = rq->rq_method == sip_method_ack || rq->rq_method == sip_method_cancel;
  auto scheme = rq->rq_url->url_type;
  if (!ackOrCancel && scheme != url_sip && scheme != url_sips && scheme != url_tel) {
    SipReply r = SipReply::of(416, "Unsupported URI Scheme");
    r.headers.emplace_back("Warning", "399 medius \"Only sip, sips and tel URIs are served\"");
    return r;
  }
  if (sip->sip_require && !ackOrCancel) {
    std::string unsupported;
    for (const msg_list_t* l = sip->sip_require; l; l = l->k_next) {
      for (const msg_param_t* p = l->k_items; p && *p; ++p) {
        if (strcasecmp(*p, "timer") == 0 || strcasecmp(*p, "path") == 0) continue;
        if (options.rel100 && strcasecmp(*p, "100rel") == 0) continue;
        if (unsupported.size() < 200) {
          unsupported += (unsupported.empty() ? "" : ", ") + sanitizeHeaderValue(*p, 40);
        }
      }
    }
    if (!unsupported.empty()) {
      SipReply r = SipReply::of(420, "Bad Extension");
      r.headers.emplace_back("Unsupported", unsupported);
      return r;
    }
  }
  bool offerCarrier = rq->rq_method == sip_method_invite || rq->rq_method == sip_method_update;
  const bool csta = options.csta && rq->rq_method == sip_method_invite && sip->sip_content_type &&
                    sip->sip_content_type->c_type &&
                    strcasecmp(sip->sip_content_type->c_type, "application/csta+xml") == 0;
  if (csta) return std::nullopt;  // a remote call control dialog (rcc.hpp): no SDP at all
  if (offerCarrier && !bodyTypeOk(sip)) {
    SipReply r = SipReply::of(415, "Unsupported Media Type");
    r.headers.emplace_back("Accept", "application/sdp");
    return r;
  }
  if (rq->rq_method == sip_method_invite && !acceptsSdp(sip->sip_accept)) {
    SipReply r = SipReply::of(406, "Not Acceptable");
    r.headers.emplace_back("Accept", "application/sdp");
    r.headers.emplace_back("Warning", "399 medius \"Answers carry application/sdp\"");
    return r;
  }
  return std::nullopt;
}

}  // namespace medius::gateway
