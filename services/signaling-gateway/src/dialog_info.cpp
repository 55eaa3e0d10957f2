#include "medius/gateway/dialog_info.hpp"

#include <charconv>

#include <pugixml.hpp>

namespace medius::gateway::dialog_info {

namespace {

std::string_view localName(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

std::string trimmed(std::string_view s) {
  const char* ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

std::string bounded(std::string value, std::string_view what) {
  if (value.size() > kMaxFieldBytes) throw BadDialogInfo(std::string(what) + " too long");
  return value;
}

pugi::xml_node child(const pugi::xml_node& node, std::string_view name) {
  for (pugi::xml_node c = node.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && localName(c) == name) return c;
  }
  return {};
}

std::string text(const pugi::xml_node& node, std::string_view what) {
  for (pugi::xml_node c = node.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) {
      return bounded(trimmed(c.value()), what);
    }
  }
  return {};
}

std::string attr(const pugi::xml_node& node, const char* name) {
  return bounded(trimmed(node.attribute(name).value()), name);
}

std::uint64_t number(const std::string& s, std::string_view what) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) {
    throw BadDialogInfo("invalid " + std::string(what) + ": '" + s + "'");
  }
  return v;
}

// The namespace of `node` (its prefix's xmlns declaration, looked up through its ancestors).
std::string namespaceOf(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  std::string decl = colon == std::string_view::npos
                         ? std::string("xmlns")
                         : "xmlns:" + std::string(name.substr(0, colon));
  for (pugi::xml_node n = node; n; n = n.parent()) {
    if (pugi::xml_attribute a = n.attribute(decl.c_str())) return a.value();
  }
  return {};
}

Participant participant(const pugi::xml_node& node) {
  Participant p;
  if (!node) return p;
  pugi::xml_node identity = child(node, "identity");
  p.identity = text(identity, "identity");
  p.display = attr(identity, "display");
  p.target = attr(child(node, "target"), "uri");
  return p;
}

State stateOf(const std::string& s) {
  if (s == "trying") return State::Trying;
  if (s == "proceeding") return State::Proceeding;
  if (s == "early") return State::Early;
  if (s == "confirmed") return State::Confirmed;
  if (s == "terminated") return State::Terminated;
  throw BadDialogInfo("invalid dialog state '" + s + "'");
}

Dialog dialog(const pugi::xml_node& node) {
  Dialog d;
  d.id = attr(node, "id");
  if (d.id.empty()) throw BadDialogInfo("dialog without id");
  d.callId = attr(node, "call-id");
  d.localTag = attr(node, "local-tag");
  d.remoteTag = attr(node, "remote-tag");
  std::string direction = attr(node, "direction");
  if (direction == "initiator") {
    d.direction = Direction::Initiator;
  } else if (direction == "recipient") {
    d.direction = Direction::Recipient;
  } else if (!direction.empty()) {
    throw BadDialogInfo("invalid dialog direction '" + direction + "'");
  }
  pugi::xml_node state = child(node, "state");
  if (!state) throw BadDialogInfo("dialog " + d.id + " without state");
  d.state = stateOf(text(state, "state"));
  d.event = attr(state, "event");
  std::string code = attr(state, "code");
  if (!code.empty()) {
    std::uint64_t c = number(code, "state code");
    if (c < 100 || c > 699) throw BadDialogInfo("invalid state code " + code);
    d.code = static_cast<int>(c);
  }
  d.local = participant(child(node, "local"));
  d.remote = participant(child(node, "remote"));
  return d;
}

}  // namespace

std::string_view stateName(State state) {
  switch (state) {
    case State::Trying: return "trying";
    case State::Proceeding: return "proceeding";
    case State::Early: return "early";
    case State::Confirmed: return "confirmed";
    case State::Terminated: return "terminated";
  }
  return "";
}

Document parse(std::string_view body) {
  if (body.size() > kMaxBodyBytes) throw BadDialogInfo("dialog-info body too large");
  pugi::xml_document doc;
  pugi::xml_parse_result ok = doc.load_buffer(body.data(), body.size(), pugi::parse_default,
                                              pugi::encoding_utf8);
  if (!ok) throw BadDialogInfo(std::string("dialog-info not well-formed: ") + ok.description());
  pugi::xml_node top = doc.document_element();
  if (!top || localName(top) != "dialog-info") throw BadDialogInfo("not a dialog-info document");
  std::string ns = namespaceOf(top);
  if (!ns.empty() && ns != kNamespace) throw BadDialogInfo("dialog-info in namespace " + ns);
  Document d;
  d.version = number(attr(top, "version"), "dialog-info version");
  std::string state = attr(top, "state");
  if (state == "full") {
    d.state = DocState::Full;
  } else if (state == "partial") {
    d.state = DocState::Partial;
  } else {
    throw BadDialogInfo("invalid dialog-info state '" + state + "'");
  }
  d.entity = attr(top, "entity");
  if (d.entity.empty()) throw BadDialogInfo("dialog-info without entity");
  for (pugi::xml_node c = top.first_child(); c; c = c.next_sibling()) {
    if (c.type() != pugi::node_element || localName(c) != "dialog") continue;
    if (d.dialogs.size() == kMaxDialogs) throw BadDialogInfo("too many dialogs");
    d.dialogs.push_back(dialog(c));
  }
  return d;
}

}  // namespace medius::gateway::dialog_info
