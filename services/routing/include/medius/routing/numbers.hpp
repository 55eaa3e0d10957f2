// Numbers and the regular expressions that rewrite them: what a callee URI says was
// dialled, and the compiled pattern/translation pairs of normalization rules, routes and
// trunk translation rules (RE2: linear time, no catastrophic backtracking).
//
// Thread: a compiled Pattern is immutable and may be used by any number of threads.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace medius::routing {

// A translation that does not fit its pattern (a "$3" with two groups, a lone "$").
class BadTranslation : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A regular expression compiled once (at load), matched as written: "^...$" anchors are
// the author's, nothing is added. Optionally carries a translation with $0..$9
// (capture groups) and "$$" (a dollar sign).
class Pattern {
 public:
  // Throws std::invalid_argument with RE2's error text when `pattern` does not compile,
  // BadTranslation when `translation` names a group the pattern does not have.
  explicit Pattern(std::string pattern, std::string translation = {});
  ~Pattern();
  Pattern(Pattern&&) noexcept;
  Pattern& operator=(Pattern&&) noexcept;
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;

  const std::string& pattern() const { return pattern_; }
  const std::string& translation() const { return translation_; }
  // Longest literal text every match starts with ("+1425" for "^\+1425\d{7}$"); a cheap
  // filter before the regular expression runs.
  const std::string& literalPrefix() const { return prefix_; }

  bool matches(std::string_view text) const;
  // When `text` matches, writes the translation (with groups substituted) to `out`
  // and returns true; `out` is untouched otherwise.
  bool translate(std::string_view text, std::string& out) const;

 private:
  std::string pattern_;
  std::string translation_;
  std::string prefix_;
  std::unique_ptr<re2::RE2> re_;
  int groups_ = 0;
};

// What a callee (or caller) URI designates.
struct Dialled {
  enum class Kind {
    Number,  // digits (with "+", "*" or "#"), visual separators removed: `number`
    Uri,     // a non-numeric user part: `uri` = "sip:user@host" (host lower-case)
    Invalid  // nothing usable (empty, no user part, too long...)
  };
  Kind kind = Kind::Invalid;
  std::string number;
  std::string uri;
};

// Longest dial string accepted as a number (after separators are removed).
inline constexpr std::size_t kMaxDialledDigits = 64;

// Parses a callee as dialled: "sip:", "sips:" or "tel:" URI (optionally in <>), or a
// bare dial string ("(425) 555-0123", "2200", "bob"). The user part's ";params" and the
// URI's parameters ("user=phone") are ignored; visual separators " -.()" are removed
// when what remains is a number. A bare user name (with a letter) becomes "sip:<s>@<domain>".
Dialled parseDialled(std::string_view callee, std::string_view domain);

// True for "+" followed by 2..15 digits, the first not 0.
bool isE164(std::string_view number);

}  // namespace medius::routing
