#include "medius/gateway/sip_util.hpp"

#include "medius/gateway/register_request.hpp"

#include <array>
#include <cctype>
#include <cstring>
#include <random>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>

namespace medius::gateway {

std::string sdpBody(const sip_t* sip) {
  if (!sip || !sip->sip_payload || !sip->sip_payload->pl_data || sip->sip_payload->pl_len == 0) {
    return {};
  }
  if (!sip->sip_content_type || !sip->sip_content_type->c_type) return {};
  const char* type = sip->sip_content_type->c_type;
  if (strncasecmp(type, "application/sdp", 15) != 0 ||
      (type[15] != '\0' && type[15] != ';' && type[15] != ' ')) {
    return {};
  }
  return std::string(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
}

std::string urlText(const url_t* url, bool bare) {
  if (!url) return {};
  url_t copy = *url;
  if (bare) {
    copy.url_params = nullptr;
    copy.url_headers = nullptr;
  }
  su_home_t home[1] = {SU_HOME_INIT(home)};
  char* text = url_as_string(home, &copy);
  std::string out = text ? text : "";
  su_home_deinit(home);
  return out;
}

std::string aorOf(const url_t* url) {
  if (!url || !url->url_host) return {};
  std::string host = url->url_host;
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string out = url->url_type == url_sips ? "sips:" : "sip:";
  if (url->url_user && *url->url_user) out += std::string(url->url_user) + "@";
  return out + host;
}

std::string unquote(const char* display) {
  if (!display) return {};
  std::string s = display;
  while (!s.empty() && s.back() == ' ') s.pop_back();
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
    std::string out;
    for (std::size_t i = 1; i + 1 < s.size(); ++i) {
      if (s[i] == '\\' && i + 2 < s.size()) ++i;
      out.push_back(s[i]);
    }
    return out;
  }
  return s;
}

std::string quoteDisplay(const std::string& display) {
  std::string out = "\"";
  for (char c : display) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) continue;
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
    if (out.size() > 130) break;
  }
  return out + "\"";
}

std::string escapeUser(const std::string& user) {
  static const char* unreserved = "-_.!~*'()&=+$,;?/";
  std::string out;
  for (unsigned char c : user) {
    if (std::isalnum(c) || std::strchr(unreserved, c)) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string sanitizeHeaderValue(const std::string& text, std::size_t max) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max) break;
    out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
  }
  return out;
}

std::string headerValue(const sip_t*, const sip_header_t* header) {
  if (!header) return {};
  std::array<char, 1024> buf{};
  issize_t n = msg_header_field_e(buf.data(), buf.size(), reinterpret_cast<const msg_header_t*>(header), 0);
  if (n <= 0 || static_cast<std::size_t>(n) >= buf.size()) return {};
  return sanitizeHeaderValue(std::string(buf.data(), static_cast<std::size_t>(n)), 1000);
}

std::string transportName(v1::Transport transport) {
  switch (transport) {
    case v1::TRANSPORT_TCP: return "tcp";
    case v1::TRANSPORT_TLS: return "tls";
    default: return "udp";
  }
}

bool flowOnOtherGateway(const v1::Binding& binding, const std::string& gatewayId) {
  return binding.path_size() == 0 && binding.flow().nat() && !binding.gateway_id().empty() &&
         binding.gateway_id() != gatewayId;
}

const sip_contact_t* contactAtFlow(su_home_t* home, const sip_contact_t* contact,
                                   const v1::SocketAddress& flow) {
  if (!contact || flow.host().empty() || flow.port() == 0) return contact;
  RequestSource source{flow.host(), flow.port(), flow.transport()};
  if (!contactBehindNat(contact->m_url, source)) return contact;
  sip_contact_t* copy = sip_contact_copy(home, contact);
  if (!copy) return contact;
  copy->m_next = nullptr;
  bool ipv6 = flow.host().find(':') != std::string::npos;
  std::string host = ipv6 ? "[" + flow.host() + "]" : flow.host();
  copy->m_url->url_host = su_strdup(home, host.c_str());
  copy->m_url->url_port = su_strdup(home, std::to_string(flow.port()).c_str());
  return copy;
}

std::string nextHopOf(const v1::SocketAddress& address) {
  bool ipv6 = address.host().find(':') != std::string::npos;
  std::string hop = std::string(address.transport() == v1::TRANSPORT_TLS ? "sips:" : "sip:") +
                    (ipv6 ? "[" + address.host() + "]" : address.host());
  if (address.port() != 0) hop += ":" + std::to_string(address.port());
  if (address.transport() == v1::TRANSPORT_TCP) hop += ";transport=tcp";
  return hop;
}

std::string randomToken(std::size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::uniform_int_distribution<std::size_t> pick(0, sizeof alphabet - 2);
  std::string out(n, '0');
  for (char& c : out) c = alphabet[pick(rng)];
  return out;
}

}  // namespace medius::gateway
