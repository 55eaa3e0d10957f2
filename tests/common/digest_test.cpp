// medius/common/digest.hpp against RFC 7616 section 3.9.1 and the nonce life cycle.
#include <gtest/gtest.h>

#include "medius/common/digest.hpp"

namespace medius::digest {
namespace {

// RFC 7616 section 3.9.1.
Response rfcExample() {
  Response r;
  r.username = "Mufasa";
  r.realm = "http-auth@example.org";
  r.nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
  r.uri = "/dir/index.html";
  r.method = "GET";
  r.qop = "auth";
  r.nc = "00000001";
  r.cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
  return r;
}
constexpr const char* kPassword = "Circle of Life";

TEST(Digest, Rfc7616Md5Example) {
  auto r = rfcExample();
  std::string h = ha1(Algorithm::Md5, r.username, r.realm, kPassword);
  EXPECT_EQ(h, "3d78807defe7de2157e2b0b6573a855f");
  EXPECT_EQ(expectedResponse(Algorithm::Md5, h, r), "8ca523f5e9506fed4657c9700eebdbec");
}

TEST(Digest, Rfc7616Sha256Example) {
  auto r = rfcExample();
  std::string h = ha1(Algorithm::Sha256, r.username, r.realm, kPassword);
  EXPECT_EQ(expectedResponse(Algorithm::Sha256, h, r),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

// -sess values computed independently (Python hashlib) from the same RFC parameters:
// HA1 = H(H(user:realm:pass):nonce:cnonce).
TEST(Digest, SessionVariantsDeriveHa1FromNonceAndCnonce) {
  auto r = rfcExample();
  EXPECT_EQ(expectedResponse(Algorithm::Md5Sess, ha1(Algorithm::Md5, r.username, r.realm, kPassword), r),
            "e783283f46242139c486a698fec7211d");
  EXPECT_EQ(expectedResponse(Algorithm::Sha256Sess,
                             ha1(Algorithm::Sha256, r.username, r.realm, kPassword), r),
            "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7");
}

TEST(Digest, ParseAlgorithm) {
  EXPECT_EQ(parseAlgorithm(""), Algorithm::Md5);
  EXPECT_EQ(parseAlgorithm("md5"), Algorithm::Md5);
  EXPECT_EQ(parseAlgorithm("SHA-256"), Algorithm::Sha256);
  EXPECT_EQ(parseAlgorithm("sha-256-SESS"), Algorithm::Sha256Sess);
  EXPECT_EQ(parseAlgorithm("MD5-sess"), Algorithm::Md5Sess);
  EXPECT_FALSE(parseAlgorithm("SHA-512-256").has_value());
  EXPECT_TRUE(isSession(Algorithm::Md5Sess));
  EXPECT_FALSE(isSession(Algorithm::Sha256));
}

TEST(Digest, NonceCountParsing) {
  EXPECT_EQ(parseNonceCount("00000001"), 1u);
  EXPECT_EQ(parseNonceCount("0000000a"), 10u);
  EXPECT_EQ(parseNonceCount("FFFFFFFF"), 0xffffffffu);
  EXPECT_FALSE(parseNonceCount("1").has_value());
  EXPECT_FALSE(parseNonceCount("0000000g").has_value());
  EXPECT_FALSE(parseNonceCount("000000001").has_value());
  EXPECT_FALSE(parseNonceCount("").has_value());
}

TEST(Digest, EqualConstantTime) {
  EXPECT_TRUE(equalConstantTime("abc", "abc"));
  EXPECT_FALSE(equalConstantTime("abc", "abd"));
  EXPECT_FALSE(equalConstantTime("abc", "abcd"));
}

TEST(Digest, NonceValidThenStale) {
  ManualClock clock;
  NonceManager nm("0123456789abcdef0123456789abcdef", 300'000, clock);
  std::string n = nm.issue();
  EXPECT_EQ(nm.check(n), NonceManager::Check::Valid);
  clock.advanceMs(300'000);
  EXPECT_EQ(nm.check(n), NonceManager::Check::Valid);
  clock.advanceMs(1);
  EXPECT_EQ(nm.check(n), NonceManager::Check::Stale);
}

TEST(Digest, NoncesAreUnique) {
  ManualClock clock;
  NonceManager nm("0123456789abcdef0123456789abcdef", 300'000, clock);
  EXPECT_NE(nm.issue(), nm.issue());
}

TEST(Digest, TamperedNonceIsInvalid) {
  ManualClock clock;
  NonceManager nm("0123456789abcdef0123456789abcdef", 300'000, clock);
  std::string n = nm.issue();
  for (std::size_t i : {std::size_t{0}, n.size() / 2, n.size() - 2}) {
    std::string t = n;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    EXPECT_EQ(nm.check(t), NonceManager::Check::Invalid) << "position " << i;
  }
  // Another secret (another cluster) does not accept it either.
  NonceManager other("fedcba9876543210fedcba9876543210", 300'000, clock);
  EXPECT_EQ(other.check(n), NonceManager::Check::Invalid);
}

TEST(Digest, GarbageNonceIsInvalid) {
  ManualClock clock;
  NonceManager nm("0123456789abcdef0123456789abcdef", 300'000, clock);
  EXPECT_EQ(nm.check(""), NonceManager::Check::Invalid);
  EXPECT_EQ(nm.check("not a nonce!"), NonceManager::Check::Invalid);
  EXPECT_EQ(nm.check(std::string(200, 'A')), NonceManager::Check::Invalid);
  EXPECT_EQ(nm.check("7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"), NonceManager::Check::Invalid);
}

TEST(Digest, ChallengeHeader) {
  EXPECT_EQ(challengeHeader("example.com", "abc", "op", Algorithm::Sha256, false),
            "Digest realm=\"example.com\", nonce=\"abc\", opaque=\"op\", algorithm=SHA-256, "
            "qop=\"auth\"");
  EXPECT_EQ(challengeHeader("example.com", "abc", "", Algorithm::Md5, true),
            "Digest realm=\"example.com\", nonce=\"abc\", algorithm=MD5, qop=\"auth\", stale=true");
}

TEST(Digest, RandomHex) {
  std::string a = randomHex(16);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, randomHex(16));
}

}  // namespace
}  // namespace medius::digest
