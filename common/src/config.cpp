#include "medius/common/config.hpp"

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace medius::config {

namespace {

using json = nlohmann::json;

std::string typeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number with a fraction";
    case json::value_t::binary: return "binary";
    case json::value_t::discarded: return "discarded";
  }
  return "unknown";
}

// Line and column (1-based) of a byte offset.
std::pair<std::size_t, std::size_t> lineColumn(std::string_view text, std::size_t offset) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out += '"';
  return out;
}

}  // namespace

ConfigError::ConfigError(std::string file, std::string path, std::string problem)
    : std::runtime_error(file + ": " + (path.empty() ? std::string() : path + ": ") + problem),
      file_(std::move(file)), path_(std::move(path)), problem_(std::move(problem)) {}

struct Document::Impl {
  json value;
};

Document::Document() : impl_(new Impl) {}
Document::~Document() { delete impl_; }
Document::Document(Document&& o) noexcept
    : file_(std::move(o.file_)), text_(std::move(o.text_)), impl_(o.impl_) {
  o.impl_ = nullptr;
}
Document& Document::operator=(Document&& o) noexcept {
  if (this != &o) {
    delete impl_;
    file_ = std::move(o.file_);
    text_ = std::move(o.text_);
    impl_ = o.impl_;
    o.impl_ = nullptr;
  }
  return *this;
}

Document Document::load(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file, "", "cannot open the file");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ConfigError(file, "", "cannot read the file");
  return parse(ss.str(), file);
}

Document Document::parse(std::string_view text, std::string name) {
  Document doc;
  doc.file_ = std::move(name);
  doc.text_ = std::string(text);
  try {
    doc.impl_->value = json::parse(doc.text_);
  } catch (const json::parse_error& e) {
    auto [line, col] = lineColumn(doc.text_, e.byte == 0 ? 0 : e.byte - 1);
    std::string what = e.what();
    // nlohmann's message is "[json.exception.parse_error.101] parse error at line ..., column ...:
    // syntax error while parsing value - ..."; keep the part after the last ": " prefix block.
    auto pos = what.find("syntax error");
    std::string problem = pos == std::string::npos ? what : what.substr(pos);
    throw ConfigError(doc.file_, "line " + std::to_string(line) + ", column " + std::to_string(col),
                      "invalid JSON: " + problem);
  } catch (const json::exception& e) {
    // Not a syntax error but still unusable, e.g. "number overflow parsing '1e900'" (found by
    // fuzz/config_fuzz; regression seed fuzz/corpus/config_fuzz/number-overflow.json).
    std::string what = e.what();
    auto pos = what.find("] ");
    throw ConfigError(doc.file_, "", "invalid JSON: " +
                                         (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
  if (!doc.impl_->value.is_object()) {
    throw ConfigError(doc.file_, "$", "expected an object at the top level, got " +
                                          typeName(doc.impl_->value));
  }
  return doc;
}

Object Document::root() const { return Object(*this, impl_->value, "$"); }

Object::Object(const Document& doc, const json& value, std::string path)
    : doc_(doc), value_(value), path_(std::move(path)) {}
Object::~Object() = default;
Object::Object(Object&& o) noexcept
    : doc_(o.doc_), value_(o.value_), path_(std::move(o.path_)), used_(std::move(o.used_)) {}

std::string Object::childPath(std::string_view key) const {
  return path_ + "." + std::string(key);
}

void Object::fail(std::string_view key, std::string_view problem) const {
  throw ConfigError(doc_.file(), key.empty() ? path_ : childPath(key), std::string(problem));
}

void Object::failEnv(const char* env, std::string_view problem) const {
  throw ConfigError(std::string("environment variable ") + env, "", std::string(problem));
}

const std::string& Object::file() const { return doc_.file(); }

bool Object::has(std::string_view key) const { return value_.contains(std::string(key)); }

const json* Object::member(std::string_view key) {
  used_.emplace(key);
  auto it = value_.find(std::string(key));
  if (it == value_.end()) return nullptr;
  return &*it;
}

std::string Object::requireString(std::string_view key) {
  const json* v = member(key);
  if (!v) fail(key, "missing required field");
  if (!v->is_string()) fail(key, "expected a string, got " + typeName(*v));
  return v->get<std::string>();
}

std::string Object::string(std::string_view key, std::string fallback, const char* env) {
  const json* v = member(key);
  std::string result = std::move(fallback);
  if (v) {
    if (!v->is_string()) fail(key, "expected a string, got " + typeName(*v));
    result = v->get<std::string>();
  }
  if (env) {
    if (const char* e = std::getenv(env); e && *e) result = e;
  }
  return result;
}

std::optional<std::string> Object::optionalString(std::string_view key) {
  const json* v = member(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) fail(key, "expected a string, got " + typeName(*v));
  return v->get<std::string>();
}

namespace {
std::string rangeText(std::int64_t min, std::int64_t max) {
  return "between " + std::to_string(min) + " and " + std::to_string(max);
}
}  // namespace

std::int64_t Object::integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                             std::int64_t max, const char* env) {
  const json* v = member(key);
  std::int64_t result = fallback;
  if (v) {
    if (!v->is_number_integer()) fail(key, "expected an integer, got " + typeName(*v));
    if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(max)) {
      fail(key, "expected an integer " + rangeText(min, max) + ", got " + v->dump());
    }
    result = v->get<std::int64_t>();
    if (result < min || result > max) {
      fail(key, "expected an integer " + rangeText(min, max) + ", got " + std::to_string(result));
    }
  }
  if (env) {
    if (const char* e = std::getenv(env); e && *e) {
      std::string_view s(e);
      std::int64_t parsed = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), parsed);
      if (ec != std::errc() || p != s.data() + s.size()) {
        failEnv(env, "expected an integer, got " + quote(s));
      }
      if (parsed < min || parsed > max) {
        failEnv(env, "expected an integer " + rangeText(min, max) + ", got " + std::string(s));
      }
      result = parsed;
    }
  }
  return result;
}

