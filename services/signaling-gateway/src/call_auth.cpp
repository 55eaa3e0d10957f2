#include "medius/gateway/call_auth.hpp"

#include <cctype>
#include <string_view>

#include <strings.h>

#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>

#include "medius/gateway/sip_util.hpp"

namespace medius::gateway {

namespace {

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// A 407 from challenges; 403 when there are none (a registrar that gave no challenge
// cannot be answered with credentials anyway).
template <typename Challenges>
SipReply proxyChallenge(const Challenges& challenges) {
  SipReply r{407, "Proxy Authentication Required", {}};
  for (const auto& c : challenges) {
    if (!c.header_value().empty()) r.headers.emplace_back("Proxy-Authenticate", c.header_value());
  }
  if (r.headers.empty()) return SipReply{403, "Forbidden", {}};
  return r;
}

// "sips:" and "sip:" name the same user: compare the AORs without the scheme.
std::string_view withoutScheme(std::string_view aor) {
  auto colon = aor.find(':');
  return colon == std::string_view::npos ? aor : aor.substr(colon + 1);
}

}  // namespace

bool needsCredentials(const sip_t* sip, Side side, CallAuthMode mode, bool trustedPeer) {
  if (side != Side::Internal || mode == CallAuthMode::Off || trustedPeer) return false;
  if (!sip || !sip->sip_request) return false;
  if (sip->sip_to && sip->sip_to->a_tag) return false;  // in a dialog: the leg decides
  switch (sip->sip_request->rq_method) {
    case sip_method_register:
    case sip_method_options:
    case sip_method_ack:
    case sip_method_cancel:
      return false;
    default:
      return true;
  }
}

std::optional<v1::DigestCredentials> digestCredentials(const msg_auth_t* list,
                                                       const std::string& realm,
                                                       const std::string& method) {
  for (const msg_auth_t* au = list; au; au = au->au_next) {
    if (!au->au_scheme || strcasecmp(au->au_scheme, "Digest") != 0) continue;
    auto r = paramValue(au->au_params, "realm");
    if (!r || *r != realm) continue;
    v1::DigestCredentials c;
    c.set_realm(*r);
    c.set_username(paramValue(au->au_params, "username").value_or(""));
    c.set_nonce(paramValue(au->au_params, "nonce").value_or(""));
    c.set_uri(paramValue(au->au_params, "uri").value_or(""));
    c.set_response(lower(paramValue(au->au_params, "response").value_or("")));
    c.set_algorithm(paramValue(au->au_params, "algorithm").value_or(""));
    c.set_cnonce(paramValue(au->au_params, "cnonce").value_or(""));
    c.set_opaque(paramValue(au->au_params, "opaque").value_or(""));
    c.set_qop(paramValue(au->au_params, "qop").value_or(""));
    c.set_nc(paramValue(au->au_params, "nc").value_or(""));
    c.set_method(method);
    return c;
  }
  return std::nullopt;
}

SipReply challengeReply(const grpc::Status& status, const v1::ChallengeResponse& response,
                        std::int64_t retryAfterSeconds) {
  if (!status.ok()) return registrarFailureReply(status, retryAfterSeconds);
  SipReply r = proxyChallenge(response.challenges());
  if (r.status != 407) return registrarFailureReply(grpc::Status(grpc::StatusCode::INTERNAL, "no challenge"),
                                          retryAfterSeconds);
  return r;
}

AuthVerdict verifyVerdict(const grpc::Status& status, const v1::VerifyDigestResponse& response,
                          const std::string& fromAor, bool fromMustMatch,
                          std::int64_t retryAfterSeconds) {
  AuthVerdict v;
  if (!status.ok()) {
    v.reply = registrarFailureReply(status, retryAfterSeconds);
    v.failure = AuthFailure::Unavailable;
    return v;
  }
  using R = v1::VerifyDigestResponse;
  switch (response.result()) {
    case R::RESULT_OK:
      if (response.aor().empty()) break;
      // RFC 3261 22.3 leaves the From to the server's policy. OCS/Lync answer a From that
      // is not the authenticated user with 403 (ms-diagnostics "From URI not authorized"),
      // Teams Direct Routing likewise: a caller must not present someone else's identity,
      // even to its own callees.
      if (fromMustMatch && withoutScheme(fromAor) != withoutScheme(response.aor())) {
        v.reply = SipReply{403, "From Does Not Match The Authenticated User", {}};
        v.failure = AuthFailure::FromMismatch;
        return v;
      }
      v.identity = CallerIdentity{response.aor()};
      return v;
    case R::RESULT_INVALID:
      v.reply = proxyChallenge(response.challenges());
      v.failure = AuthFailure::Invalid;
      return v;
    case R::RESULT_STALE:
      v.reply = proxyChallenge(response.challenges());
      v.failure = AuthFailure::Stale;
      return v;
    case R::RESULT_REPLAYED:
      v.reply = proxyChallenge(response.challenges());
      v.failure = AuthFailure::Replayed;
      return v;
    case R::RESULT_UNSPECIFIED:
    case v1::VerifyDigestResponse_Result_VerifyDigestResponse_Result_INT_MIN_SENTINEL_DO_NOT_USE_:
    case v1::VerifyDigestResponse_Result_VerifyDigestResponse_Result_INT_MAX_SENTINEL_DO_NOT_USE_:
      break;
  }
  // A result we do not know: the registrar is newer or broken; never let it through.
  v.reply = registrarFailureReply(grpc::Status(grpc::StatusCode::INTERNAL, "unexpected result"),
                        retryAfterSeconds);
  v.failure = AuthFailure::Unavailable;
  return v;
}

SipReply unknownTrunkReply() { return SipReply{403, "Not A Configured Trunk", {}}; }

SipReply trunkTlsRequiredReply() { return SipReply{403, "Trunk Requires TLS", {}}; }

SipReply userLockedReply() { return SipReply{403, "Too Many Failed Authentications", {}}; }

std::string assertedIdentity(const sip_t* sip) {
  if (!sip) return {};
  for (const sip_unknown_t* u = sip->sip_unknown; u; u = u->un_next) {
    if (!u->un_name || strcasecmp(u->un_name, "P-Asserted-Identity") != 0 || !u->un_value) continue;
    std::string_view value(u->un_value);
    auto open = value.find('<');
    if (open != std::string_view::npos) {
      auto close = value.find('>', open);
      if (close == std::string_view::npos) return {};
      return std::string(value.substr(open + 1, close - open - 1));
    }
    // name-addr without brackets: the URI up to the first ',' or ';' or space.
    auto end = value.find_first_of(",; \t");
    return std::string(value.substr(0, end));
  }
  return {};
}

bool privacyId(const sip_t* sip) {
  if (!sip || !sip->sip_privacy || !sip->sip_privacy->priv_values) return false;
  for (const msg_param_t* v = sip->sip_privacy->priv_values; *v; ++v) {
    if (strcasecmp(*v, "id") == 0) return true;
  }
  return false;
}

std::string assertedIdentityValue(const std::string& display, const std::string& user,
                                  const std::string& host) {
  return (display.empty() ? std::string() : quoteDisplay(display) + " ") + "<sip:" +
         escapeUser(user) + "@" + host + ">";
}

}  // namespace medius::gateway
