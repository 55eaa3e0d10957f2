// medius/common/stun.hpp against the RFC 5769 test vectors, round trips of what it builds,
// and inputs it must refuse without reading past them.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "medius/common/stun.hpp"

namespace medius::stun {
namespace {

std::vector<std::uint8_t> fromHex(std::string_view hex) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// RFC 5769 2.1 (sample request) and 2.2 (sample IPv4 response).
const std::vector<std::uint8_t> kRequest = fromHex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e7400240004"
    "6e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56"
    "781ef2b5b2d3f249c1b571a280280004e57a3bcf");
const std::vector<std::uint8_t> kResponse = fromHex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001a147"
    "e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96");
constexpr const char* kPassword = "VOkJxbRl1RmTxUk/WvJxBt";

TEST(Stun, Rfc5769Request) {
  auto r = parse(kRequest);
  ASSERT_TRUE(r.message) << errorName(r.error);
  const Message& m = *r.message;
  EXPECT_EQ(m.method, kBinding);
  EXPECT_EQ(m.cls, Class::Request);
  EXPECT_EQ(m.transactionId[0], 0xb7);
  EXPECT_EQ(m.transactionId[11], 0xae);
  EXPECT_EQ(m.username, "evtj:h6vY");
  EXPECT_EQ(m.software, "STUN test client");
  EXPECT_EQ(m.priority, 0x6e0001ffu);
  EXPECT_EQ(m.iceControlled, 0x932ff9b151263b36ull);
  EXPECT_FALSE(m.iceControlling);
  EXPECT_FALSE(m.useCandidate);
  EXPECT_TRUE(m.unknownRequired.empty());
  EXPECT_TRUE(verifyIntegrity(kRequest, m, kPassword));
  EXPECT_FALSE(verifyIntegrity(kRequest, m, "wrong password"));
  EXPECT_TRUE(verifyFingerprint(kRequest, m));
  EXPECT_TRUE(looksLikeStun(kRequest));
}

TEST(Stun, Rfc5769Ipv4Response) {
  auto r = parse(kResponse);
  ASSERT_TRUE(r.message) << errorName(r.error);
  const Message& m = *r.message;
  EXPECT_EQ(m.cls, Class::SuccessResponse);
  ASSERT_TRUE(m.xorMappedAddress);
  EXPECT_EQ(m.xorMappedAddress->family, 4);
  EXPECT_EQ(m.xorMappedAddress->ipString(), "192.0.2.1");
  EXPECT_EQ(m.xorMappedAddress->port, 32853);
  EXPECT_TRUE(verifyIntegrity(kResponse, m, kPassword));
  EXPECT_TRUE(verifyFingerprint(kResponse, m));
}

TEST(Stun, AnyFlippedBitFailsIntegrityOrFingerprint) {
  auto original = parse(kRequest);
  ASSERT_TRUE(original.message);
  for (std::size_t i = 0; i < kRequest.size(); ++i) {
    auto copy = kRequest;
    copy[i] ^= 0x01;
    auto r = parse(copy);
    if (!r.message) continue;
    // A bit in the MAC or before it breaks the MAC; one in the fingerprint breaks that.
    EXPECT_FALSE(verifyIntegrity(copy, *r.message, kPassword) && verifyFingerprint(copy, *r.message))
        << "byte " << i;
  }
}

TEST(Stun, BuildsABindingSuccessThatVerifies) {
  TransactionId id = randomTransactionId();
  auto mapped = Address::fromString("198.51.100.7", 40000);
  ASSERT_TRUE(mapped);
  auto bytes = bindingSuccess(id, *mapped, "s3cretpassword-of-22ch");
  auto r = parse(bytes);
  ASSERT_TRUE(r.message) << errorName(r.error);
  EXPECT_EQ(r.message->cls, Class::SuccessResponse);
  EXPECT_EQ(r.message->method, kBinding);
  EXPECT_EQ(r.message->transactionId, id);
  EXPECT_EQ(r.message->xorMappedAddress, mapped);
  EXPECT_TRUE(verifyIntegrity(bytes, *r.message, "s3cretpassword-of-22ch"));
  EXPECT_TRUE(verifyFingerprint(bytes, *r.message));
  // The fingerprint is last; MESSAGE-INTEGRITY right before it.
  EXPECT_EQ(*r.message->fingerprintOffset, bytes.size() - 8);
  EXPECT_EQ(*r.message->integrityOffset, bytes.size() - 8 - 24);
}

TEST(Stun, XorAddressIpv6UsesTheTransactionId) {
  auto mapped = Address::fromString("2001:db8:1234:5678:11:2233:4455:6677", 32853);
  ASSERT_TRUE(mapped);
  TransactionId id{};
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(i * 17 + 3);
  auto bytes = bindingSuccess(id, *mapped, "");
  auto r = parse(bytes);
  ASSERT_TRUE(r.message);
  EXPECT_EQ(r.message->xorMappedAddress, mapped);
  EXPECT_FALSE(r.message->integrityOffset);
  EXPECT_TRUE(verifyFingerprint(bytes, *r.message));
}