std::int64_t Object::requireInteger(std::string_view key, std::int64_t min, std::int64_t max) {
  if (!has(key)) {
    used_.emplace(key);
    fail(key, "missing required field");
  }
  return integer(key, 0, min, max);
}

bool Object::boolean(std::string_view key, bool fallback, const char* env) {
  const json* v = member(key);
  bool result = fallback;
  if (v) {
    if (!v->is_boolean()) fail(key, "expected true or false, got " + typeName(*v));
    result = v->get<bool>();
  }
  if (env) {
    if (const char* e = std::getenv(env); e && *e) {
      std::string_view s(e);
      if (s == "1" || s == "true") {
        result = true;
      } else if (s == "0" || s == "false") {
        result = false;
      } else {
        failEnv(env, "expected true, false, 1 or 0, got " + quote(s));
      }
    }
  }
  return result;
}

std::vector<std::string> Object::strings(std::string_view key, std::vector<std::string> fallback) {
  const json* v = member(key);
  if (!v) return fallback;
  if (!v->is_array()) fail(key, "expected an array of strings, got " + typeName(*v));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    if (!e.is_string()) {
      throw ConfigError(doc_.file(), childPath(key) + "[" + std::to_string(i) + "]",
                        "expected a string, got " + typeName(e));
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<std::int64_t> Object::integers(std::string_view key,
                                           std::vector<std::int64_t> fallback, std::int64_t min,
                                           std::int64_t max) {
  const json* v = member(key);
  if (!v) return fallback;
  if (!v->is_array()) fail(key, "expected an array of integers, got " + typeName(*v));
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    std::string p = childPath(key) + "[" + std::to_string(i) + "]";
    if (!e.is_number_integer()) {
      throw ConfigError(doc_.file(), p, "expected an integer, got " + typeName(e));
    }
    if ((e.is_number_unsigned() && e.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) ||
        e.get<std::int64_t>() < min || e.get<std::int64_t>() > max) {
      throw ConfigError(doc_.file(), p, "expected an integer " + rangeText(min, max) + ", got " +
                                            e.dump());
    }
    out.push_back(e.get<std::int64_t>());
  }
  return out;
}

std::string Object::choice(std::string_view key, std::string fallback,
                           const std::vector<std::string>& allowed, const char* env) {
  std::string value = string(key, std::move(fallback), env);
  for (const auto& a : allowed) {
    if (a == value) return value;
  }
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + quote(a);
  std::string problem = "expected one of " + list + ", got " + quote(value);
  if (env && std::getenv(env) && *std::getenv(env)) failEnv(env, problem);
  fail(key, problem);
}

Object Object::requireObject(std::string_view key) {
  const json* v = member(key);
  if (!v) fail(key, "missing required field");
  if (!v->is_object()) fail(key, "expected an object, got " + typeName(*v));
  return Object(doc_, *v, childPath(key));
}

std::optional<Object> Object::optionalObject(std::string_view key) {
  const json* v = member(key);
  if (!v) return std::nullopt;
  if (!v->is_object()) fail(key, "expected an object, got " + typeName(*v));
  return Object(doc_, *v, childPath(key));
}

std::vector<Object> Object::objects(std::string_view key) {
  const json* v = member(key);
  std::vector<Object> out;
  if (!v) return out;
  if (!v->is_array()) fail(key, "expected an array of objects, got " + typeName(*v));
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    std::string p = childPath(key) + "[" + std::to_string(i) + "]";
    if (!e.is_object()) throw ConfigError(doc_.file(), p, "expected an object, got " + typeName(e));
    out.emplace_back(doc_, e, p);
  }
  return out;
}

std::vector<std::string> Object::keysOf(std::string_view key) {
  const json* v = member(key);
  std::vector<std::string> out;
  if (!v) return out;
  if (!v->is_object()) fail(key, "expected an object, got " + typeName(*v));
  for (auto it = v->begin(); it != v->end(); ++it) out.push_back(it.key());
  return out;
}

void Object::finish() {
  for (auto it = value_.begin(); it != value_.end(); ++it) {
    if (!used_.contains(it.key())) {
      throw ConfigError(doc_.file(), childPath(it.key()), "unknown key (check its spelling)");
    }
  }
}

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

HostPort parseHostPort(std::string_view text) {
  HostPort hp;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw std::invalid_argument("expected [IPv6]:port, got \"" + std::string(text) + "\"");
    }
    hp.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      throw std::invalid_argument("expected host:port, got \"" + std::string(text) + "\"");
    }
    hp.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || value > 65535) {
    throw std::invalid_argument("bad port in \"" + std::string(text) + "\"");
  }
  hp.port = static_cast<std::uint16_t>(value);
  return hp;
}

}  // namespace medius::config
