// The harness itself, against a real mosquitto and real processes.
#include "tests/integration/harness.h"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace sluice::testing {
namespace {

using namespace std::chrono_literals;

TEST_CASE("harness: ChildProcess reports exit codes and signals", "[integration][harness]") {
  TempDir dir;

  SECTION("exit code") {
    ChildProcess p({"/bin/sh", "-c", "exit 3"});
    CHECK(p.WaitExit(10s) == 3);
    CHECK_FALSE(p.Running());
    CHECK(p.WaitExit(0ms) == 3);  // stays known after reaping
  }
  SECTION("killed by a signal: 128 + signal") {
    ChildProcess p({"/bin/sh", "-c", "kill -TERM $$; sleep 30"});
    CHECK(p.WaitExit(10s) == 128 + SIGTERM);
  }
  SECTION("signalled by its PID") {
    ChildProcess p({"/bin/sh", "-c", "exec sleep 30"});
    CHECK(p.Running());
    CHECK_FALSE(p.WaitExit(50ms).has_value());
    CHECK(p.Stop(SIGINT, 10s) == 128 + SIGINT);
    p.Signal(SIGKILL);  // after reaping: a no-op, never another process
  }
  SECTION("stdout and stderr to files, environment additions") {
    ChildOptions options;
    options.env = {{"SLUICE_HARNESS_X", "42"}};
    options.stdout_path = dir.File("out.txt");
    options.stderr_path = dir.File("err.txt");
    ChildProcess p({"/bin/sh", "-c", "echo \"out $SLUICE_HARNESS_X\"; echo err >&2; exit 0"},
                   options);
    REQUIRE(p.WaitExit(10s) == 0);
    CHECK(ReadLines(dir.File("out.txt")) == std::vector<std::string>{"out 42"});
    CHECK(ReadLines(dir.File("err.txt")) == std::vector<std::string>{"err"});
  }
  SECTION("signals blocked in the test do not stay blocked in the child") {
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &term, &old);
    ChildProcess p({"/bin/sh", "-c", "exec sleep 30"});
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    CHECK(p.Stop(SIGTERM, 10s) == 128 + SIGTERM);
  }
  SECTION("a program that cannot run throws") {
    CHECK_THROWS_WITH(ChildProcess({dir.File("no-such-program")}),
                      Catch::Contains("cannot execute"));
  }
  SECTION("the destructor kills and reaps") {
    auto start = std::chrono::steady_clock::now();
    { ChildProcess p({"/bin/sh", "-c", "exec sleep 30"}); }
    CHECK(std::chrono::steady_clock::now() - start < 10s);
  }
}

TEST_CASE("harness: TempDir, ReadLines, LineTail, WaitUntil", "[integration][harness]") {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    CHECK(std::filesystem::is_directory(path));
    CHECK(ReadLines(dir.File("missing")).empty());

    WriteFile(dir.File("f"), "a\nb\npart");
    CHECK(ReadLines(dir.File("f")) == std::vector<std::string>{"a", "b"});

    LineTail tail(dir.File("f"));
    std::vector<std::string> lines;
    CHECK(tail.ReadNew(&lines) == 2);
    WriteFile(dir.File("f"), "a\nb\npartial\nc\n");
    CHECK(tail.ReadNew(&lines) == 2);
    CHECK(lines == std::vector<std::string>{"a", "b", "partial", "c"});
    CHECK(tail.ReadNew(&lines) == 0);
  }
  CHECK_FALSE(std::filesystem::exists(path));

  int calls = 0;
  CHECK(WaitUntil([&] { return ++calls == 3; }, 10s));
  CHECK_FALSE(WaitUntil([] { return false; }, 50ms));
  CHECK(FreeLoopbackPort() > 0);
}

TEST_CASE("harness: Mosquitto starts, carries messages, stops and restarts",
          "[integration][harness]") {
  Mosquitto broker;
  broker.Start();
  CHECK(broker.Running());
  CHECK(broker.url() == "tcp://127.0.0.1:" + std::to_string(broker.port()));

  {
    TestSubscriber sub(broker.url(), "t/#", 1, "harness-sub");
    CHECK(broker.SubscriptionCount("harness-sub", "t/#") == 1);
    CHECK(broker.SubscriptionCount("harness-sub", "t/+") == 0);
    TestPublisher pub(broker.url());
    pub.Publish("t/one", "hello", 1);
    pub.PublishNumbered("t/many", 0, 300, 1);
    auto m = sub.Next(10s);
    REQUIRE(m.has_value());
    CHECK(m->topic == "t/one");
    CHECK(m->payload == "hello");
    for (int n = 0; n < 300; ++n) {
      auto r = sub.Next(10s);
      REQUIRE(r.has_value());
      CHECK(r->payload == TestPublisher::NumberedPayload(n));
    }
  }

  SECTION("restart on the same port; the publisher reconnects") {
    TestPublisher pub(broker.url());
    const int port = broker.port();
    broker.Stop();
    CHECK_FALSE(broker.Running());
    CHECK(WaitUntil([&] { return !pub.Connected(); }, 30s));
    CHECK_THROWS(pub.Publish("t/x", "lost", 1));

    broker.Start();
    CHECK(broker.port() == port);
    pub.Reconnect();
    TestSubscriber sub(broker.url(), "t/#", 1);
    pub.Publish("t/after", "back", 1);
    auto m = sub.Next(10s);
    REQUIRE(m.has_value());
    CHECK(m->payload == "back");
  }
  SECTION("kill, then Restart() again") {
    broker.Kill();
    CHECK_FALSE(broker.Running());
    broker.Start();
    broker.Restart();
    TestPublisher pub(broker.url());
    pub.Publish("t/y", "ok", 0);
  }
  CHECK(broker.Log().find("mosquitto version") != std::string::npos);
}

TEST_CASE("harness: a persistent Mosquitto keeps retained messages across a restart",
          "[integration][harness]") {
  auto retained_after_restart = [](bool persistence) {
    MosquittoOptions options;
    options.persistence = persistence;
    options.max_queued_messages = 5000;
    options.max_inflight_messages = 50;
    options.extra_config = {"autosave_interval 600"};
    Mosquitto broker(options);
    broker.Start();  // would fail on a conf line mosquitto rejects
    CHECK(ReadFile(broker.conf_path()).find("\nautosave_interval 600\n") != std::string::npos);
    {
      // A retained message is what a broker keeps without any subscriber.
      TestPublisher pub(broker.url());
      pub.Publish("r/state", "kept", 1, /*retain=*/true);
    }
    broker.Restart();
    TestSubscriber sub(broker.url(), "r/#", 1);
    auto m = sub.Next(persistence ? 10s : 1s);
    return m.has_value() && m->payload == "kept";
  };
  CHECK(retained_after_restart(true));
  CHECK_FALSE(retained_after_restart(false));
}

}  // namespace
}  // namespace sluice::testing
