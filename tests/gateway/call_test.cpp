// The B2BUA's decisions without a SIP stack (call.hpp) and its SIP text helpers
// (sip_util.hpp).
#include <gtest/gtest.h>

#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su_alloc.h>

#include "medius/gateway/call.hpp"
#include "medius/gateway/sip_util.hpp"

namespace medius::gateway {
namespace {

v1::RoutePlan planWith(v1::RoutePlan::Outcome outcome, std::string reason) {
  v1::RoutePlan plan;
  plan.set_outcome(outcome);
  plan.set_reason(std::move(reason));
  return plan;
}

TEST(RouteOutcomeReply, MapsEveryOutcomeToItsSipStatus) {
  EXPECT_EQ(routeOutcomeReply(planWith(v1::RoutePlan::OUTCOME_NOT_FOUND, "no route"), 5).status, 404);
  EXPECT_EQ(routeOutcomeReply(planWith(v1::RoutePlan::OUTCOME_FORBIDDEN, "policy"), 5).status, 403);
  EXPECT_EQ(routeOutcomeReply(planWith(v1::RoutePlan::OUTCOME_INCOMPLETE, ""), 5).status, 484);
  EXPECT_EQ(routeOutcomeReply(planWith(v1::RoutePlan::OUTCOME_UNAVAILABLE, ""), 5).status, 480);
  SipReply down = routeOutcomeReply(planWith(v1::RoutePlan::OUTCOME_ALL_TRUNKS_DOWN, "all down"), 7);
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(down.header("Retry-After"), "7");
  EXPECT_EQ(routeOutcomeReply(planWith(v1::RoutePlan::OUTCOME_UNSPECIFIED, ""), 5).status, 500);
}

TEST(RouteOutcomeReply, PhraseIsRoutingsReasonOnOneBoundedLine) {
  SipReply r = routeOutcomeReply(
      planWith(v1::RoutePlan::OUTCOME_FORBIDDEN, "policy national\r\nInjected: yes" + std::string(300, 'x')), 5);
  EXPECT_EQ(r.phrase.find('\r'), std::string::npos);
  EXPECT_EQ(r.phrase.find('\n'), std::string::npos);
  EXPECT_LE(r.phrase.size(), 120u);
  EXPECT_EQ(r.phrase.rfind("policy national", 0), 0u);
  EXPECT_EQ(routeOutcomeReply(planWith(v1::RoutePlan::OUTCOME_NOT_FOUND, ""), 5).phrase, "Not Found");
}

TEST(DependencyFailureReply, Is503WithRetryAfterNamingTheService) {
  SipReply r = dependencyFailureReply("Routing", grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, ""), 5);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.phrase, "Routing Timeout");
  EXPECT_EQ(r.header("Retry-After"), "5");
  EXPECT_EQ(dependencyFailureReply("Media", grpc::Status(grpc::StatusCode::UNAVAILABLE, ""), 5).phrase,
            "Media Unavailable");
}

TEST(FailoverAllowed, TrunkFailoverCodesTimeoutsAndTransportErrors) {
  ForkOutcome o;
  o.trunk = true;
  for (int code : {408, 503, 504}) {
    o.status = code;
    EXPECT_TRUE(failoverAllowed(o)) << code;
  }
  for (int code : {404, 486, 500, 603}) {
    o.status = code;
    EXPECT_FALSE(failoverAllowed(o)) << code;
  }
  o.failoverCodes = {500, 503};
  o.status = 500;
  EXPECT_TRUE(failoverAllowed(o));
  o.status = 408;
  EXPECT_FALSE(failoverAllowed(o)) << "the trunk's own list replaces the default";
  o.local = true;
  EXPECT_TRUE(failoverAllowed(o)) << "nta's local 408 is a timeout";
  o.local = false;
  o.timedOut = true;
  o.status = 487;
  EXPECT_TRUE(failoverAllowed(o));
}

TEST(FailoverAllowed, DevicesMoveOnExceptOnGlobalFailure) {
  ForkOutcome o;
  o.trunk = false;
  o.status = 486;
  EXPECT_TRUE(failoverAllowed(o));
  o.status = 603;
  EXPECT_FALSE(failoverAllowed(o));
}

