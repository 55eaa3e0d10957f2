#include "medius/common/media_policy.hpp"

#include <algorithm>

namespace medius::config {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string listOf(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

}  // namespace

const std::vector<std::string>& knownCodecs() {
  // The rtpmap encoding names the media worker negotiates (RFC 7587 spells Opus "opus").
  // "CN" is RFC 3389 comfort noise: no audio codec, it lets the worker offer CN to the side.
  static const std::vector<std::string> kCodecs{"opus", "G722", "PCMU", "PCMA", "G729", "CN"};
  return kCodecs;
}

std::optional<std::string> normalizeCodec(std::string_view name) {
  for (const auto& known : knownCodecs()) {
    if (equalsIgnoreCase(name, known)) return known;
  }
  return std::nullopt;
}

std::string_view srtpPolicyName(v1::SrtpPolicy policy) {
  switch (policy) {
    case v1::SRTP_POLICY_OFF:
      return "off";
    case v1::SRTP_POLICY_OPTIONAL:
      return "optional";
    case v1::SRTP_POLICY_REQUIRED:
      return "required";
    case v1::SRTP_POLICY_UNSPECIFIED:
    default:
      return "unspecified";
  }
}

v1::SrtpPolicy readSrtpPolicy(Object& o, std::string_view key, v1::SrtpPolicy fallback) {
  std::string value =
      o.choice(key, std::string(srtpPolicyName(fallback)), {"off", "optional", "required"});
  if (value == "off") return v1::SRTP_POLICY_OFF;
  if (value == "optional") return v1::SRTP_POLICY_OPTIONAL;
  return v1::SRTP_POLICY_REQUIRED;
}

std::vector<std::string> readCodecs(Object& o, std::string_view key,
                                    std::vector<std::string> fallback) {
  if (!o.has(key)) return fallback;
  std::vector<std::string> names = o.strings(key, {});
  if (names.empty()) o.fail(key, "at least one codec is required");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::string at = std::string(key) + "[" + std::to_string(i) + "]";
    std::optional<std::string> codec = normalizeCodec(names[i]);
    if (!codec) {
      o.fail(at,
             "unknown codec \"" + names[i] + "\" (expected one of " + listOf(knownCodecs()) + ")");
    }
    if (std::find(out.begin(), out.end(), *codec) != out.end()) {
      o.fail(at, "codec \"" + *codec + "\" is listed twice");
    }
    out.push_back(std::move(*codec));
  }
  if (std::all_of(out.begin(), out.end(), [](const std::string& c) { return c == "CN"; })) {
    o.fail(key, "at least one audio codec is required (\"CN\" is comfort noise only)");
  }
  return out;
}

}  // namespace medius::config
