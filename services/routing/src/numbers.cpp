#include "medius/routing/numbers.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>

#include <re2/re2.h>

namespace medius::routing {

namespace {

// True when `pattern` starts with "^" and has no "|" outside groups, classes and escapes:
// then every match starts at the beginning of the text, and RE2's PossibleMatchRange
// (which analyses matches anchored at the start) bounds every match.
bool anchoredAtStart(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '^') return false;
  int depth = 0;
  bool inClass = false;
  for (std::size_t i = 1; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\') {
      ++i;  // the escaped character (\Q...\E is rare in dial plans: treated conservatively)
      if (i < pattern.size() && pattern[i] == 'Q') return false;
      continue;
    }
    if (inClass) {
      if (c == ']') inClass = false;
      continue;
    }
    if (c == '[') {
      inClass = true;
      // "[]...]" and "[^]...]": a leading "]" is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') ++i;
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') ++i;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      --depth;
    } else if (c == '|' && depth == 0) {
      return false;
    }
  }
  return true;
}

re2::StringPiece piece(std::string_view s) { return re2::StringPiece(s.data(), s.size()); }

bool isDigit(char c) { return c >= '0' && c <= '9'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (lower(s[i]) != prefix[i]) return false;
  }
  return true;
}

// Digits (and "*", "#", a leading "+") with visual separators removed into `out`;
// false when another character occurs or the result is empty or too long.
bool digitsOf(std::string_view s, std::string& out) {
  out.clear();
  for (char c : s) {
    if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') continue;
    if (isDigit(c) || c == '*' || c == '#' || (c == '+' && out.empty())) {
      if (out.size() >= kMaxDialledDigits) return false;
      out.push_back(c);
      continue;
    }
    return false;
  }
  return !out.empty() && out != "+";
}

}  // namespace

Pattern::Pattern(std::string pattern, std::string translation)
    : pattern_(std::move(pattern)), translation_(std::move(translation)) {
  RE2::Options options;
  options.set_log_errors(false);
  re_ = std::make_unique<re2::RE2>(piece(pattern_), options);
  if (!re_->ok()) throw std::invalid_argument(re_->error());
  groups_ = re_->NumberOfCapturingGroups();
  for (std::size_t i = 0; i < translation_.size(); ++i) {
    if (translation_[i] != '$') continue;
    if (i + 1 >= translation_.size()) {
      throw BadTranslation("translation ends with a lone \"$\" (write \"$$\" for a dollar)");
    }
    char next = translation_[i + 1];
    if (next == '$') {
      ++i;
    } else if (isDigit(next)) {
      int group = next - '0';
      if (group > groups_) {
        throw BadTranslation("translation uses $" + std::string(1, next) +
                                    " but the pattern has " + std::to_string(groups_) +
                                    " capture group(s)");
      }
      ++i;
    } else {
      throw BadTranslation("\"$\" in a translation must be followed by a digit or \"$\"");
    }
  }
  if (anchoredAtStart(pattern_)) {
    std::string min, max;
    if (re_->PossibleMatchRange(&min, &max, 32)) {
      std::size_t n = 0;
      while (n < min.size() && n < max.size() && min[n] == max[n]) ++n;
      prefix_ = min.substr(0, n);
    }
  }
}

Pattern::~Pattern() = default;
Pattern::Pattern(Pattern&&) noexcept = default;
Pattern& Pattern::operator=(Pattern&&) noexcept = default;

bool Pattern::matches(std::string_view text) const {
  if (!text.starts_with(prefix_)) return false;
  return re_->Match(piece(text), 0, text.size(), RE2::UNANCHORED, nullptr, 0);
}

bool Pattern::translate(std::string_view text, std::string& out) const {
  if (!text.starts_with(prefix_)) return false;
  std::array<re2::StringPiece, 10> groups;
  int n = groups_ + 1 < 10 ? groups_ + 1 : 10;
  if (!re_->Match(piece(text), 0, text.size(), RE2::UNANCHORED, groups.data(), n)) return false;
  out.clear();
  for (std::size_t i = 0; i < translation_.size(); ++i) {
    char c = translation_[i];
    if (c == '$' && i + 1 < translation_.size()) {
      char next = translation_[i + 1];
      ++i;
      if (next == '$') {
        out.push_back('$');
      } else {
        const re2::StringPiece& g = groups[static_cast<std::size_t>(next - '0')];
        out.append(g.data() ? g.data() : "", g.size());
      }
      continue;
    }
    out.push_back(c);
  }
  return true;
}

bool isE164(std::string_view number) {
  if (number.size() < 3 || number.size() > 16 || number[0] != '+' || number[1] == '0') {
    return false;
  }
  for (std::size_t i = 1; i < number.size(); ++i) {
    if (!isDigit(number[i])) return false;
  }
  return true;
}

Dialled parseDialled(std::string_view callee, std::string_view domain) {
  Dialled d;
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  std::string_view s = trim(callee);
  if (s.size() >= 2 && s.front() == '<') {
    auto close = s.find('>');
    s = trim(s.substr(1, close == std::string_view::npos ? s.size() - 1 : close - 1));
  }
  if (startsWithNoCase(s, "tel:")) {
    std::string_view user = s.substr(4);
    user = user.substr(0, user.find(';'));
    if (digitsOf(user, d.number)) d.kind = Dialled::Kind::Number;
    return d;
  }
  std::size_t schemeLength = startsWithNoCase(s, "sip:") ? 4 : startsWithNoCase(s, "sips:") ? 5 : 0;
  if (schemeLength == 0) {
    // A bare dial string: a number, or a user name in our domain.
    if (digitsOf(s, d.number)) {
      d.kind = Dialled::Kind::Number;
      return d;
    }
    d.number.clear();
    // A user name has a letter ("bob", "j.smith"); "+", "1+2" or 70 digits are nothing.
    bool letter = std::any_of(s.begin(), s.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    });
    if (!letter || s.find_first_of("@:;<> \t") != std::string_view::npos) return d;
    d.kind = Dialled::Kind::Uri;
    d.uri.reserve(5 + s.size() + domain.size());
    d.uri.append("sip:").append(s).append("@").append(domain);
    return d;
  }
  std::string_view rest = s.substr(schemeLength);
  auto at = rest.find('@');
  if (at == std::string_view::npos) return d;  // no user part
  std::string_view userinfo = rest.substr(0, at);
  std::string_view user = userinfo.substr(0, userinfo.find_first_of(";:"));
  std::string_view host = rest.substr(at + 1);
  host = host.substr(0, host.find_first_of(";?>"));
  // Drop a port; keep an IPv6 reference whole.
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') == std::string_view::npos ? host.size()
                                                                    : host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (user.empty()) return d;
  if (digitsOf(user, d.number)) {
    d.kind = Dialled::Kind::Number;
    return d;
  }
  d.number.clear();
  if (host.empty()) return d;
  d.kind = Dialled::Kind::Uri;
  d.uri.reserve(4 + user.size() + 1 + host.size());
  d.uri.append("sip:").append(user).append("@");
  for (char c : host) d.uri.push_back(lower(c));
  return d;
}

}  // namespace medius::routing