TEST(BestFailure, FollowsTheRanking) {
  EXPECT_EQ(bestFailure({}), 480);
  EXPECT_EQ(bestFailure({487, 408}), 408);
  EXPECT_EQ(bestFailure({503, 486}), 486);
  EXPECT_EQ(bestFailure({404, 600, 486}), 600);
  EXPECT_EQ(bestFailure({487}), 487);
  EXPECT_EQ(bestFailure({503}), 500) << "RFC 3261 16.7: a downstream 503 is not relayed as ours";
  EXPECT_EQ(bestFailure({503}, true), 503);
  EXPECT_EQ(bestFailure({504, 408}), 504);
}

TEST(CallDirection, FromSourceSideAndCallee) {
  EXPECT_EQ(callDirection(Side::Internal, false), "outbound");
  EXPECT_EQ(callDirection(Side::Internal, true), "internal");
  EXPECT_EQ(callDirection(Side::Trunk, true), "inbound");
  EXPECT_EQ(callDirection(Side::Trunk, false), "transit");
}

TEST(NextMaxForwards, DecrementsRefusesZeroAndCaps) {
  EXPECT_EQ(nextMaxForwards(std::nullopt), 69u);
  EXPECT_EQ(nextMaxForwards(70u), 69u);
  EXPECT_EQ(nextMaxForwards(1u), 0u);
  EXPECT_FALSE(nextMaxForwards(0u).has_value());
  EXPECT_EQ(nextMaxForwards(255u), 70u);
}

TEST(SipUtil, SdpBodyOnlyForApplicationSdp) {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  msg_t* msg = msg_create(sip_default_mclass(), 0);
  sip_t* sip = sip_object(msg);
  sip_add_tl(msg, sip, SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR("v=0\r\n"),
             TAG_END());
  EXPECT_EQ(sdpBody(sip), "v=0\r\n");
  msg_destroy(msg);
  msg = msg_create(sip_default_mclass(), 0);
  sip = sip_object(msg);
  sip_add_tl(msg, sip, SIPTAG_CONTENT_TYPE_STR("application/sdpx"), SIPTAG_PAYLOAD_STR("v=0\r\n"),
             TAG_END());
  EXPECT_EQ(sdpBody(sip), "");
  msg_destroy(msg);
  EXPECT_EQ(sdpBody(nullptr), "");
  su_home_deinit(home);
}

TEST(SipUtil, TextHelpers) {
  EXPECT_EQ(quoteDisplay("Alice \"A\" \\ \r\n"), "\"Alice \\\"A\\\" \\\\ \"");
  EXPECT_EQ(unquote("\"Alice \\\"A\\\"\""), "Alice \"A\"");
  EXPECT_EQ(escapeUser("+1 425@x"), "+1%20425%40x");
  EXPECT_EQ(sanitizeHeaderValue("a\r\nb", 10), "a  b");
  EXPECT_EQ(randomToken(24).size(), 24u);
  EXPECT_NE(randomToken(24), randomToken(24));
  v1::SocketAddress a;
  a.set_host("127.0.0.11");
  a.set_port(5060);
  a.set_transport(v1::TRANSPORT_TCP);
  EXPECT_EQ(nextHopOf(a), "sip:127.0.0.11:5060;transport=tcp");
  su_home_t home[1] = {SU_HOME_INIT(home)};
  url_t* url = url_make(home, "sip:Alice@EXAMPLE.com:5062;transport=tcp?x=y");
  EXPECT_EQ(aorOf(url), "sip:Alice@example.com");
  EXPECT_EQ(urlText(url, true), "sip:Alice@EXAMPLE.com:5062");
  su_home_deinit(home);
}

TEST(SipUtil, FlowOnOtherGatewayOnlyForNatBindingsWithoutPath) {
  v1::Binding b;
  b.set_gateway_id("gw-a");
  b.mutable_flow()->set_nat(true);
  EXPECT_TRUE(flowOnOtherGateway(b, "gw-b"));
  EXPECT_FALSE(flowOnOtherGateway(b, "gw-a"));  // ours
  b.add_path("<sip:lb.example.com;lr>");
  EXPECT_FALSE(flowOnOtherGateway(b, "gw-b"));  // the edge proxy holds the flow
  b.clear_path();
  b.mutable_flow()->set_nat(false);
  EXPECT_FALSE(flowOnOtherGateway(b, "gw-b"));  // reachable from anywhere
  b.mutable_flow()->set_nat(true);
  b.clear_gateway_id();
  EXPECT_FALSE(flowOnOtherGateway(b, "gw-b"));
}

