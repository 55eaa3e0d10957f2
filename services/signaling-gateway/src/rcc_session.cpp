#include "medius/gateway/rcc_session.hpp"

#include <algorithm>
#include <sstream>
#include <utility>

namespace medius::gateway {

using csta::EventKind;
using csta::RequestKind;

RccSession::RccSession(std::string user, std::string crossRefId)
    : user_(std::move(user)), crossRefId_(std::move(crossRefId)) {}

RccReply RccSession::error(const std::string& value, const std::string& outcome,
                           csta::ErrorCategory category) {
  RccReply r;
  r.body = csta::errorResponse(ns_, csta::Error{category, value});
  r.outcome = outcome;
  return r;
}

RccReply RccSession::onBadRequest(const csta::BadRequest& bad) {
  ns_ = bad.request.ns;
  RccReply r;
  r.body = csta::errorResponse(ns_, bad.error);
  r.outcome = "refused";
  return r;
}

RccReply RccSession::onRequest(const csta::Request& request) {
  ns_ = request.ns;
  RccReply r;
  switch (request.kind) {
    case RequestKind::RequestSystemStatus:
    case RequestKind::MonitorStop:
      if (request.kind == RequestKind::MonitorStop) {
        if (!monitoring_ || request.crossRefId != crossRefId_) {
          return error("invalidCrossRefID", "refused");
        }
        monitoring_ = false;
        r.action.kind = RccAction::Kind::Unsubscribe;
        phoneDialogsReset();
      }
      r.body = csta::response(request.kind, ns_);
      r.outcome = "ok";
      return r;
    case RequestKind::MakeCall:
      r.outcome = "pending";
      r.action.kind = RccAction::Kind::Authorize;
      r.action.device = request.callingDevice;
      return r;
    case RequestKind::MonitorStart:
      r.outcome = "pending";
      r.action.kind = RccAction::Kind::Authorize;
      r.action.device = request.monitorDevice;
      return r;
    case RequestKind::ClearConnection:
    case RequestKind::HoldCall:
    case RequestKind::RetrieveCall:
    case RequestKind::SingleStepTransfer: {
      auto it = calls_.find(request.connection.callId);
      if (it == calls_.end()) return error("invalidCallIdentifier", "refused");
      CallInfo& call = it->second;
      r.action.callId = call.callId;
      if (request.kind == RequestKind::ClearConnection) {
        r.action.kind = RccAction::Kind::ClearCall;
        r.body = csta::response(request.kind, ns_);
        r.outcome = "ok";
        return r;
      }
      constexpr auto kState = csta::ErrorCategory::StateIncompatibility;
      if (!call.connected) return error("invalidObjectState", "refused", kState);
      if (request.kind == RequestKind::HoldCall) {
        if (call.held) return error("invalidObjectState", "refused", kState);
        r.action.kind = RccAction::Kind::Hold;
      } else if (request.kind == RequestKind::RetrieveCall) {
        if (!call.held) return error("noHeldCall", "refused", kState);
        r.action.kind = RccAction::Kind::Retrieve;
      } else {
        r.action.kind = RccAction::Kind::Transfer;
        r.action.called = request.transferredTo;
      }
      r.outcome = "pending";
      return r;
    }
    case RequestKind::AnswerCall: {
      // Only a call of the phone's own that rings on it (the dialog events said so).
      auto it = std::find_if(phoneDialogs_.begin(), phoneDialogs_.end(), [&](const auto& d) {
        return d.second.call.callId == request.connection.callId;
      });
      if (it == phoneDialogs_.end()) return error("invalidCallIdentifier", "refused");
      if (it->second.initiator || it->second.stage != PhoneStage::Delivered) {
        return error("invalidObjectState", "refused", csta::ErrorCategory::StateIncompatibility);
      }
      r.action.kind = RccAction::Kind::Answer;
      r.action.callId = it->second.call.callId;
      r.action.device = it->second.call.device;
      r.outcome = "pending";
      return r;
    }
    case RequestKind::Unknown:
      break;
  }
  return error("invalidFeature", "unsupported");
}

RccReply RccSession::authorized(const csta::Request& request, const std::string& lineNumber,
                                const std::string& err) {
  if (!err.empty()) return error(err, "refused");
  RccReply r;
  r.outcome = "ok";
  if (request.kind == RequestKind::MonitorStart) {
    bool subscribe = !monitoring_ || monitoredLine_ != lineNumber;
    monitoring_ = true;
    monitoredLine_ = lineNumber;
    csta::ResponseInfo info;
    info.crossRefId = crossRefId_;
    r.body = csta::response(request.kind, ns_, info);
    if (subscribe) {
      r.action.kind = RccAction::Kind::Subscribe;
      r.action.device = lineNumber;
    }
    return r;
  }
  CallInfo call;
  call.callId = crossRefId_ + "-" + std::to_string(nextCall_++);
  call.device = lineNumber;
  call.called = request.calledDirectoryNumber;
  csta::ResponseInfo info;
  info.callingDevice = {call.callId, call.device};
  r.body = csta::response(request.kind, ns_, info);
  r.action.kind = RccAction::Kind::StartCall;
  r.action.callId = call.callId;
  r.action.device = lineNumber;
  r.action.called = call.called;
  calls_.emplace(call.callId, std::move(call));
  return r;
}

RccReply RccSession::actionDone(const csta::Request& request, int sipStatus) {
  if (sipStatus >= 300 || sipStatus < 200) {
    // 405/501: the PBX does not do it at all.
    bool unsupported = sipStatus == 405 || sipStatus == 501 || sipStatus == 420 || sipStatus == 489;
    return error(unsupported ? "requestIncompatibleWithObject" : "generic",
                 unsupported ? "unsupported" : "failed");
  }
  RccReply r;
  r.outcome = "ok";
  csta::ResponseInfo info;
  if (request.kind == RequestKind::SingleStepTransfer) {
    info.transferredCall = {request.connection.callId, request.transferredTo};
  }
  r.body = csta::response(request.kind, ns_, info);
  return r;
}

std::string RccSession::eventBody(EventKind kind, const CallInfo& call, const std::string& cause) {
  csta::Event e;
  e.kind = kind;
  e.crossRefId = crossRefId_;
  e.connection = {call.callId, call.device};
  e.callingDevice = call.device;
  e.calledDevice = call.called;
  e.cause = cause;
  return csta::event(ns_, e);
}

std::vector<std::string> RccSession::progress(const std::string& callId, RccProgress step) {
  auto it = calls_.find(callId);
  if (it == calls_.end()) return {};
  CallInfo& call = it->second;
  switch (step) {
    case RccProgress::DeskRinging:
      return {eventBody(EventKind::ServiceInitiated, call, "makeCall")};
    case RccProgress::DeskAnswered:
      return {eventBody(EventKind::Originated, call, "makeCall")};
    case RccProgress::FarRinging:
      return {eventBody(EventKind::Delivered, call, "newCall")};
    case RccProgress::FarAnswered:
      if (call.connected) return {};
      call.connected = true;
      return {eventBody(EventKind::Established, call, "newCall")};
    case RccProgress::Held:
      call.held = true;
      return {eventBody(EventKind::Held, call, "")};
    case RccProgress::Retrieved:
      call.held = false;
      return {eventBody(EventKind::Retrieved, call, "")};
  }
  return {};
}

std::vector<std::string> RccSession::cleared(const std::string& callId, int sipStatus) {
  auto it = calls_.find(callId);
  if (it == calls_.end()) return {};
  std::string body = eventBody(EventKind::ConnectionCleared, it->second, clearCause(sipStatus));
  calls_.erase(it);
  return {body};
}

std::string clearCause(int sipStatus) {
  switch (sipStatus) {
    case 0: return "normalClearing";
    case 486:
    case 600: return "busy";
    case 408:
    case 480:
    case 487: return "callNotAnswered";
    case 404:
    case 484:
    case 604: return "destNotObtainable";
    case 403:
    case 603: return "blocked";
    default: break;
  }
  return sipStatus >= 500 && sipStatus < 600 ? "networkCongestion" : "normalClearing";
}

namespace {

std::vector<std::string> lines(const std::string& sdp) {
  std::vector<std::string> out;
  std::istringstream in(sdp);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

bool isDirection(const std::string& line) {
  return line == "a=sendrecv" || line == "a=sendonly" || line == "a=recvonly" ||
         line == "a=inactive";
}

}  // namespace

std::string rccDirectionOffer(const std::string& sdp, bool hold, std::uint64_t version) {
  std::string out;
  bool added = false;
  for (const std::string& line : lines(sdp)) {
    if (isDirection(line)) continue;
    if (!added && line.rfind("m=", 0) == 0) {
      out += hold ? "a=inactive\r\n" : "a=sendrecv\r\n";
      added = true;
    }
    if (line.rfind("o=", 0) == 0) {
      // o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>
      std::istringstream fields(line.substr(2));
      std::string user, id, oldVersion, rest;
      fields >> user >> id >> oldVersion;
      std::getline(fields, rest);
      out += "o=" + user + " " + id + " " + std::to_string(version) + rest + "\r\n";
      continue;
    }
    out += line + "\r\n";
  }
  if (!added) out += hold ? "a=inactive\r\n" : "a=sendrecv\r\n";
  return out;
}

std::string rccRejectAnswer(const std::string& offer) {
  std::string out;
  for (const std::string& line : lines(offer)) {
    if (line.rfind("m=", 0) == 0) {
      // m=<media> <port> <proto> <fmt> ...: port 0, the first format kept.
      std::istringstream fields(line.substr(2));
      std::string media, port, proto, fmt;
      fields >> media >> port >> proto >> fmt;
      out += "m=" + media + " 0 " + proto + " " + (fmt.empty() ? "0" : fmt) + "\r\n";
    } else if (line.rfind("v=", 0) == 0 || line.rfind("o=", 0) == 0 ||
               line.rfind("s=", 0) == 0 || line.rfind("c=", 0) == 0 ||
               line.rfind("t=", 0) == 0) {
      out += line + "\r\n";
    }
  }
  return out;
}

std::string rccNumberOf(const std::string& device) {
  std::string s = device;
  if (auto lt = s.find('<'); lt != std::string::npos) {
    s = s.substr(lt + 1);
    if (auto gt = s.find('>'); gt != std::string::npos) s.resize(gt);
  }
  for (const char* scheme : {"tel:", "sip:", "sips:"}) {
    std::string_view sv(scheme);
    if (s.size() >= sv.size() && s.compare(0, sv.size(), sv) == 0) {
      s = s.substr(sv.size());
      if (auto cut = s.find_first_of(";@?"); cut != std::string::npos) s.resize(cut);
      break;
    }
  }
  return s;
}

std::string RccSession::phoneEvent(EventKind kind, const PhoneDialog& d, const std::string& cause) {
  csta::Event e;
  e.kind = kind;
  e.crossRefId = crossRefId_;
  e.connection = {d.call.callId, d.call.device};
  e.callingDevice = d.initiator ? d.call.device : d.call.called;
  e.calledDevice = d.initiator ? d.call.called : d.call.device;
  e.cause = cause;
  return csta::event(ns_, e);
}

std::vector<std::string> RccSession::phoneDialogs(
    const dialog_info::Document& doc, const std::function<bool(const std::string&)>& isOwnLeg) {
  using dialog_info::State;
  std::vector<std::string> out;
  if (!monitoring_) return out;
  bool full = doc.state == dialog_info::DocState::Full;
  if (!full && dialogVersion_ && doc.version <= *dialogVersion_) return out;
  dialogVersion_ = doc.version;
  std::map<std::string, bool> seen;
  for (const auto& d : doc.dialogs) {
    if (!d.callId.empty() && isOwnLeg && isOwnLeg(d.callId)) continue;
    seen[d.id] = true;
    auto it = phoneDialogs_.find(d.id);
    if (it == phoneDialogs_.end()) {
      if (d.state == State::Terminated || phoneDialogs_.size() >= kMaxPhoneDialogs) continue;
      PhoneDialog p;
      p.call.callId = crossRefId_ + "-p" + std::to_string(nextPhoneCall_++);
      p.call.device = monitoredLine_;
      p.call.called = rccNumberOf(d.remote.identity.empty() ? d.remote.target : d.remote.identity);
      p.initiator = d.direction == dialog_info::Direction::Initiator;
      it = phoneDialogs_.emplace(d.id, std::move(p)).first;
    }
    PhoneDialog& p = it->second;
    switch (d.state) {
      case State::Trying:
      case State::Proceeding:
      case State::Early:
        if (p.initiator) {
          if (p.stage < PhoneStage::Initiated) {
            out.push_back(phoneEvent(EventKind::ServiceInitiated, p, "newCall"));
            p.stage = PhoneStage::Initiated;
          }
          if (d.state != State::Trying && p.stage < PhoneStage::Originated) {
            out.push_back(phoneEvent(EventKind::Originated, p, "newCall"));
            p.stage = PhoneStage::Originated;
          }
        } else if (p.stage < PhoneStage::Delivered) {
          out.push_back(phoneEvent(EventKind::Delivered, p, "newCall"));
          p.stage = PhoneStage::Delivered;
        }
        break;
      case State::Confirmed:
        if (p.stage < PhoneStage::Established) {
          out.push_back(phoneEvent(EventKind::Established, p, "newCall"));
          p.stage = PhoneStage::Established;
        }
        break;
      case State::Terminated:
        out.push_back(phoneEvent(EventKind::ConnectionCleared, p, clearCause(d.code)));
        phoneDialogs_.erase(it);
        break;
    }
  }
  if (full) {
    for (auto it = phoneDialogs_.begin(); it != phoneDialogs_.end();) {
      if (seen.count(it->first) != 0) {
        ++it;
        continue;
      }
      out.push_back(phoneEvent(EventKind::ConnectionCleared, it->second, clearCause(0)));
      it = phoneDialogs_.erase(it);
    }
  }
  return out;
}

void RccSession::phoneDialogsReset() {
  phoneDialogs_.clear();
  dialogVersion_.reset();
}

}  // namespace medius::gateway
