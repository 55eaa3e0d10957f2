#include "medius/registrar/registrar.hpp"

#include <algorithm>
#include <set>

#include "medius/common/logging.hpp"
#include "medius/registrar/expiry.hpp"

namespace medius::registrar {

namespace {

using medius::v1::RegisterRequest;
using medius::v1::RegisterResponse;

RegisterResponse result(RegisterResponse::Result r, std::string reason) {
  RegisterResponse resp;
  resp.set_result(r);
  resp.set_reason(std::move(reason));
  return resp;
}

// RFC 5626 section 6: a contact with +sip.instance and reg-id is keyed by that pair (a
// flow); without them by its URI.
bool sameKey(const Binding& b, const medius::v1::ContactSpec& c) {
  if (!c.instance_id().empty()) {
    return b.instance_id() == c.instance_id() && b.reg_id() == c.reg_id();
  }
  return b.instance_id().empty() && b.contact_uri() == c.uri();
}

}  // namespace

void sortBindings(Bindings& bindings) {
  std::stable_sort(bindings.begin(), bindings.end(), [](const Binding& a, const Binding& b) {
    if (a.aor() != b.aor()) return a.aor() < b.aor();
    if (a.q_millis() != b.q_millis()) return a.q_millis() > b.q_millis();
    return a.updated_at_ms() > b.updated_at_ms();
  });
}

Registrar::Registrar(const RegistrarConfig& config, BindingStore& store, const Clock& clock,
                     RegistrarMetrics& metrics)
    : config_(config), store_(store), clock_(clock), metrics_(metrics) {}

const digest::NonceManager& Registrar::nonces() {
  std::lock_guard lock(nonceMutex_);
  if (!nonces_) {
    std::string secret = config_.auth.nonceSecret
                             ? *config_.auth.nonceSecret
                             : store_.sharedNonceSecret(digest::randomHex(32));
    // The opaque value is derived from the shared secret, so every replica issues and
    // accepts the same one.
    opaque_ = digest::hashHex(digest::Algorithm::Sha256, "opaque:" + secret).substr(0, 24);
    nonces_ = std::make_unique<digest::NonceManager>(secret, config_.auth.nonceTtlSeconds * 1000,
                                                     clock_);
  }
  return *nonces_;
}

std::string Registrar::opaque() {
  nonces();
  std::lock_guard lock(nonceMutex_);
  return opaque_;
}

std::vector<medius::v1::DigestChallenge> Registrar::challenges(bool stale) {
  std::vector<medius::v1::DigestChallenge> out;
  const auto& nm = nonces();
  std::string op = opaque();
  for (auto alg : config_.auth.algorithms) {
    medius::v1::DigestChallenge c;
    c.set_realm(config_.auth.realm);
    c.set_nonce(nm.issue());
    c.set_opaque(op);
    c.set_algorithm(std::string(digest::algorithmName(alg)));
    c.set_qop("auth");
    c.set_stale(stale);
    c.set_header_value(digest::challengeHeader(c.realm(), c.nonce(), op, alg, stale));
    out.push_back(std::move(c));
  }
  return out;
}

void Registrar::countAuthFailure(AuthOutcome outcome) {
  switch (outcome) {
    case AuthOutcome::Ok: return;
    case AuthOutcome::Missing: metrics_.authFailures.missing.Increment(); return;
    case AuthOutcome::Malformed: metrics_.authFailures.malformed.Increment(); return;
    case AuthOutcome::UnknownUser: metrics_.authFailures.unknownUser.Increment(); return;
    case AuthOutcome::BadResponse: metrics_.authFailures.badResponse.Increment(); return;
    case AuthOutcome::Stale: metrics_.authFailures.stale.Increment(); return;
    case AuthOutcome::Replayed: metrics_.authFailures.replayed.Increment(); return;
  }
}

AuthCheck Registrar::verify(const medius::v1::DigestCredentials& c) {
  auto check = [&]() -> AuthCheck {
    if (c.username().empty() && c.response().empty()) {
      return {AuthOutcome::Missing, nullptr, "no credentials"};
    }
    // Credentials for another realm are not ours: the same as none (RFC 3261 22.3).
    if (c.realm() != config_.auth.realm) {
      return {AuthOutcome::Missing, nullptr, "credentials for another realm"};
    }
    auto alg = digest::parseAlgorithm(c.algorithm());
    bool offered = false;
    if (alg) {
      for (auto a : config_.auth.algorithms) {
        offered = offered || a == *alg ||
                  (digest::isSession(*alg) &&
                   ((a == digest::Algorithm::Md5 && *alg == digest::Algorithm::Md5Sess) ||
                    (a == digest::Algorithm::Sha256 && *alg == digest::Algorithm::Sha256Sess)));
      }
    }
    if (!offered) return {AuthOutcome::Malformed, nullptr, "algorithm not offered"};
    if (c.qop() != "auth") return {AuthOutcome::Malformed, nullptr, "qop must be auth"};
    auto nc = digest::parseNonceCount(c.nc());
    if (!nc || *nc == 0) return {AuthOutcome::Malformed, nullptr, "bad nonce-count"};
    if (c.cnonce().empty() || c.nonce().empty() || c.uri().empty() || c.method().empty()) {
      return {AuthOutcome::Malformed, nullptr, "incomplete credentials"};
    }
    const auto& nm = nonces();
    if (c.opaque() != opaque()) return {AuthOutcome::Malformed, nullptr, "opaque mismatch"};
    auto nonceState = nm.check(c.nonce());
    if (nonceState == digest::NonceManager::Check::Invalid) {
      return {AuthOutcome::Malformed, nullptr, "nonce not issued by this registrar"};
    }
    const UserConfig* user = config_.findUser(c.username());
    if (!user) return {AuthOutcome::UnknownUser, nullptr, "unknown user"};
    const std::string& ha1 = user->ha1For(*alg);
    if (ha1.empty()) return {AuthOutcome::UnknownUser, nullptr, "no credentials for algorithm"};
    digest::Response r{c.username(), c.realm(), c.nonce(), c.uri(),
                       c.method(),   c.qop(),   c.nc(),    c.cnonce()};
    std::string expected = digest::expectedResponse(*alg, ha1, r);
    std::string got = c.response();
    std::transform(got.begin(), got.end(), got.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (!digest::equalConstantTime(expected, got)) {
      return {AuthOutcome::BadResponse, nullptr, "wrong response"};
    }
    // RFC 7616 3.3: a correct response with an expired nonce is answered with stale=true.
    if (nonceState == digest::NonceManager::Check::Stale) {
      return {AuthOutcome::Stale, nullptr, "stale nonce"};
    }
    // A nonce-count must grow with every use of a nonce (RFC 7616 3.4); shared by replicas.
    if (!store_.useNonceCount(c.nonce(), *nc, nm.ttlMs() + 60'000)) {
      return {AuthOutcome::Replayed, nullptr, "nonce-count replayed"};
    }
    return {AuthOutcome::Ok, user, ""};
  };
  AuthCheck out = check();
  countAuthFailure(out.outcome);
  return out;
}

medius::v1::VerifyDigestResponse Registrar::verifyDigest(
    const medius::v1::DigestCredentials& credentials) {
  medius::v1::VerifyDigestResponse resp;
  AuthCheck a = verify(credentials);
  switch (a.outcome) {
    case AuthOutcome::Ok:
      resp.set_result(medius::v1::VerifyDigestResponse::RESULT_OK);
      resp.set_aor(a.user->aor);
      return resp;
    case AuthOutcome::Stale: resp.set_result(medius::v1::VerifyDigestResponse::RESULT_STALE); break;
    case AuthOutcome::Replayed:
      resp.set_result(medius::v1::VerifyDigestResponse::RESULT_REPLAYED);
      break;
    case AuthOutcome::Missing:
    case AuthOutcome::Malformed:
    case AuthOutcome::UnknownUser:
    case AuthOutcome::BadResponse:
      resp.set_result(medius::v1::VerifyDigestResponse::RESULT_INVALID);
      break;
  }
  resp.set_reason(a.reason);
  for (auto& c : challenges(a.outcome == AuthOutcome::Stale)) *resp.add_challenges() = std::move(c);
  return resp;
}

void Registrar::countResult(RegisterResponse::Result r) {
  auto& m = metrics_.results;
  switch (r) {
    case RegisterResponse::RESULT_OK: m.ok.Increment(); return;
    case RegisterResponse::RESULT_UNAUTHORIZED: m.unauthorized.Increment(); return;
    case RegisterResponse::RESULT_FORBIDDEN: m.forbidden.Increment(); return;
    case RegisterResponse::RESULT_INTERVAL_TOO_BRIEF: m.intervalTooBrief.Increment(); return;
    case RegisterResponse::RESULT_OUT_OF_ORDER: m.outOfOrder.Increment(); return;
    case RegisterResponse::RESULT_NOT_FOUND: m.notFound.Increment(); return;
    case RegisterResponse::RESULT_BAD_REQUEST: m.badRequest.Increment(); return;
    case RegisterResponse::RESULT_TOO_MANY_CONTACTS: m.tooManyContacts.Increment(); return;
    case RegisterResponse::RESULT_UNSPECIFIED:
    case medius::v1::RegisterResponse_Result_RegisterResponse_Result_INT_MIN_SENTINEL_DO_NOT_USE_:
    case medius::v1::RegisterResponse_Result_RegisterResponse_Result_INT_MAX_SENTINEL_DO_NOT_USE_: return;
  }
}

RegisterResponse Registrar::finish(RegisterResponse response) {
  countResult(response.result());
  return response;
}

void Registrar::publish(BindingEvent::Kind kind, const Binding& binding) {
  BindingEvent ev;
  ev.set_kind(kind);
  *ev.mutable_binding() = binding;
  try {
    store_.publish(ev);
  } catch (const StoreUnavailable& e) {
    // The change itself is committed; only watchers miss it.
    log::get("registrar")->warn("cannot publish a binding event: {}", e.what());
  }
}

void Registrar::fillExpiresIn(Bindings& bindings, std::int64_t nowMs) const {
  for (auto& b : bindings) b.set_expires_in(secondsLeft(b.expires_at_ms(), nowMs));
}

RegisterResponse Registrar::handleRegister(const RegisterRequest& req) {
  if (req.aor().empty()) throw InvalidRequest("aor is empty");
  auto aor = parseAor(req.aor());
  if (!aor) throw InvalidRequest("aor \"" + req.aor() + "\" is not sip:user@domain");
  if (req.call_id().empty()) throw InvalidRequest("call_id is empty");
  try {
    // RFC 3261 10.3 step 1: only AORs of our domain. Unknown domain -> 404 (RESULT_NOT_FOUND).
    if (aor->domain != config_.domain) {
      return finish(result(RegisterResponse::RESULT_NOT_FOUND,
                           "not responsible for domain " + aor->domain));
    }
    RegisterResponse resp;
    // Steps 3-4: authenticate, then authorize the user for this AOR.
    if (config_.auth.required) {
      AuthCheck a = req.has_credentials()
                        ? verify([&] {
                            auto c = req.credentials();
                            if (c.method().empty()) c.set_method("REGISTER");
                            return c;
                          }())
                        : AuthCheck{AuthOutcome::Missing, nullptr, "no credentials"};
      if (!req.has_credentials()) countAuthFailure(AuthOutcome::Missing);
      if (a.outcome != AuthOutcome::Ok) {
        RegisterResponse r = result(RegisterResponse::RESULT_UNAUTHORIZED, a.reason);
        r.set_credentials_rejected(a.outcome == AuthOutcome::Malformed ||
                                   a.outcome == AuthOutcome::UnknownUser ||
                                   a.outcome == AuthOutcome::BadResponse);
        for (auto& c : challenges(a.outcome == AuthOutcome::Stale)) *r.add_challenges() = std::move(c);
        return finish(std::move(r));
      }
      if (a.user->aor != req.aor()) {
        return finish(result(RegisterResponse::RESULT_FORBIDDEN,
                             "user " + a.user->username + " may not register " + req.aor()));
      }
      resp.set_authenticated_user(a.user->username);
    }

    // Step 6: the request's contacts and their expiries.
    if (req.wildcard()) {
      if (!req.contacts().empty() || !req.has_expires() || req.expires() != 0) {
        return finish(result(RegisterResponse::RESULT_BAD_REQUEST,
                             "Contact: * needs Expires: 0 and no other Contact"));
      }
    }
    std::vector<ExpiryDecision> decisions;
    for (const auto& c : req.contacts()) {
      if (c.uri().empty()) {
        return finish(result(RegisterResponse::RESULT_BAD_REQUEST, "Contact without a URI"));
      }
      if (c.has_q_millis() && c.q_millis() > 1000) {
        return finish(result(RegisterResponse::RESULT_BAD_REQUEST, "Contact q above 1"));
      }
      auto d = decideExpiry(config_.expiry, c.has_expires() ? std::optional(c.expires()) : std::nullopt,
                            req.has_expires() ? std::optional(req.expires()) : std::nullopt);
      if (d.kind == ExpiryDecision::Kind::TooBrief) {
        RegisterResponse r = result(RegisterResponse::RESULT_INTERVAL_TOO_BRIEF, "Interval Too Brief");
        r.set_min_expires(config_.expiry.minSeconds);
        return finish(std::move(r));
      }
      decisions.push_back(d);
    }

    // Steps 7-8: apply atomically. The mutator may run more than once (Redis retries), so
    // everything it records is reset at each run.
    const std::int64_t now = clock_.nowMs();
    RegisterResponse::Result refusal = RegisterResponse::RESULT_OK;
    std::vector<std::pair<BindingEvent::Kind, Binding>> events;
    auto mutator = [&](Bindings& bindings) {
      refusal = RegisterResponse::RESULT_OK;
      events.clear();
      if (req.wildcard()) {
        for (const auto& b : bindings) {
          if (b.call_id() == req.call_id() && req.cseq() <= b.cseq()) {
            refusal = RegisterResponse::RESULT_OUT_OF_ORDER;
            return false;
          }
        }
        for (const auto& b : bindings) events.emplace_back(BindingEvent::KIND_REMOVED, b);
        bindings.clear();
        return true;
      }
      std::set<std::size_t> touched;  // indexes written by this request
      for (int i = 0; i < req.contacts_size(); ++i) {
        const auto& c = req.contacts(i);
        const ExpiryDecision& d = decisions[static_cast<std::size_t>(i)];
        auto it = std::find_if(bindings.begin(), bindings.end(),
                               [&](const Binding& b) { return sameKey(b, c); });
        if (it != bindings.end()) {
          auto index = static_cast<std::size_t>(it - bindings.begin());
          if (!touched.contains(index) && it->call_id() == req.call_id() &&
              req.cseq() <= it->cseq()) {
            refusal = RegisterResponse::RESULT_OUT_OF_ORDER;
            return false;
          }
          if (d.kind == ExpiryDecision::Kind::Remove) {
            events.emplace_back(BindingEvent::KIND_REMOVED, *it);
            bindings.erase(it);
            // Indexes after the erased one shift down.
            std::set<std::size_t> shifted;
            for (auto t : touched) {
              if (t < index) shifted.insert(t);
              if (t > index) shifted.insert(t - 1);
            }
            touched = std::move(shifted);
            continue;
          }
          touched.insert(index);
        } else {
          if (d.kind == ExpiryDecision::Kind::Remove) continue;
          Binding fresh;
          fresh.set_aor(req.aor());
          fresh.set_created_at_ms(now);
          bindings.push_back(std::move(fresh));
          it = std::prev(bindings.end());
          touched.insert(bindings.size() - 1);
        }
        bool added = it->updated_at_ms() == 0;
        it->set_contact_uri(c.uri());
        it->set_expires_at_ms(now + static_cast<std::int64_t>(d.seconds) * 1000);
        it->set_q_millis(c.has_q_millis() ? c.q_millis() : 1000);
        it->set_instance_id(c.instance_id());
        it->set_reg_id(c.reg_id());
        it->mutable_path()->Assign(req.path().begin(), req.path().end());
        it->set_user_agent(req.user_agent());
        *it->mutable_received() = req.received();
        it->set_call_id(req.call_id());
        it->set_cseq(req.cseq());
        it->set_gateway_id(req.gateway_id());
        it->set_updated_at_ms(now);
        // A REGISTER came over this flow: it is alive, whatever was reported before.
        {
          medius::v1::Flow flow = req.flow();
          flow.set_state(medius::v1::Flow::STATE_ACTIVE);
          flow.set_last_keepalive_ms(now);
          flow.clear_reason();
          flow.set_state_changed_at_ms(it->flow().state() == medius::v1::Flow::STATE_ACTIVE
                                           ? it->flow().state_changed_at_ms()
                                           : now);
          *it->mutable_flow() = std::move(flow);
        }
        events.emplace_back(added ? BindingEvent::KIND_ADDED : BindingEvent::KIND_REFRESHED, *it);
      }
      if (bindings.size() > config_.maxContactsPerAor) {
        refusal = RegisterResponse::RESULT_TOO_MANY_CONTACTS;
        return false;
      }
      return true;
    };
    UpdateResult u = store_.update(req.aor(), now, mutator);
    for (const auto& b : u.expired) publish(BindingEvent::KIND_EXPIRED, b);
    if (!u.committed) {
      if (refusal == RegisterResponse::RESULT_OUT_OF_ORDER) {
        return finish(result(refusal, "CSeq not above the binding's for this Call-ID"));
      }
      return finish(result(refusal, "more than " + std::to_string(config_.maxContactsPerAor) +
                                        " contacts for " + req.aor()));
    }
    // Events of a refreshed binding that was later removed in the same request collapse
    // naturally: each event carries the binding as it was at that step.
    for (const auto& [kind, b] : events) {
      Binding copy = b;
      copy.set_expires_in(secondsLeft(b.expires_at_ms(), now));
      publish(kind, copy);
    }
    resp.set_result(RegisterResponse::RESULT_OK);
    resp.set_reason("OK");
    sortBindings(u.bindings);
    fillExpiresIn(u.bindings, now);
    for (auto& b : u.bindings) *resp.add_bindings() = std::move(b);
    return finish(std::move(resp));
  } catch (const StoreUnavailable&) {
    metrics_.results.unavailable.Increment();
    throw;
  }
}

Bindings Registrar::lookup(const std::string& aor, bool includeUnreachable) {
  if (aor.empty()) throw InvalidRequest("aor is empty");
  std::int64_t now = clock_.nowMs();
  Bindings out = store_.lookup(aor, now);
  if (!includeUnreachable) {
    std::erase_if(out, [](const Binding& b) {
      return b.flow().state() == medius::v1::Flow::STATE_UNREACHABLE;
    });
  }
  sortBindings(out);
  fillExpiresIn(out, now);
  return out;
}

Bindings Registrar::list(const std::string& aor) {
  if (!aor.empty()) return lookup(aor, true);
  std::int64_t now = clock_.nowMs();
  Bindings out = store_.list(now);
  sortBindings(out);
  fillExpiresIn(out, now);
  return out;
}

std::uint32_t Registrar::removeBindings(const std::string& aor, const std::string& contactUri) {
  if (aor.empty()) throw InvalidRequest("aor is empty");
  std::int64_t now = clock_.nowMs();
  Bindings removed;
  auto u = store_.update(aor, now, [&](Bindings& bindings) {
    removed.clear();
    std::erase_if(bindings, [&](const Binding& b) {
      if (!contactUri.empty() && b.contact_uri() != contactUri) return false;
      removed.push_back(b);
      return true;
    });
    return true;
  });
  for (const auto& b : u.expired) publish(BindingEvent::KIND_EXPIRED, b);
  for (const auto& b : removed) publish(BindingEvent::KIND_REMOVED, b);
  return static_cast<std::uint32_t>(removed.size());
}

std::uint32_t Registrar::reportFlow(const medius::v1::ReportFlowRequest& req) {
  if (req.aor().empty()) throw InvalidRequest("aor is empty");
  if (req.gateway_id().empty()) throw InvalidRequest("gateway_id is empty");
  if (req.state() != medius::v1::Flow::STATE_ACTIVE &&
      req.state() != medius::v1::Flow::STATE_UNREACHABLE) {
    throw InvalidRequest("state must be ACTIVE or UNREACHABLE");
  }
  std::int64_t now = clock_.nowMs();
  const auto& r = req.received();
  std::vector<Binding> changed;
  auto u = store_.update(req.aor(), now, [&](Bindings& bindings) {
    changed.clear();
    for (auto& b : bindings) {
      const auto& br = b.received();
      if (b.gateway_id() != req.gateway_id() || br.host() != r.host() || br.port() != r.port() ||
          br.transport() != r.transport()) {
        continue;
      }
      auto* flow = b.mutable_flow();
      if (req.last_keepalive_ms() > flow->last_keepalive_ms()) {
        flow->set_last_keepalive_ms(req.last_keepalive_ms());
      }
      if (flow->state() == req.state()) continue;
      flow->set_state(req.state());
      flow->set_reason(req.state() == medius::v1::Flow::STATE_ACTIVE ? "" : req.reason());
      flow->set_state_changed_at_ms(now);
      changed.push_back(b);
    }
    return true;
  });
  for (const auto& b : u.expired) publish(BindingEvent::KIND_EXPIRED, b);
  for (const auto& b : changed) {
    Binding copy = b;
    copy.set_expires_in(secondsLeft(b.expires_at_ms(), now));
    publish(BindingEvent::KIND_REFRESHED, copy);
    if (b.flow().state() == medius::v1::Flow::STATE_UNREACHABLE) {
      metrics_.flowsUnreachable.Increment();
    }
  }
  return static_cast<std::uint32_t>(changed.size());
}

std::size_t Registrar::sweep() {
  std::int64_t now = clock_.nowMs();
  Bindings expired = store_.sweepExpired(now);
  for (const auto& b : expired) publish(BindingEvent::KIND_EXPIRED, b);
  metrics_.bindings.Set(static_cast<double>(store_.count(now)));
  return expired.size();
}

}  // namespace medius::registrar
