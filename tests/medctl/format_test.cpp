// Formatting of medctl output: the table operators read and the JSON scripts parse.
#include "medius/medctl/format.hpp"

#include <gtest/gtest.h>

namespace medius::medctl {
namespace {

medius::v1::Binding makeBinding(const std::string& user, const std::string& host, int port,
                                medius::v1::Transport transport, unsigned expires) {
  medius::v1::Binding b;
  b.set_aor("sip:" + user + "@example.com");
  b.set_contact_uri("sip:" + user + "@" + host + ":" + std::to_string(port));
  b.set_expires_in(expires);
  b.set_expires_at_ms(1700000000000 + expires * 1000LL);
  b.set_q_millis(1000);
  b.mutable_received()->set_host(host);
  b.mutable_received()->set_port(static_cast<unsigned>(port));
  b.mutable_received()->set_transport(transport);
  return b;
}

TEST(FormatTest, FlowsTableShowsNatStateAndKeepaliveAge) {
  auto nated = makeBinding("alice", "203.0.113.7", 40112, medius::v1::TRANSPORT_UDP, 600);
  nated.set_gateway_id("gw-a");
  nated.mutable_flow()->set_state(medius::v1::Flow::STATE_UNREACHABLE);
  nated.mutable_flow()->set_nat(true);
  nated.mutable_flow()->set_reason("keepalive timeout");
  nated.mutable_flow()->set_last_keepalive_ms(1700000000000);
  auto lan = makeBinding("alice", "192.0.2.5", 5060, medius::v1::TRANSPORT_TCP, 600);
  lan.set_gateway_id("gw-b");
  lan.mutable_flow()->set_state(medius::v1::Flow::STATE_ACTIVE);
  lan.mutable_flow()->set_outbound(true);
  lan.add_path("<sip:lb.example.com;lr>");
  EXPECT_EQ(formatFlowsTable({nated, lan}, 1700000065000),
            "AOR                    FLOW                          GATEWAY  NAT  OUTBOUND  STATE        KEEPALIVE-AGE(s)  REASON\n"
            "sip:alice@example.com  203.0.113.7:40112/udp         gw-a     yes  no        unreachable  65                keepalive timeout\n"
            "sip:alice@example.com  path <sip:lb.example.com;lr>  gw-b     no   yes       active       -                 -\n"
            "2 flow(s) of binding(s), 1 behind NAT, 1 unreachable\n");
  EXPECT_EQ(formatFlowsTable({}, 0), "no flows\n");
  auto doc = bindingToJson(nated);
  EXPECT_EQ(doc["flow"]["state"], "unreachable");
  EXPECT_EQ(doc["flow"]["nat"], true);
  EXPECT_EQ(doc["flow"]["reason"], "keepalive timeout");
  EXPECT_EQ(doc["flow"]["last_keepalive_ms"], 1700000000000);
}

TEST(FormatTest, TransportNames) {
  EXPECT_EQ(transportName(medius::v1::TRANSPORT_UDP), "udp");
  EXPECT_EQ(transportName(medius::v1::TRANSPORT_TCP), "tcp");
  EXPECT_EQ(transportName(medius::v1::TRANSPORT_TLS), "tls");
  EXPECT_EQ(transportName(medius::v1::TRANSPORT_WSS), "wss");
  EXPECT_EQ(transportName(medius::v1::TRANSPORT_UNSPECIFIED), "?");
}

TEST(FormatTest, SourceFormatsHostPortTransportAndBracketsIpv6) {
  medius::v1::SocketAddress a;
  EXPECT_EQ(formatSource(a), "-");
  a.set_host("192.0.2.5");
  a.set_port(5062);
  a.set_transport(medius::v1::TRANSPORT_TCP);
  EXPECT_EQ(formatSource(a), "192.0.2.5:5062/tcp");
  a.set_host("::1");
  a.set_transport(medius::v1::TRANSPORT_UDP);
  EXPECT_EQ(formatSource(a), "[::1]:5062/udp");
}

TEST(FormatTest, EmptyTableSaysSo) {
  EXPECT_EQ(formatBindingsTable({}), "no bindings\n0 bindings, 0 AORs\n");
}

TEST(FormatTest, TableAlignsColumnsAndCountsAors) {
  auto alice = makeBinding("alice", "127.0.0.1", 5070, medius::v1::TRANSPORT_UDP, 3600);
  alice.set_user_agent("SIPp 3.6");
  alice.set_instance_id("urn:uuid:1");
  auto alice2 = makeBinding("alice", "127.0.0.1", 5071, medius::v1::TRANSPORT_TCP, 59);
  auto bob = makeBinding("bob", "127.0.0.2", 5080, medius::v1::TRANSPORT_UDP, 120);
  // Columns are as wide as their longest cell plus two blanks; the last is not padded.
  const std::string expected =
      "AOR                    CONTACT                   EXPIRES(s)  SOURCE              "
      "USER-AGENT  INSTANCE\n"
      "sip:alice@example.com  sip:alice@127.0.0.1:5070  3600        127.0.0.1:5070/udp  "
      "SIPp 3.6    urn:uuid:1\n"
      "sip:alice@example.com  sip:alice@127.0.0.1:5071  59          127.0.0.1:5071/tcp  "
      "-           -\n"
      "sip:bob@example.com    sip:bob@127.0.0.2:5080    120         127.0.0.2:5080/udp  "
      "-           -\n"
      "3 bindings, 2 AORs\n";
  EXPECT_EQ(formatBindingsTable({alice, alice2, bob}), expected);
}

TEST(FormatTest, SingularTotalLine) {
  const auto b = makeBinding("bob", "127.0.0.2", 5080, medius::v1::TRANSPORT_UDP, 120);
  const std::string table = formatBindingsTable({b});
  EXPECT_NE(table.find("\n1 binding, 1 AOR\n"), std::string::npos) << table;
}

TEST(FormatTest, JsonHasStableKeysAndTotals) {
  auto alice = makeBinding("alice", "127.0.0.1", 5070, medius::v1::TRANSPORT_UDP, 3600);
  alice.set_user_agent("SIPp");
  alice.add_path("<sip:edge@192.0.2.1;lr>");
  alice.set_q_millis(500);
  alice.set_reg_id(1);
  const auto doc = nlohmann::json::parse(formatBindingsJson({alice}));
  EXPECT_EQ(doc["total"], 1);
  EXPECT_EQ(doc["aors"], 1);
  const auto& b = doc["bindings"][0];
  EXPECT_EQ(b["aor"], "sip:alice@example.com");
  EXPECT_EQ(b["contact"], "sip:alice@127.0.0.1:5070");
  EXPECT_EQ(b["expires_in"], 3600);
  EXPECT_EQ(b["expires_at_ms"], 1700003600000);
  EXPECT_DOUBLE_EQ(b["q"].get<double>(), 0.5);
  EXPECT_EQ(b["reg_id"], 1);
  EXPECT_EQ(b["path"][0], "<sip:edge@192.0.2.1;lr>");
  EXPECT_EQ(b["user_agent"], "SIPp");
  EXPECT_EQ(b["source"]["host"], "127.0.0.1");
  EXPECT_EQ(b["source"]["port"], 5070);
  EXPECT_EQ(b["source"]["transport"], "udp");
}

TEST(FormatTest, EmptyJson) {
  const auto doc = nlohmann::json::parse(formatBindingsJson({}));
  EXPECT_TRUE(doc["bindings"].is_array());
  EXPECT_TRUE(doc["bindings"].empty());
  EXPECT_EQ(doc["total"], 0);
}

TEST(FormatTest, EventLines) {
  medius::v1::BindingEvent e;
  e.set_kind(medius::v1::BindingEvent::KIND_ADDED);
  *e.mutable_binding() = makeBinding("bob", "127.0.0.2", 5080, medius::v1::TRANSPORT_TCP, 120);
  EXPECT_EQ(formatEventLine(e),
            "added sip:bob@example.com sip:bob@127.0.0.2:5080 expires=120s "
            "source=127.0.0.2:5080/tcp\n");
  const auto doc = nlohmann::json::parse(formatEventJson(e));
  EXPECT_EQ(doc["event"], "added");
  EXPECT_EQ(doc["binding"]["aor"], "sip:bob@example.com");

  medius::v1::BindingEvent end;
  end.set_kind(medius::v1::BindingEvent::KIND_SNAPSHOT_END);
  EXPECT_EQ(formatEventLine(end), "snapshot-end\n");
  EXPECT_EQ(formatEventJson(end), "{\"event\":\"snapshot-end\"}\n");
  EXPECT_EQ(eventKindName(medius::v1::BindingEvent::KIND_EXPIRED), "expired");
  EXPECT_EQ(eventKindName(medius::v1::BindingEvent::KIND_REMOVED), "removed");
  EXPECT_EQ(eventKindName(medius::v1::BindingEvent::KIND_REFRESHED), "refreshed");
}

}  // namespace
}  // namespace medius::medctl