TEST(SipUtil, ContactAtFlowRewritesOnlyAContactBehindNat) {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  sip_contact_t* contact = sip_contact_make(home, "<sip:alice@10.200.10.2:5060;transport=tcp>;expires=60");
  ASSERT_NE(contact, nullptr);
  v1::SocketAddress flow;
  flow.set_host("203.0.113.7");
  flow.set_port(40112);
  flow.set_transport(v1::TRANSPORT_TCP);
  const sip_contact_t* fixed = contactAtFlow(home, contact, flow);
  ASSERT_NE(fixed, contact);
  EXPECT_EQ(urlText(fixed->m_url, false), "sip:alice@203.0.113.7:40112;transport=tcp");
  EXPECT_STREQ(contact->m_url->url_host, "10.200.10.2");  // the original is untouched
  // A Contact that is the flow itself, or no flow: unchanged.
  flow.set_host("10.200.10.2");
  flow.set_transport(v1::TRANSPORT_TCP);
  EXPECT_EQ(contactAtFlow(home, contact, flow), contact);
  EXPECT_EQ(contactAtFlow(home, contact, v1::SocketAddress{}), contact);
  EXPECT_EQ(contactAtFlow(home, nullptr, flow), nullptr);
  su_home_deinit(home);
}

// --- each leg's media policy (CreateSessionRequest leg_a / leg_b) ---

const std::vector<std::string> kInternalCodecs{"opus", "G722", "PCMU", "PCMA"};

v1::TrunkMedia trunkMedia(v1::SrtpPolicy srtp, std::vector<std::string> codecs) {
  v1::TrunkMedia m;
  m.set_srtp(srtp);
  for (auto& c : codecs) m.add_codecs(std::move(c));
  return m;
}

void addTrunkTarget(v1::TargetGroup& group, const std::string& trunk, const v1::TrunkMedia& media) {
  auto* t = group.add_targets()->mutable_trunk();
  t->set_trunk(trunk);
  *t->mutable_media() = media;
}

std::vector<std::string> codecsOf(const v1::LegParams& leg) {
  return {leg.codecs().begin(), leg.codecs().end()};
}

TEST(LegParams, InternalCallerToATrunkTarget) {
  v1::RoutePlan plan;
  auto* group = plan.add_groups();
  addTrunkTarget(*group, "pstn-primary", trunkMedia(v1::SRTP_POLICY_OFF, {"PCMU", "PCMA", "G729"}));
  // A failover group with another policy gets an offer of its own (an alternative).
  addTrunkTarget(*plan.add_groups(), "pstn-backup", trunkMedia(v1::SRTP_POLICY_REQUIRED, {"G722"}));
  // A third trunk with the first's policy shares the first's offer.
  addTrunkTarget(*plan.add_groups(), "pstn-third", trunkMedia(v1::SRTP_POLICY_OFF, {"PCMU", "PCMA", "G729"}));
  v1::CreateSessionRequest r;
  fillLegParams(r, Side::Internal, "", v1::TrunkMedia(), plan, v1::SRTP_POLICY_REQUIRED,
                kInternalCodecs);
  EXPECT_EQ(r.leg_a().side(), v1::SIDE_INTERNAL);
  EXPECT_EQ(r.leg_a().trunk(), "");
  EXPECT_EQ(r.leg_a().srtp(), v1::SRTP_POLICY_REQUIRED);
  EXPECT_EQ(codecsOf(r.leg_a()), kInternalCodecs);
  EXPECT_EQ(r.leg_b().side(), v1::SIDE_TRUNK);
  EXPECT_EQ(r.leg_b().trunk(), "pstn-primary");
  EXPECT_EQ(r.leg_b().srtp(), v1::SRTP_POLICY_OFF);
  EXPECT_EQ(codecsOf(r.leg_b()), (std::vector<std::string>{"PCMU", "PCMA", "G729"}));
  ASSERT_EQ(r.leg_b_alternatives_size(), 1);
  EXPECT_EQ(r.leg_b_alternatives(0).trunk(), "pstn-backup");
  EXPECT_EQ(r.leg_b_alternatives(0).srtp(), v1::SRTP_POLICY_REQUIRED);
  EXPECT_EQ(codecsOf(r.leg_b_alternatives(0)), (std::vector<std::string>{"G722"}));
  // Each target finds its offer.
  auto indexOf = [&](int g) {
    return offerIndexFor(r, targetLegParams(plan.groups(g).targets(0), v1::SRTP_POLICY_REQUIRED,
                                            kInternalCodecs));
  };
  EXPECT_EQ(indexOf(0), 0u);
  EXPECT_EQ(indexOf(1), 1u);
  EXPECT_EQ(indexOf(2), 0u);
}

