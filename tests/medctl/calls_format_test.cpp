// `medctl calls`: the gateway's active calls as a terminal shows them.
#include "medius/medctl/calls_format.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "medius/medctl/status_format.hpp"

namespace medius::medctl {
namespace {

constexpr std::int64_t kNow = 1'700'000'100'000;

medius::v1::CallLeg* addLeg(medius::v1::CallInfo* call, medius::v1::Side side,
                            const std::string& callId, const std::string& target,
                            const std::string& state) {
  auto* leg = call->add_legs();
  leg->set_side(side);
  leg->set_call_id(callId);
  leg->set_target(target);
  leg->set_state(state);
  return leg;
}

TEST(CallsFormatTest, NoCalls) {
  EXPECT_EQ(formatCallsTable({}, kNow), "no calls\n0 calls, 0 answered\n");
}

TEST(CallsFormatTest, AnsweredAndRingingCallsWithLegs) {
  medius::v1::ListCallsResponse response;
  auto* answered = response.add_calls();
  answered->set_id("c-1");
  answered->set_caller("sip:alice@example.com");
  answered->set_callee("0014255550100");
  answered->set_started_at_ms(kNow - 190'000);
  answered->set_answered_at_ms(kNow - 187'400);
  answered->set_trunk("pstn-primary");
  answered->set_media_worker("127.0.0.1:50053");
  addLeg(answered, medius::v1::SIDE_INTERNAL, "a8@127.0.0.21", "sip:alice@127.0.0.1:5070",
         "confirmed");
  addLeg(answered, medius::v1::SIDE_TRUNK, "gw-77", "sip:+14255550100@127.0.0.11:5060",
         "confirmed");
  auto* ringing = response.add_calls();
  ringing->set_id("c-2");
  ringing->set_caller("+14255550199");
  ringing->set_callee("4255550100");
  ringing->set_started_at_ms(kNow - 4'000);
  ringing->set_media_worker("127.0.0.1:50053");
  addLeg(ringing, medius::v1::SIDE_TRUNK, "x@127.0.0.11", "sip:4255550100@127.0.0.1:5060",
         "early");
  addLeg(ringing, medius::v1::SIDE_INTERNAL, "gw-78", "sip:alice@127.0.0.1:5070", "early");
  addLeg(ringing, medius::v1::SIDE_INTERNAL, "gw-79", "sip:alice@127.0.0.1:5072", "calling");

  EXPECT_EQ(
      formatCallsTable(response, kNow),
      "CALL  CALLER -> CALLEE                        STATE      AGE    DURATION  TRUNK         MEDIA WORKER\n"
      "c-1   sip:alice@example.com -> 0014255550100  confirmed  3m10s  3m07s     pstn-primary  127.0.0.1:50053\n"
      "  internal  a8@127.0.0.21  sip:alice@127.0.0.1:5070          confirmed\n"
      "  trunk     gw-77          sip:+14255550100@127.0.0.11:5060  confirmed\n"
      "c-2   +14255550199 -> 4255550100              early      4s     -         -             127.0.0.1:50053\n"
      "  trunk     x@127.0.0.11   sip:4255550100@127.0.0.1:5060     early\n"
      "  internal  gw-78          sip:alice@127.0.0.1:5070          early\n"
      "  internal  gw-79          sip:alice@127.0.0.1:5072          calling\n"
      "2 calls, 1 answered\n");
}

TEST(CallsFormatTest, OneCallWithoutLegsOrValues) {
  medius::v1::ListCallsResponse response;
  auto* call = response.add_calls();
  call->set_id("c-3");
  call->set_started_at_ms(kNow + 5'000);  // clock skew: never negative
  EXPECT_EQ(formatCallsTable(response, kNow),
            "CALL  CALLER -> CALLEE  STATE  AGE  DURATION  TRUNK  MEDIA WORKER\n"
            "c-3   - -> -            -      0s   -         -      -\n"
            "1 call, 0 answered\n");
}

TEST(CallsFormatTest, ControlCharactersDoNotReachTheTerminal) {
  medius::v1::ListCallsResponse response;
  auto* call = response.add_calls();
  call->set_id("c-4");
  call->set_caller("evil\x1b[2J\r\nname");
  call->set_callee("bob");
  const std::string out = formatCallsTable(response, kNow);
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_NE(out.find("evil?[2J??name -> bob"), std::string::npos) << out;
}

TEST(CallsFormatTest, StateFromLegs) {
  medius::v1::CallInfo call;
  EXPECT_EQ(callState(call), "-");
  addLeg(&call, medius::v1::SIDE_INTERNAL, "a", "t", "routing");
  EXPECT_EQ(callState(call), "routing");
  call.mutable_legs(0)->set_state("whatever");
  EXPECT_EQ(callState(call), "whatever");
  call.mutable_legs(0)->set_state("proceeding");
  EXPECT_EQ(callState(call), "proceeding");
  addLeg(&call, medius::v1::SIDE_TRUNK, "b", "t", "calling");
  EXPECT_EQ(callState(call), "proceeding");
  addLeg(&call, medius::v1::SIDE_TRUNK, "c", "t", "early");
  EXPECT_EQ(callState(call), "early");
  call.mutable_legs(1)->set_state("confirmed");
  EXPECT_EQ(callState(call), "confirmed");
  call.mutable_legs(0)->set_state("terminating");
  EXPECT_EQ(callState(call), "terminating");
}

TEST(CallsFormatTest, Durations) {
  EXPECT_EQ(formatDuration(0), "0s");
  EXPECT_EQ(formatDuration(59), "59s");
  EXPECT_EQ(formatDuration(60), "1m00s");
  EXPECT_EQ(formatDuration(187), "3m07s");
  EXPECT_EQ(formatDuration(7205), "2h00m05s");
  EXPECT_EQ(formatDuration(-3), "0s");
}

TEST(CallsFormatTest, JsonUsesProtoFieldNames) {
  medius::v1::ListCallsResponse response;
  auto* call = response.add_calls();
  call->set_id("c-1");
  call->set_answered_at_ms(kNow);
  addLeg(call, medius::v1::SIDE_TRUNK, "gw-1", "sip:2200@127.0.0.13:5060", "confirmed");
  const auto j = nlohmann::json::parse(messageToJson(response));
  EXPECT_EQ(j["calls"][0]["id"], "c-1");
  EXPECT_EQ(j["calls"][0]["answered_at_ms"], std::to_string(kNow));  // int64 as a string
  EXPECT_EQ(j["calls"][0]["legs"][0]["side"], "SIDE_TRUNK");
  EXPECT_EQ(j["calls"][0]["legs"][0]["call_id"], "gw-1");
}

}  // namespace
}  // namespace medius::medctl

namespace medius::medctl {
namespace {

TEST(GatewayFlowsTable, ListsEachFlowWithItsKeepaliveAge) {
  medius::v1::ListFlowsResponse response;
  EXPECT_EQ(formatGatewayFlowsTable(response, 0), "no flows\n");
  auto* nated = response.add_flows();
  nated->mutable_address()->set_host("203.0.113.7");
  nated->mutable_address()->set_port(40112);
  nated->mutable_address()->set_transport(medius::v1::TRANSPORT_UDP);
  nated->add_aors("sip:alice@example.com");
  nated->add_aors("sip:bob@example.com");
  nated->set_nat(true);
  nated->set_state("unreachable");
  nated->set_reason("keepalive timeout");
  nated->set_last_keepalive_ms(1000);
  auto* tcp = response.add_flows();
  tcp->mutable_address()->set_host("192.0.2.5");
  tcp->mutable_address()->set_port(50000);
  tcp->mutable_address()->set_transport(medius::v1::TRANSPORT_TCP);
  tcp->add_aors("sip:carol@example.com");
  tcp->set_outbound(true);
  tcp->set_state("active");
  tcp->set_last_keepalive_ms(20000);
  EXPECT_EQ(formatGatewayFlowsTable(response, 21500),
            "FLOW                   AORS                                       NAT  OUTBOUND  STATE        KEEPALIVE-AGE(s)  REASON\n"
            "203.0.113.7:40112/udp  sip:alice@example.com,sip:bob@example.com  yes  no        unreachable  20                keepalive timeout\n"
            "192.0.2.5:50000/tcp    sip:carol@example.com                      no   yes       active       1                 -\n"
            "2 flow(s), 1 unreachable\n");
}

}  // namespace
}  // namespace medius::medctl
