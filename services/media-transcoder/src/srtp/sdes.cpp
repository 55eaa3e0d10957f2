#include "medius/media/srtp/sdes.hpp"

#include <algorithm>
#include <stdexcept>

#include "medius/media/srtp/keys.hpp"

namespace medius::media::srtp {

std::vector<CryptoSuite> defaultSuites() {
  std::vector<CryptoSuite> out;
  for (CryptoSuite suite : suitePreference()) {
    if (suiteAvailable(suite)) out.push_back(suite);
  }
  return out;
}

std::vector<CryptoSuite> interopOfferSuites() {
  std::vector<CryptoSuite> out;
  for (CryptoSuite suite : {CryptoSuite::AesCm128HmacSha1_80, CryptoSuite::AeadAes128Gcm,
                            CryptoSuite::AeadAes256Gcm, CryptoSuite::AesCm128HmacSha1_32}) {
    if (suiteAvailable(suite)) out.push_back(suite);
  }
  return out;
}

std::vector<CryptoAttribute> makeCryptoOffer(std::span<const CryptoSuite> suites) {
  if (suites.empty()) throw std::invalid_argument("an SDES offer needs at least one suite");
  std::vector<CryptoAttribute> out;
  out.reserve(suites.size());
  for (std::size_t i = 0; i < suites.size(); ++i) {
    if (std::find(suites.begin(), suites.begin() + static_cast<std::ptrdiff_t>(i), suites[i]) !=
        suites.begin() + static_cast<std::ptrdiff_t>(i)) {
      throw std::invalid_argument("suite " + std::string(suiteName(suites[i])) + " listed twice");
    }
    out.push_back(makeLocalCryptoAttribute(static_cast<std::uint32_t>(i + 1), suites[i]));
  }
  return out;
}

SdesAnswer answerCryptoOffer(std::span<const std::string_view> offeredValues,
                             std::span<const CryptoSuite> acceptable, const CryptoAttribute* keep) {
  SdesAnswer answer;
  std::vector<std::uint32_t> tags;
  std::string firstProblem;
  auto problem = [&answer, &firstProblem](std::string why) {
    if (firstProblem.empty()) firstProblem = why;
    answer.problems += (answer.problems.empty() ? "" : "; ") + why;
  };
  for (std::string_view value : offeredValues) {
    CryptoParseResult parsed = parseCryptoAttribute(value);
    if (parsed.tag) {
      if (std::find(tags.begin(), tags.end(), *parsed.tag) != tags.end()) {
        // RFC 4568 section 4: tags are unique within a media description.
        parsed.status = ParseStatus::Malformed;
        parsed.error = "tag " + std::to_string(*parsed.tag) + " offered twice";
      }
      tags.push_back(*parsed.tag);
    }
    switch (parsed.status) {
      case ParseStatus::UnknownSuite:
        ++answer.unknownSuite;
        break;
      case ParseStatus::Unsupported:
        ++answer.unsupported;
        break;
      case ParseStatus::Malformed:
        ++answer.malformed;
        break;
      case ParseStatus::Ok:
        if (std::find(acceptable.begin(), acceptable.end(), parsed.attribute->suite) == acceptable.end()) {
          ++answer.notAccepted;
          problem(std::string(suiteName(parsed.attribute->suite)) + " not accepted here");
          continue;
        }
        if (answer.choice) continue;  // a usable line after the chosen one
        if (keep != nullptr && keep->suite == parsed.attribute->suite) {
          CryptoAttribute ours = *keep;
          ours.tag = parsed.attribute->tag;
          answer.choice = SdesChoice{*parsed.attribute, std::move(ours)};
        } else {
          answer.choice = SdesChoice{*parsed.attribute,
                                     makeLocalCryptoAttribute(parsed.attribute->tag, parsed.attribute->suite)};
        }
        continue;
    }
    problem(parsed.error);
  }
  if (!answer.choice) {
    answer.error = "no usable a=crypto among " + std::to_string(offeredValues.size()) + ": " +
                   std::to_string(answer.unknownSuite) + " unknown suite, " + std::to_string(answer.unsupported) +
                   " unsupported, " + std::to_string(answer.malformed) + " malformed, " +
                   std::to_string(answer.notAccepted) + " not accepted";
    if (!firstProblem.empty()) answer.error += " (" + firstProblem + ")";
  }
  return answer;
}

std::optional<SdesChoice> acceptCryptoAnswer(std::span<const CryptoAttribute> offered,
                                             std::string_view answerValue, std::string& error) {
  CryptoParseResult parsed = parseCryptoAttribute(answerValue);
  if (parsed.status != ParseStatus::Ok) {
    error = "answer a=crypto refused: " + parsed.error;
    return std::nullopt;
  }
  for (const CryptoAttribute& ours : offered) {
    if (ours.tag != parsed.attribute->tag) continue;
    if (ours.suite != parsed.attribute->suite) {
      error = "answer a=crypto tag " + std::to_string(ours.tag) + " has suite " +
              std::string(suiteName(parsed.attribute->suite)) + ", we offered " +
              std::string(suiteName(ours.suite)) + " with that tag";
      return std::nullopt;
    }
    return SdesChoice{std::move(*parsed.attribute), ours};
  }
  error = "answer a=crypto tag " + std::to_string(parsed.attribute->tag) + " was not offered";
  return std::nullopt;
}

}  // namespace medius::media::srtp