TEST(LegParams, TrunkCallerToAUserAndToAnotherTrunk) {
  v1::RoutePlan plan;
  auto* group = plan.add_groups();
  group->add_targets()->set_user_aor("sip:alice@example.com");
  addTrunkTarget(*group, "pbx", trunkMedia(v1::SRTP_POLICY_OFF, {"PCMU", "PCMA"}));
  v1::TrunkMedia source = trunkMedia(v1::SRTP_POLICY_OPTIONAL, {"G729", "PCMU"});
  v1::CreateSessionRequest r;
  fillLegParams(r, Side::Trunk, "pstn-primary", source, plan, v1::SRTP_POLICY_OPTIONAL,
                kInternalCodecs);
  EXPECT_EQ(r.leg_a().side(), v1::SIDE_TRUNK);
  EXPECT_EQ(r.leg_a().trunk(), "pstn-primary");
  EXPECT_EQ(r.leg_a().srtp(), v1::SRTP_POLICY_OPTIONAL);
  EXPECT_EQ(codecsOf(r.leg_a()), (std::vector<std::string>{"G729", "PCMU"}));
  // The first target is alice's devices: the internal policy; the PBX phone ringing with
  // them (dual forking) gets an offer for the PBX trunk's policy.
  EXPECT_EQ(r.leg_b().side(), v1::SIDE_INTERNAL);
  EXPECT_EQ(r.leg_b().trunk(), "");
  EXPECT_EQ(r.leg_b().srtp(), v1::SRTP_POLICY_OPTIONAL);
  EXPECT_EQ(codecsOf(r.leg_b()), kInternalCodecs);
  ASSERT_EQ(r.leg_b_alternatives_size(), 1);
  EXPECT_EQ(r.leg_b_alternatives(0).side(), v1::SIDE_TRUNK);
  EXPECT_EQ(r.leg_b_alternatives(0).trunk(), "pbx");
  EXPECT_EQ(r.leg_b_alternatives(0).srtp(), v1::SRTP_POLICY_OFF);
  EXPECT_EQ(offerIndexFor(r, targetLegParams(group->targets(1), v1::SRTP_POLICY_OPTIONAL,
                                             kInternalCodecs)),
            1u);

  // Trunk to trunk; a trunk routing listed without media leaves the worker's defaults.
  v1::RoutePlan transit;
  addTrunkTarget(*transit.add_groups(), "pstn-backup", v1::TrunkMedia());
  v1::CreateSessionRequest t;
  fillLegParams(t, Side::Trunk, "pbx", v1::TrunkMedia(), transit, v1::SRTP_POLICY_REQUIRED,
                kInternalCodecs);
  EXPECT_EQ(t.leg_a().srtp(), v1::SRTP_POLICY_UNSPECIFIED);
  EXPECT_EQ(t.leg_a().codecs_size(), 0);
  EXPECT_EQ(t.leg_b().side(), v1::SIDE_TRUNK);
  EXPECT_EQ(t.leg_b().trunk(), "pstn-backup");
  EXPECT_EQ(t.leg_b().srtp(), v1::SRTP_POLICY_UNSPECIFIED);
}

}  // namespace
}  // namespace medius::gateway
