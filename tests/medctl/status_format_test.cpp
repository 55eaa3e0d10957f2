// `medctl trunks` / `medctl sessions`: the gateway's trunk view and a media worker's
// sessions as a terminal shows them.
#include "medius/medctl/status_format.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace medius::medctl {
namespace {

constexpr std::int64_t kNow = 1'700'000'100'000;

void setAddress(medius::v1::SocketAddress* address, const std::string& host, std::uint32_t port) {
  address->set_host(host);
  address->set_port(port);
  address->set_transport(medius::v1::TRANSPORT_UDP);
}

TEST(StatusFormatTest, NoTrunks) {
  EXPECT_EQ(formatTrunksTable({}, kNow), "no trunks\n0 trunks, 0 up\n");
}

TEST(StatusFormatTest, TrunksUpDownAndTimedOut) {
  medius::v1::ListTrunkStatusResponse response;
  auto* primary = response.add_trunks();
  primary->set_name("pstn-primary");
  setAddress(primary->mutable_address(), "127.0.0.11", 5060);
  primary->set_up(true);
  primary->set_last_options_code(200);
  primary->set_last_change_ms(kNow - 42'500);
  primary->set_active_calls(3);
  auto* backup = response.add_trunks();
  backup->set_name("pstn-backup");
  setAddress(backup->mutable_address(), "127.0.0.12", 5060);
  backup->set_up(false);
  backup->set_last_options_code(503);
  backup->set_last_change_ms(kNow - 5'000);
  auto* pbx = response.add_trunks();
  pbx->set_name("pbx");
  setAddress(pbx->mutable_address(), "127.0.0.13", 5060);
  pbx->set_up(false);
  pbx->set_last_options_code(0);  // no answer
  pbx->set_last_change_ms(0);     // never changed

  EXPECT_EQ(formatTrunksTable(response, kNow),
            "TRUNK         ADDRESS              STATE  LAST OPTIONS  SINCE  ACTIVE CALLS\n"
            "pstn-primary  127.0.0.11:5060/udp  up     200           42s    3\n"
            "pstn-backup   127.0.0.12:5060/udp  down   503           5s     0\n"
            "pbx           127.0.0.13:5060/udp  down   timeout       -      0\n"
            "3 trunks, 1 up\n");
}

TEST(StatusFormatTest, OneTrunkIsSingular) {
  medius::v1::ListTrunkStatusResponse response;
  auto* trunk = response.add_trunks();
  trunk->set_name("t");
  trunk->set_up(true);
  trunk->set_last_options_code(200);
  trunk->set_last_change_ms(kNow + 1'000);  // clock skew: never negative
  const std::string out = formatTrunksTable(response, kNow);
  EXPECT_NE(out.find("t      -        up     200           0s     0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\n1 trunk, 1 up\n"), std::string::npos) << out;
}

TEST(StatusFormatTest, NoSessions) {
  medius::v1::ListSessionsResponse response;
  response.set_load(0);
  response.set_load_limit(200);
  EXPECT_EQ(formatSessions(response, kNow), "0 sessions, load 0 of 200\n");
}

TEST(StatusFormatTest, SessionWithStats) {
  medius::v1::ListSessionsResponse response;
  response.set_load(1.5);
  response.set_load_limit(200);
  auto* session = response.add_sessions();
  session->set_session_id("call-1");
  session->set_created_at_ms(kNow - 61'900);
  auto* a = session->mutable_leg_a();
  setAddress(a->mutable_local(), "127.0.0.1", 30000);
  setAddress(a->mutable_remote(), "127.0.0.1", 4000);
  a->set_packets_in(3000);
  a->set_packets_out(2990);
  a->set_packets_lost(7);
  auto* b = session->mutable_leg_b();
  setAddress(b->mutable_local(), "127.0.0.1", 30002);
  b->set_packets_out(3000);
  EXPECT_EQ(formatSessions(response, kNow),
            "SESSION call-1  AGE 61s  "
            "A 127.0.0.1:30000/udp -> 127.0.0.1:4000/udp in 3000 out 2990 lost 7  "
            "B 127.0.0.1:30002/udp -> - in 0 out 3000 lost 0\n"
            "1 session, load 1.5 of 200\n");
}

TEST(StatusFormatTest, TranscodedSessionShowsCodecsSrtpQualityAndDrops) {
  medius::v1::ListSessionsResponse response;
  response.set_load(0.48);
  response.set_load_limit(160);
  auto* session = response.add_sessions();
  session->set_session_id("call-2");
  session->set_created_at_ms(kNow - 5'000);
  session->set_transcoding(true);
  auto* a = session->mutable_leg_a();
  setAddress(a->mutable_local(), "127.0.0.1", 30000);
  setAddress(a->mutable_remote(), "127.0.0.21", 4000);
  a->set_codec("opus");
  a->set_srtp(true);
  a->set_packets_in(250);
  a->set_packets_out(249);
  a->set_packets_lost(5);
  a->set_loss_percent(2.0);
  a->set_jitter_ms(3.25);
  a->set_mos(4.04);
  a->set_srtp_auth_failures(2);
  a->set_payload_drops(1);
  auto* b = session->mutable_leg_b();
  setAddress(b->mutable_local(), "127.0.0.1", 30002);
  setAddress(b->mutable_remote(), "127.0.0.13", 5000);
  b->set_codec("PCMU");
  b->set_packets_in(250);
  b->set_packets_out(250);
  b->set_rtt_ms(12.4);
  b->set_mos(4.41);
  EXPECT_EQ(formatSessions(response, kNow),
            "SESSION call-2  AGE 5s  TRANSCODING  "
            "A 127.0.0.1:30000/udp -> 127.0.0.21:4000/udp opus/SRTP in 250 out 249 lost 5 (2.0%) "
            "jitter 3.2ms MOS 4.04 dropped 3 (srtp 2, malformed 0, payload 1)  "
            "B 127.0.0.1:30002/udp -> 127.0.0.13:5000/udp PCMU in 250 out 250 lost 0 rtt 12ms "
            "MOS 4.41\n"
            "1 session, load 0.48 of 160\n");
}

TEST(StatusFormatTest, JsonUsesProtoFieldNamesAndPrintsDefaults) {
  medius::v1::ListTrunkStatusResponse response;
  auto* trunk = response.add_trunks();
  trunk->set_name("pbx");
  trunk->set_up(false);
  const auto json = nlohmann::json::parse(messageToJson(response));
  EXPECT_EQ(json["trunks"][0]["name"], "pbx");
  EXPECT_EQ(json["trunks"][0]["up"], false);
  EXPECT_EQ(json["trunks"][0]["last_options_code"], 0);
}

}  // namespace
}  // namespace medius::medctl
