#include <catch2/catch.hpp>

#include <pthread.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "platform/thread_name.h"

namespace {

std::string NameOf(std::thread& t) {
  char name[64] = {};
  REQUIRE(pthread_getname_np(t.native_handle(), name, sizeof name) == 0);
  return name;
}

}  // namespace

using sluice::NameThisThread;

TEST_CASE("NameThisThread names the calling thread, cut to Linux's 15 bytes", "[platform]") {
  for (const auto& [asked, shown] :
       {std::pair<std::string, std::string>{"source plant", "source plant"},
        {"sink a-very-long-sink-name", "sink a-very-lon"}}) {
    bool named = false;
    bool go = false;
    std::mutex mu;
    std::condition_variable cv;
    std::thread t([&, asked = asked] {
      NameThisThread(asked);
      std::unique_lock lock(mu);
      named = true;
      cv.notify_all();
      cv.wait(lock, [&] { return go; });
    });
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return named; });
    }
    CHECK(NameOf(t) == shown);
    {
      std::lock_guard lock(mu);
      go = true;
    }
    cv.notify_all();
    t.join();
  }
}
