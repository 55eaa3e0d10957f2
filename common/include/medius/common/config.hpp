// Typed, validated reading of JSON configuration files.
//
// Every problem is reported as a ConfigError naming the file, the JSON path
// ("$.auth.users[2].ha1_md5") and the problem; unknown keys are errors too, so a typo
// never silently falls back to a default. Values may be overridden from the
// environment: the env variable's name then takes the place of the file in errors.
//
// Thread: not thread-safe; used at start-up and on reload, off the event loops.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace medius::config {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, std::string path, std::string problem);
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string file_;
  std::string path_;
  std::string problem_;
};

class Document;

// A view of one JSON object inside a Document. Readers record which keys they used;
// finish() fails on every key nobody read.
class Object {
 public:
  Object(const Document& doc, const nlohmann::json& value, std::string path);
  ~Object();
  Object(Object&&) noexcept;
  Object& operator=(Object&&) = delete;
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;

  const std::string& path() const { return path_; }
  // The file this object comes from (a name such as "(defaults)" for parsed text).
  const std::string& file() const;
  bool has(std::string_view key) const;

  // Required values (missing -> error). `env`, when given and set in the environment,
  // overrides the file's value.
  std::string requireString(std::string_view key);
  std::string string(std::string_view key, std::string fallback, const char* env = nullptr);
  std::optional<std::string> optionalString(std::string_view key);
  std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max, const char* env = nullptr);
  std::int64_t requireInteger(std::string_view key, std::int64_t min, std::int64_t max);
  bool boolean(std::string_view key, bool fallback, const char* env = nullptr);
  std::vector<std::string> strings(std::string_view key, std::vector<std::string> fallback);
  // An array of integers, each between min and max; missing -> fallback.
  std::vector<std::int64_t> integers(std::string_view key, std::vector<std::int64_t> fallback,
                                     std::int64_t min, std::int64_t max);
  // One of `allowed`.
  std::string choice(std::string_view key, std::string fallback,
                     const std::vector<std::string>& allowed, const char* env = nullptr);

  Object requireObject(std::string_view key);
  std::optional<Object> optionalObject(std::string_view key);
  // An array of objects; missing -> empty.
  std::vector<Object> objects(std::string_view key);
  // The keys of an object-valued member, for maps like {"sip": "debug"}.
  std::vector<std::string> keysOf(std::string_view key);

  // Fails naming the first key that was never read.
  void finish();

  // Fails with this object's file and the path of `key`.
  [[noreturn]] void fail(std::string_view key, std::string_view problem) const;

 private:
  const nlohmann::json* member(std::string_view key);
  std::string childPath(std::string_view key) const;
  [[noreturn]] void failEnv(const char* env, std::string_view problem) const;

  const Document& doc_;
  const nlohmann::json& value_;
  std::string path_;
  std::set<std::string, std::less<>> used_;
};

// A parsed JSON file. Syntax errors name the line and column.
class Document {
 public:
  // Reads and parses `file`; throws ConfigError.
  static Document load(const std::string& file);
  // Parses text (tests, fuzzing); `name` is used as the file name in errors.
  static Document parse(std::string_view text, std::string name);

  ~Document();
  Document(Document&&) noexcept;
  Document& operator=(Document&&) noexcept;

  const std::string& file() const { return file_; }
  Object root() const;
  // The raw text, for hashing (config versions).
  const std::string& text() const { return text_; }

 private:
  Document();
  std::string file_;
  std::string text_;
  struct Impl;
  Impl* impl_;
};

// "host:port" split; IPv6 as "[::1]:5060". Throws std::invalid_argument.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
  std::string str() const;
};
HostPort parseHostPort(std::string_view text);

}  // namespace medius::config
