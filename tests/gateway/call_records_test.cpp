// CDR lines (cdrJson, CdrWriter) and the live call directory (CallDirectory).
#include "medius/gateway/call_records.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

namespace medius::gateway {
namespace {

namespace fs = std::filesystem;

// 2026-11-26T10:00:00.000Z
constexpr std::int64_t kStart = 1'795'687'200'000;

CallRecord answeredCall() {
  CallRecord r;
  r.id = "c-1";
  r.gatewayId = "gw-1";
  r.direction = "outbound";
  r.callerDialled = "alice";
  r.callerAuthenticated = "sip:alice@example.com";
  r.calleeDialled = "0014255550100";
  r.callerNormalized = "+14255550123";
  r.calleeNormalized = "+14255550100";
  r.route = "us-pstn";
  r.trunk = "pstn-primary";
  r.answeredBy = "sip:+14255550100@127.0.0.11:5060";
  r.forks = {{"sip:+14255550100@127.0.0.11:5060", "pstn-primary", 200, "answered"}};
  r.startedAtMs = kStart;
  r.answeredAtMs = kStart + 2'345;
  r.endedAtMs = kStart + 14'690;
  r.finalStatus = 200;
  r.endCause = "caller-bye";
  r.mediaWorker = "127.0.0.1:50053";
  return r;
}

std::vector<std::string> readLines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("medius-cdr-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

TEST(CdrJsonTest, AnsweredCall) {
  EXPECT_EQ(cdrJson(answeredCall()),
            R"({"id":"c-1","gateway_id":"gw-1","direction":"outbound",)"
            R"("caller":{"dialled":"alice","normalized":"+14255550123",)"
            R"("authenticated":"sip:alice@example.com"},)"
            R"("callee":{"dialled":"0014255550100","normalized":"+14255550100"},)"
            R"("source_trunk":"","route":"us-pstn","trunk":"pstn-primary",)"
            R"("answered_by":"sip:+14255550100@127.0.0.11:5060",)"
            R"("forks":[{"target":"sip:+14255550100@127.0.0.11:5060","trunk":"pstn-primary",)"
            R"("status":200,"reason":"answered"}],)"
            R"("started_at":"2026-11-26T10:00:00.000Z","answered_at":"2026-11-26T10:00:02.345Z",)"
            R"("ended_at":"2026-11-26T10:00:14.690Z","duration_s":12.345,"final_status":200,)"
            R"("end_cause":"caller-bye","media_worker":"127.0.0.1:50053","media":null})");
}

TEST(CdrJsonTest, AnsweredCallWithTheWorkersMediaQuality) {
  v1::SessionStats stats;
  stats.set_transcoding(true);
  stats.set_mos(4.0412);
  auto* a = stats.mutable_leg_a();
  a->set_codec("opus");
  a->set_srtp(true);
  a->set_packets_in(600);
  a->set_packets_out(598);
  a->set_packets_lost(6);
  a->set_loss_percent(0.996);
  a->set_jitter_ms(2.345);
  a->set_mos(4.0412);
  auto* b = stats.mutable_leg_b();
  b->set_codec("PCMU");
  b->set_packets_in(598);
  b->set_packets_out(600);
  b->set_rtt_ms(12.5);
  b->set_mos(4.409);
  CallRecord r = answeredCall();
  r.media = mediaQualityOf(stats);
  std::string line = cdrJson(r);
  EXPECT_NE(line.find(R"("media_worker":"127.0.0.1:50053","media":{"transcoding":true,"mos":4.04,)"
                      R"("leg_a":{"codec":"opus","srtp":true,"packets_in":600,"packets_out":598,)"
                      R"("packets_lost":6,"loss_percent":1.0,"jitter_ms":2.35,"rtt_ms":0.0,)"
                      R"("mos":4.04},"leg_b":{"codec":"PCMU","srtp":false,"packets_in":598,)"
                      R"("packets_out":600,"packets_lost":0,"loss_percent":0.0,"jitter_ms":0.0,)"
                      R"("rtt_ms":12.5,"mos":4.41}}})"),
            std::string::npos)
      << line;
}

TEST(CdrJsonTest, FailedCall) {
  CallRecord r;
  r.id = "c-2";
  r.gatewayId = "gw-1";
  r.direction = "inbound";
  r.callerDialled = "+14255550199";
  r.calleeDialled = "2200";
  r.callerNormalized = "+14255550199";
  r.calleeNormalized = "+14255552200";
  r.sourceTrunk = "pstn-primary";
  r.route = "pbx,voicemail";
  r.forks = {{"sip:2200@127.0.0.13:5060", "pbx", 503, "503 Service Unavailable"},
             {"sip:bob@127.0.0.1:5070", "", 408, "timeout"}};
  r.startedAtMs = kStart + 7;
  r.endedAtMs = kStart + 32'050;
  r.finalStatus = 480;
  r.endCause = "failed";
  EXPECT_EQ(cdrJson(r),
            R"({"id":"c-2","gateway_id":"gw-1","direction":"inbound",)"
            R"("caller":{"dialled":"+14255550199","normalized":"+14255550199","authenticated":""},)"
            R"("callee":{"dialled":"2200","normalized":"+14255552200"},)"
            R"("source_trunk":"pstn-primary","route":"pbx,voicemail","trunk":"",)"
            R"("answered_by":"",)"
            R"("forks":[{"target":"sip:2200@127.0.0.13:5060","trunk":"pbx","status":503,)"
            R"("reason":"503 Service Unavailable"},)"
            R"({"target":"sip:bob@127.0.0.1:5070","trunk":"","status":408,"reason":"timeout"}],)"
            R"("started_at":"2026-11-26T10:00:00.007Z","answered_at":null,)"
            R"("ended_at":"2026-11-26T10:00:32.050Z","duration_s":0.0,"final_status":480,)"
            R"("end_cause":"failed","media_worker":"","media":null})");
}

TEST(CdrJsonTest, RejectedBeforeRoutingHasNoForks) {
  CallRecord r;
  r.id = "c-3";
  r.startedAtMs = kStart;
  r.endedAtMs = kStart;
  r.finalStatus = 404;
  r.endCause = "rejected";
  const auto j = nlohmann::json::parse(cdrJson(r));
  EXPECT_TRUE(j["forks"].is_array());
  EXPECT_TRUE(j["forks"].empty());
  EXPECT_TRUE(j["answered_at"].is_null());
  EXPECT_EQ(j["final_status"], 404);
}

TEST(CdrJsonTest, HostileCallerStaysOneValidLine) {
  CallRecord r = answeredCall();
  r.callerDialled = std::string("\"},\"evil\":1,\"x\":{\"") + "\r\nline2\t\x01\x1f\x7f\\";
  r.calleeDialled = std::string("\xff\xfe bad \xc3\x28 utf8 \xe2\x82") + "";
  r.forks[0].reason = std::string("nul\0byte", 8);
  r.callerNormalized = "caf\xc3\xa9";  // valid UTF-8 stays as is
  const std::string line = cdrJson(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  for (char c : line) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << line;
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;
  EXPECT_FALSE(j.contains("evil"));
  EXPECT_EQ(j["caller"]["dialled"],
            std::string("\"},\"evil\":1,\"x\":{\"") + "\r\nline2\t\x01\x1f\x7f\\");
  EXPECT_EQ(j["caller"]["normalized"], "caf\xc3\xa9");
  EXPECT_EQ(j["forks"][0]["reason"], std::string("nul\0byte", 8));
  // Invalid bytes became U+FFFD; the rest of the string survives.
  const std::string callee = j["callee"]["dialled"];
  EXPECT_NE(callee.find("\xef\xbf\xbd"), std::string::npos);
  EXPECT_NE(callee.find(" bad "), std::string::npos);
  EXPECT_NE(callee.find(" utf8 "), std::string::npos);
  // The output itself is valid UTF-8 (a strict re-dump does not throw).
  EXPECT_TRUE(nlohmann::json::accept(j.dump()));
}

TEST(CdrWriterTest, EmptyPathDisables) {
  CdrWriter writer("");
  EXPECT_FALSE(writer.enabled());
  writer.write(answeredCall());
  writer.reopen();
  writer.flush();
}

TEST(CdrWriterTest, AppendsOneLinePerCall) {
  TempDir dir;
  const fs::path file = dir.path() / "cdr.jsonl";
  {
    std::ofstream(file) << "existing\n";
  }
  {
    CdrWriter writer(file.string());
    EXPECT_TRUE(writer.enabled());
    for (int i = 0; i < 100; ++i) {
      CallRecord r = answeredCall();
      r.id = "c-" + std::to_string(i);
      writer.write(r);
    }
    writer.flush();
    auto lines = readLines(file);
    ASSERT_EQ(lines.size(), 101u);
    EXPECT_EQ(lines[0], "existing");
    EXPECT_EQ(nlohmann::json::parse(lines[1])["id"], "c-0");
    EXPECT_EQ(nlohmann::json::parse(lines[100])["id"], "c-99");
    // Queued at destruction: still written.
    CallRecord last = answeredCall();
    last.id = "last";
    writer.write(last);
  }
  auto lines = readLines(file);
  ASSERT_EQ(lines.size(), 102u);
  EXPECT_EQ(nlohmann::json::parse(lines.back())["id"], "last");
}

TEST(CdrWriterTest, ReopenAfterRotationStartsANewFile) {
  TempDir dir;
  const fs::path file = dir.path() / "cdr.jsonl";
  const fs::path rotated = dir.path() / "cdr.jsonl.1";
  CdrWriter writer(file.string());
  CallRecord r = answeredCall();
  r.id = "before";
  writer.write(r);
  writer.flush();
  fs::rename(file, rotated);
  r.id = "between";  // still goes to the renamed file (the fd is open)
  writer.write(r);
  writer.flush();
  writer.reopen();
  writer.flush();
  ASSERT_TRUE(fs::exists(file));
  // Created 0640: CDRs hold numbers, not for every local user.
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::others_all, fs::perms::none);
  r.id = "after";
  writer.write(r);
  writer.flush();
  auto old = readLines(rotated);
  ASSERT_EQ(old.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(old[0])["id"], "before");
  EXPECT_EQ(nlohmann::json::parse(old[1])["id"], "between");
  auto fresh = readLines(file);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(fresh[0])["id"], "after");
}

TEST(CdrWriterTest, UnwritablePathThrowsNamingIt) {
  TempDir dir;
  const std::string path = (dir.path() / "no-such-dir" / "cdr.jsonl").string();
  try {
    CdrWriter writer(path);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(CdrWriterTest, WriteErrorsAreCounted) {
  // /dev/full (every write fails with ENOSPC) is part of every Linux system.
  ASSERT_TRUE(fs::exists("/dev/full"));
  prometheus::Registry registry;
  auto& errors = prometheus::BuildCounter().Name("errors_total").Register(registry).Add({});
  {
    CdrWriter writer("/dev/full", &errors);
    writer.write(answeredCall());
    writer.write(answeredCall());
    writer.flush();
    EXPECT_GE(errors.Value(), 1.0);
    writer.write(answeredCall());
    writer.flush();  // keeps working after errors
  }
  EXPECT_GE(errors.Value(), 2.0);
}

v1::CallInfo callInfo(const std::string& id, std::int64_t startedAtMs) {
  v1::CallInfo call;
  call.set_id(id);
  call.set_started_at_ms(startedAtMs);
  return call;
}

std::vector<std::string> ids(const v1::ListCallsResponse& response) {
  std::vector<std::string> out;
  for (const auto& call : response.calls()) out.push_back(call.id());
  return out;
}

TEST(CallDirectoryTest, PublishReplaceRemoveAndOrder) {
  CallDirectory directory;
  EXPECT_EQ(directory.size(), 0u);
  EXPECT_EQ(directory.list().calls_size(), 0);
  directory.publish(callInfo("b", 200));
  directory.publish(callInfo("c", 100));
  directory.publish(callInfo("a", 200));
  EXPECT_EQ(ids(directory.list()), (std::vector<std::string>{"c", "a", "b"}));
  auto updated = callInfo("c", 100);
  updated.set_answered_at_ms(150);
  updated.set_trunk("pstn-primary");
  directory.publish(updated);  // replaces, does not add
  EXPECT_EQ(directory.size(), 3u);
  EXPECT_EQ(directory.list().calls(0).answered_at_ms(), 150);
  EXPECT_EQ(directory.list().calls(0).trunk(), "pstn-primary");
  directory.remove("a");
  directory.remove("unknown");
  EXPECT_EQ(ids(directory.list()), (std::vector<std::string>{"c", "b"}));
  EXPECT_EQ(directory.size(), 2u);
}

TEST(CallDirectoryTest, TrunkCounters) {
  CallDirectory directory;
  EXPECT_EQ(directory.trunkCalls("pstn-primary"), 0u);
  directory.addTrunkCall("pstn-primary");
  directory.addTrunkCall("pstn-primary");
  directory.addTrunkCall("pbx");
  EXPECT_EQ(directory.trunkCalls("pstn-primary"), 2u);
  EXPECT_EQ(directory.trunkCalls("pbx"), 1u);
  directory.removeTrunkCall("pstn-primary");
  EXPECT_EQ(directory.trunkCalls("pstn-primary"), 1u);
  directory.removeTrunkCall("pbx");
  directory.removeTrunkCall("pbx");  // unbalanced: stays at 0
  EXPECT_EQ(directory.trunkCalls("pbx"), 0u);
  directory.addTrunkCall("pbx");
  EXPECT_EQ(directory.trunkCalls("pbx"), 1u);
}

TEST(CallDirectoryTest, ConcurrentReadersAndWriters) {
  CallDirectory directory;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&directory, w] {
      const std::string trunk = "t" + std::to_string(w % 2);
      for (int i = 0; i < 2000; ++i) {
        auto call = callInfo("w" + std::to_string(w) + "-" + std::to_string(i % 50), i);
        call.add_legs()->set_state("confirmed");
        directory.publish(call);
        directory.addTrunkCall(trunk);
        if (i % 3 == 0) directory.remove(call.id());
        directory.removeTrunkCall(trunk);
      }
    });
  }
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&directory, &stop] {
      while (!stop.load()) {
        const auto list = directory.list();
        for (int i = 1; i < list.calls_size(); ++i) {
          ASSERT_LE(list.calls(i - 1).started_at_ms(), list.calls(i).started_at_ms());
        }
        (void)directory.size();
        (void)directory.trunkCalls("t0");
      }
    });
  }
  for (int w = 0; w < 4; ++w) threads[static_cast<std::size_t>(w)].join();
  stop = true;
  for (std::size_t i = 4; i < threads.size(); ++i) threads[i].join();
  EXPECT_EQ(directory.trunkCalls("t0"), 0u);
  EXPECT_EQ(directory.trunkCalls("t1"), 0u);
  EXPECT_LE(directory.size(), 200u);
}

TEST(CdrWriterTest, ConcurrentWritersProduceWholeLines) {
  TempDir dir;
  const fs::path file = dir.path() / "cdr.jsonl";
  {
    CdrWriter writer(file.string());
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&writer, t] {
        for (int i = 0; i < 250; ++i) {
          CallRecord r = answeredCall();
          r.id = std::to_string(t) + "-" + std::to_string(i);
          writer.write(r);
          if (i == 100 && t == 0) writer.reopen();
        }
      });
    }
    for (auto& thread : threads) thread.join();
  }
  const auto lines = readLines(file);
  ASSERT_EQ(lines.size(), 1000u);
  for (const auto& line : lines) EXPECT_TRUE(nlohmann::json::accept(line)) << line;
}

}  // namespace
}  // namespace medius::gateway
