// REGISTER validation and conversion (RFC 3261 section 10.3; RFC 5626 contact params).
//
// Sofia findings this relies on (1.12.11, verified with the unit tests):
// - A header Sofia cannot parse is not fatal: it lands in sip->sip_error (class
//   msg_error_class, er_name = the header name) and the typed field stays NULL.
//   msg_has_error() stays 0 for such messages, so sip_error is what must be checked.
// - A second instance of a single-valued header (two Expires, two Call-IDs) is also put
//   on sip_error, with its own header class (not msg_error_class).
// - "Expires: 99999999999999999999" parses WITHOUT error as ex_delta = ULONG_MAX
//   (strtoul saturates); "Expires: 4294967296" as 4294967296. The 32-bit check is ours.
// - "Expires: abc", "Expires: -5" go to sip_error. A date-form Expires sets ex_date.
// - The Contact "expires" and "q" parameters are raw strings (m_expires, m_q): ours to check.
// - "Contact: *" has url_type url_any and no host; "Contact: <sip:alice@>" is an error.
#include "medius/gateway/register_request.hpp"

#include <algorithm>
#include <strings.h>

#include <cctype>
#include <cstdlib>
#include <cstring>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/msg_protos.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_protos.h>
#include <sofia-sip/sip_util.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/url.h>

#include "medius/gateway/call_auth.hpp"

namespace medius::gateway {

namespace {

SipReply badRequest(std::string phrase) {
  SipReply r;
  r.status = 400;
  r.phrase = std::move(phrase);
  return r;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// A header name fit for a reason phrase (a token, bounded).
std::string safeName(const char* name) {
  std::string out;
  if (!name) return out;
  for (const char* p = name; *p && out.size() < 40; ++p) {
    unsigned char ch = static_cast<unsigned char>(*p);
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.') out.push_back(*p);
  }
  return out;
}

// Decimal digits only, at most 2^32-1.
std::optional<std::uint32_t> parseUint32(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(ch - '0');
    if (value > 0xFFFFFFFFull) return std::nullopt;
  }
  return static_cast<std::uint32_t>(value);
}

// RFC 3261 qvalue: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ], as millis.
std::optional<std::uint32_t> parseQ(std::string_view text) {
  if (text.empty() || (text[0] != '0' && text[0] != '1')) return std::nullopt;
  std::uint32_t whole = static_cast<std::uint32_t>(text[0] - '0');
  if (text.size() == 1) return whole * 1000;
  if (text[1] != '.' || text.size() > 5) return std::nullopt;
  std::uint32_t frac = 0;
  std::uint32_t scale = 100;
  for (std::size_t i = 2; i < text.size(); ++i) {
    char ch = text[i];
    if (ch < '0' || ch > '9') return std::nullopt;
    frac += static_cast<std::uint32_t>(ch - '0') * scale;
    scale /= 10;
  }
  if (whole == 1 && frac != 0) return std::nullopt;
  return whole * 1000 + frac;
}

std::string unquote(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    std::string out;
    for (std::size_t i = 1; i + 1 < v.size(); ++i) {
      if (v[i] == '\\' && i + 2 < v.size()) ++i;
      out.push_back(v[i]);
    }
    return out;
  }
  return std::string(v);
}

// "<urn:uuid:...>" -> "urn:uuid:..." (after unquoting).
std::string stripAngles(std::string v) {
  if (v.size() >= 2 && v.front() == '<' && v.back() == '>') return v.substr(1, v.size() - 2);
  return v;
}

std::string str(const char* s) { return s ? std::string(s) : std::string(); }

// Fills credentials from the first Digest Authorization header for `realm`.
void readCredentials(const sip_t* sip, const std::string& realm, v1::RegisterRequest& req) {
  if (auto c = digestCredentials(sip->sip_authorization, realm, "REGISTER")) {
    *req.mutable_credentials() = std::move(*c);
  }
}

}  // namespace

