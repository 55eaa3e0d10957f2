// Routing.ControlLine (remote call control, docs/rcc.md) over the reference topology: only
// alice controls alice's line, only because she has a PBX phone, and only while its trunk is up.
#include <gtest/gtest.h>

#include "routing_test_support.hpp"

namespace medius::routing::test {
namespace {

using R = v1::ControlLineResponse;

R control(const Config& cfg, const TrunkHealth& health, const std::string& user,
          const std::string& device) {
  v1::ControlLineRequest q;
  q.set_user_aor(user);
  q.set_device(device);
  return controlLine(cfg, health, q);
}

TEST(ControlLine, TheOwnerControlsHerCoexistenceLine) {
  auto cfg = exampleConfig();
  TrunkHealth health;
  for (const std::string device :
       {"tel:+14255550100", "+14255550100;ext=100", "sip:+14255550100@example.com;user=phone",
        "sip:alice@example.com", "<tel:+1 (425) 555-0100>"}) {
    R r = control(*cfg, health, "sip:alice@example.com", device);
    EXPECT_EQ(r.outcome(), R::OUTCOME_ALLOWED) << device << ": " << r.reason();
    EXPECT_EQ(r.line_number(), "+14255550100");
    EXPECT_EQ(r.pbx_phone().trunk(), "pbx");
    EXPECT_TRUE(r.pbx_phone().pbx_phone());
    EXPECT_EQ(r.pbx_phone().address().host(), "127.0.0.13");
    EXPECT_NE(r.pbx_phone().request_uri().find("@127.0.0.13"), std::string::npos);
    EXPECT_EQ(r.config_hash(), cfg->hash);
  }
}

TEST(ControlLine, OthersLinesUnknownDevicesAndNoPbxPhoneAreRefused) {
  auto cfg = exampleConfig();
  TrunkHealth health;
  EXPECT_EQ(control(*cfg, health, "sip:alice@example.com", "tel:+14255550101").outcome(),
            R::OUTCOME_NOT_OWNER);
  EXPECT_EQ(control(*cfg, health, "sip:bob@example.com", "tel:+14255550100").outcome(),
            R::OUTCOME_NOT_OWNER);
  R bob = control(*cfg, health, "sip:bob@example.com", "tel:+14255550101");
  EXPECT_EQ(bob.outcome(), R::OUTCOME_NO_PBX_PHONE) << bob.reason();
  EXPECT_FALSE(bob.has_pbx_phone());
  EXPECT_EQ(control(*cfg, health, "sip:alice@example.com", "tel:+19995550123").outcome(),
            R::OUTCOME_UNKNOWN_DEVICE);
  EXPECT_EQ(control(*cfg, health, "sip:alice@example.com", "").outcome(),
            R::OUTCOME_UNKNOWN_DEVICE);
  // Not a configured user at all.
  EXPECT_EQ(control(*cfg, health, "sip:mallory@example.com", "tel:+14255550100").outcome(),
            R::OUTCOME_NOT_OWNER);
}

TEST(ControlLine, ADownPbxTrunkIsNoPbxPhone) {
  auto cfg = exampleConfig();
  TrunkHealth health;
  health.report("pbx", false);
  R r = control(*cfg, health, "sip:alice@example.com", "tel:+14255550100");
  EXPECT_EQ(r.outcome(), R::OUTCOME_NO_PBX_PHONE);
  EXPECT_NE(r.reason().find("down"), std::string::npos) << r.reason();
}

}  // namespace
}  // namespace medius::routing::test