TEST(Stun, BuildsErrorResponses) {
  TransactionId id = randomTransactionId();
  for (auto [code, reason] : {std::pair{400, "Bad Request"}, std::pair{487, "Role Conflict"}}) {
    auto bytes = bindingError(id, code, reason, "pwd");
    auto r = parse(bytes);
    ASSERT_TRUE(r.message);
    EXPECT_EQ(r.message->cls, Class::ErrorResponse);
    ASSERT_TRUE(r.message->errorCode);
    EXPECT_EQ(r.message->errorCode->code, code);
    EXPECT_EQ(r.message->errorCode->reason, reason);
    EXPECT_TRUE(verifyIntegrity(bytes, *r.message, "pwd"));
    EXPECT_TRUE(verifyFingerprint(bytes, *r.message));
  }
}

TEST(Stun, RequestWithIceAttributesRoundTrips) {
  TransactionId id = randomTransactionId();
  Builder b(kBinding, Class::Request, id);
  b.addString(attr::kUsername, "ours:theirs")
      .addUint32(attr::kPriority, 1845501695)
      .addUint64(attr::kIceControlling, 0x0102030405060708ull)
      .addFlag(attr::kUseCandidate)
      .addUint32(0x7777, 1)  // unknown, comprehension-required
      .addUint32(0xC001, 2)  // unknown, optional
      .addMessageIntegrity("pw")
      .addFingerprint();
  auto bytes = std::move(b).finish();
  auto r = parse(bytes);
  ASSERT_TRUE(r.message);
  const Message& m = *r.message;
  EXPECT_EQ(m.username, "ours:theirs");
  EXPECT_EQ(m.priority, 1845501695u);
  EXPECT_EQ(m.iceControlling, 0x0102030405060708ull);
  EXPECT_TRUE(m.useCandidate);
  EXPECT_EQ(m.unknownRequired, std::vector<std::uint16_t>{0x7777});
  EXPECT_EQ(m.attributes.size(), 8u);
  EXPECT_TRUE(verifyIntegrity(bytes, m, "pw"));
  EXPECT_TRUE(verifyFingerprint(bytes, m));
}

TEST(Stun, AttributesAfterIntegrityAreIgnoredAndAfterFingerprintRefused) {
  TransactionId id{};
  Builder b(kBinding, Class::Request, id);
  b.addString(attr::kUsername, "a:b").addMessageIntegrity("pw").addFlag(attr::kUseCandidate);
  auto bytes = b.bytes();
  auto r = parse(bytes);
  ASSERT_TRUE(r.message);
  EXPECT_FALSE(r.message->useCandidate);  // not covered by the MAC: not believed
  EXPECT_TRUE(verifyIntegrity(bytes, *r.message, "pw"));

  Builder c(kBinding, Class::Request, id);
  c.addFingerprint().addFlag(attr::kUseCandidate);
  auto after = parse(c.bytes());
  ASSERT_FALSE(after.message);
  EXPECT_EQ(after.error, Error::AfterFingerprint);
}

TEST(Stun, RefusesWhatIsNotAWellFormedMessage) {
  EXPECT_EQ(parse(std::vector<std::uint8_t>{}).error, Error::TooShort);
  EXPECT_EQ(parse(std::vector<std::uint8_t>(19, 0)).error, Error::TooShort);
  // RTP (version 2): the top bits are set.
  auto rtp = kRequest;
  rtp[0] = 0x80;
  EXPECT_EQ(parse(rtp).error, Error::NotStun);
  EXPECT_FALSE(looksLikeStun(rtp));
  auto noCookie = kRequest;
  noCookie[4] = 0;
  EXPECT_EQ(parse(noCookie).error, Error::NotStun);
  auto longer = kRequest;
  longer.push_back(0);
  EXPECT_EQ(parse(longer).error, Error::BadLength);
  auto truncated = kRequest;
  truncated.resize(truncated.size() - 4);
  EXPECT_EQ(parse(truncated).error, Error::TooShort);
  // An attribute whose length runs past the end of the message.
  auto overrun = kRequest;
  overrun[20 + 2] = 0x00;
  overrun[20 + 3] = 0xF0;
  EXPECT_EQ(parse(overrun).error, Error::BadAttribute);
  // PRIORITY of the wrong size.
  Builder b(kBinding, Class::Request, TransactionId{});
  b.addUint64(attr::kPriority, 1);
  EXPECT_EQ(parse(b.bytes()).error, Error::BadAttribute);
  // No MESSAGE-INTEGRITY / FINGERPRINT: nothing verifies.
  Builder plain(kBinding, Class::Request, TransactionId{});
  auto p = parse(plain.bytes());
  ASSERT_TRUE(p.message);
  EXPECT_FALSE(verifyIntegrity(plain.bytes(), *p.message, ""));
  EXPECT_FALSE(verifyFingerprint(plain.bytes(), *p.message));
}

}  // namespace
}  // namespace medius::stun