std::optional<std::string> paramValue(const char* const* params, std::string_view name) {
  if (!params) return std::nullopt;
  for (const char* const* p = params; *p; ++p) {
    std::string_view param(*p);
    std::size_t eq = param.find('=');
    std::string_view key = param.substr(0, eq);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
    if (!iequals(key, name)) continue;
    if (eq == std::string_view::npos) return std::string();
    std::string_view value = param.substr(eq + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    return unquote(value);
  }
  return std::nullopt;
}

std::optional<SipReply> headerErrorReply(const sip_t* sip) {
  if (!sip) return badRequest("Malformed request");
  // Any header Sofia could not parse, or a repeated single-valued header.
  for (const sip_error_t* e = sip->sip_error; e; e = e->er_next) {
    const msg_hclass_t* cls = e->er_common->h_class;
    if (cls && cls != msg_error_class && cls->hc_name) {
      return badRequest("Duplicate " + safeName(cls->hc_name) + " header");
    }
    std::string name = safeName(e->er_name);
    return badRequest(name.empty() ? "Malformed header" : "Malformed " + name + " header");
  }
  return std::nullopt;
}

std::variant<v1::RegisterRequest, SipReply> buildRegisterRequest(const sip_t* sip,
                                                                 const RegisterContext& ctx) {
  if (!sip || !sip->sip_request) return badRequest("Malformed request");

  if (auto bad = headerErrorReply(sip)) return *bad;
  if (!sip->sip_from) return badRequest("Missing From header");
  if (!sip->sip_to) return badRequest("Missing To header");
  if (!sip->sip_call_id || !sip->sip_call_id->i_id) return badRequest("Missing Call-ID header");
  if (!sip->sip_cseq) return badRequest("Missing CSeq header");
  if (sip->sip_cseq->cs_method != sip_method_register) {
    return badRequest("CSeq method does not match REGISTER");
  }
  const url_t* to = sip->sip_to->a_url;
  if ((to->url_type != url_sip && to->url_type != url_sips) || !to->url_user ||
      !*to->url_user || !to->url_host || !*to->url_host) {
    return badRequest("To URI must be sip:user@host");
  }

  v1::RegisterRequest req;
  req.set_aor("sip:" + std::string(to->url_user) + "@" + lower(to->url_host));
  if (const sip_expires_t* ex = sip->sip_expires) {
    if (ex->ex_date != 0) return badRequest("Expires must be delta-seconds");
    if (ex->ex_delta > 0xFFFFFFFFul) return badRequest("Expires out of range");
    req.set_expires(static_cast<std::uint32_t>(ex->ex_delta));
  }

  su_home_t home[1] = {SU_HOME_INIT(home)};
  std::optional<SipReply> reject;
  bool behindNat = false;
  for (const sip_contact_t* m = sip->sip_contact; m && !reject; m = m->m_next) {
    if (m->m_url->url_type == url_any) {
      req.set_wildcard(true);
      continue;
    }
    if (!m->m_url->url_host || !*m->m_url->url_host) {
      reject = badRequest("Contact URI without host");
      break;
    }
    if (contactBehindNat(m->m_url, ctx.source)) behindNat = true;
    auto* c = req.add_contacts();
    url_t copy = *m->m_url;
    copy.url_headers = nullptr;  // RFC 3261 10.3: header parts are not part of the binding
    char* uri = url_as_string(home, &copy);
    c->set_uri(str(uri));
    if (m->m_expires) {
      auto e = parseUint32(m->m_expires);
      if (!e) {
        reject = badRequest("Bad Contact expires parameter");
        break;
      }
      c->set_expires(*e);
    }
    if (m->m_q) {
      auto q = parseQ(m->m_q);
      if (!q) {
        reject = badRequest("Bad Contact q parameter");
        break;
      }
      c->set_q_millis(*q);
    }
    if (auto inst = paramValue(m->m_params, "+sip.instance")) c->set_instance_id(stripAngles(*inst));
    if (auto regId = paramValue(m->m_params, "reg-id")) {
      auto v = parseUint32(*regId);
      if (!v) {
        reject = badRequest("Bad Contact reg-id parameter");
        break;
      }
      c->set_reg_id(*v);
    }
  }
  for (const sip_path_t* p = sip->sip_path; p && !reject; p = p->r_next) {
    // name-addr *(;param): rebuilt from the parsed parts, one value per Path entry.
    std::string value = "<" + str(url_as_string(home, p->r_url)) + ">";
    for (const char* const* param = p->r_params; param && *param; ++param) {
      value += ";";
      value += *param;
    }
    req.add_path(value);
  }
  su_home_deinit(home);
  if (reject) return *reject;

  // RFC 3261 10.3 step 6: "*" only alone and only with Expires: 0.
  if (req.wildcard()) {
    if (req.contacts_size() > 0) return badRequest("Wildcard Contact must be alone");
    if (!req.has_expires() || req.expires() != 0) {
      return badRequest("Wildcard Contact requires Expires: 0");
    }
  }

  req.set_call_id(sip->sip_call_id->i_id);
  req.set_cseq(sip->sip_cseq->cs_seq);
  if (sip->sip_user_agent && sip->sip_user_agent->g_string) {
    req.set_user_agent(sip->sip_user_agent->g_string);
  }
  auto* received = req.mutable_received();
  received->set_host(ctx.source.host);
  received->set_port(ctx.source.port);
  received->set_transport(ctx.source.transport);
  req.set_gateway_id(ctx.gatewayId);
  // The flow (issue 10): NAT when a Contact is not where the REGISTER came from; RFC 5626
  // outbound (section 6) when the client asks for it (Supported: outbound, every Contact
  // with +sip.instance and reg-id), it came straight from the client (no Path: an edge
  // proxy keeps the flow then) and outbound is on (a Flow-Timer).
  // The top Via's sent-by naming another host than the source says the same (the client
  // put its private address there too).
  if (sip->sip_via && sip->sip_via->v_host && !ctx.source.host.empty() &&
      strcasecmp(sip->sip_via->v_host, ctx.source.host.c_str()) != 0) {
    std::string viaHost = sip->sip_via->v_host;
    if (viaHost.size() > 2 && viaHost.front() == '[' && viaHost.back() == ']') {
      viaHost = viaHost.substr(1, viaHost.size() - 2);
    }
    if (strcasecmp(viaHost.c_str(), ctx.source.host.c_str()) != 0) behindNat = true;
  }
  auto* flow = req.mutable_flow();
  flow->set_nat(behindNat && req.path_size() == 0);
  bool asksOutbound = sip_has_feature(sip->sip_supported, "outbound") && req.contacts_size() > 0;
  for (const auto& c : req.contacts()) {
    if (c.instance_id().empty() || c.reg_id() == 0) asksOutbound = false;
  }
  if (asksOutbound && req.path_size() == 0 && ctx.flowTimerSeconds > 0) {
    flow->set_outbound(true);
    flow->set_flow_timer_seconds(ctx.flowTimerSeconds);
  }
  readCredentials(sip, ctx.domain, req);
  return req;
}

bool contactBehindNat(const url_t* contact, const RequestSource& source) {
  if (!contact || !contact->url_host || source.host.empty()) return false;
  std::string host = contact->url_host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (strcasecmp(host.c_str(), source.host.c_str()) != 0) return true;
  // Same address: over UDP the port must match too (a NAT that kept the address but not
  // the port); over TCP/TLS the source port is an ephemeral one anyway.
  if (source.transport != v1::TRANSPORT_UDP) return false;
  std::uint32_t port = 5060;
  if (contact->url_type == url_sips) port = 5061;
  if (contact->url_port && *contact->url_port) {
    port = static_cast<std::uint32_t>(std::strtoul(contact->url_port, nullptr, 10));
  }
  return port != source.port;
}

void addOutboundHeaders(SipReply& reply, const v1::Flow& flow) {
  if (reply.status < 200 || reply.status >= 300 || !flow.outbound()) return;
  reply.headers.emplace_back("Require", "outbound");
  if (flow.flow_timer_seconds() > 0) {
    reply.headers.emplace_back("Flow-Timer", std::to_string(flow.flow_timer_seconds()));
  }
}

}  // namespace medius::gateway
