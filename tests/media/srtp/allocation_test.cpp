// The packet path allocates nothing in our code: global operator new is counted while a
// steady-state session protects and unprotects (libsrtp and NSS use malloc directly and
// are outside this count; see session.hpp for what they do per packet).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "allocation_counter.hpp"
#include "medius/media/srtp/session.hpp"


namespace medius::media::srtp {
namespace {

static_assert(noexcept(std::declval<SrtpSession&>().protectRtp(std::span<std::uint8_t>(),
                                                               std::declval<std::size_t&>())));
static_assert(noexcept(std::declval<SrtpSession&>().unprotectRtcp(std::span<std::uint8_t>(),
                                                                  std::declval<std::size_t&>())));

TEST(SrtpSessionAllocation, PacketPathDoesNotCallOperatorNew) {
  for (CryptoSuite suite : {CryptoSuite::AesCm128HmacSha1_80, CryptoSuite::AeadAes128Gcm}) {
    const KeyMaterial key = generateKeyMaterial(suite);
    SrtpSession out(suite, key, Direction::Outbound);
    SrtpSession in(suite, key, Direction::Inbound);
    std::vector<std::uint8_t> buffer(200);
    auto packet = [&buffer](std::uint16_t seq) {
      std::fill(buffer.begin(), buffer.end(), 0);
      buffer[0] = 0x80;
      buffer[2] = static_cast<std::uint8_t>(seq >> 8);
      buffer[3] = static_cast<std::uint8_t>(seq);
      buffer[11] = 1;
    };
    media::test::AllocationCounter counter;
    for (std::uint16_t seq = 0; seq < 100; ++seq) {
      packet(seq);
      std::size_t length = 172;
      ASSERT_EQ(out.protectRtp(buffer, length), Status::Ok);
      ASSERT_EQ(in.unprotectRtp(buffer, length), Status::Ok);
      buffer[0] = 0x81;
      buffer[1] = 200;
      length = 28;
      ASSERT_EQ(out.protectRtcp(buffer, length), Status::Ok);
      ASSERT_EQ(in.unprotectRtcp(buffer, length), Status::Ok);
      length = 5;
      ASSERT_EQ(in.unprotectRtp(buffer, length), Status::BadPacket);
    }
    EXPECT_EQ(counter.count(), 0) << suiteName(suite);
  }
}

}  // namespace
}  // namespace medius::media::srtp
