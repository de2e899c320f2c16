#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "platform/outbox.h"

using namespace sluice;

namespace {
std::vector<Envelope> Records(int from, int to) {
  std::vector<Envelope> v;
  for (int i = from; i < to; ++i) v.push_back({std::to_string(i), "", "{}"});
  return v;
}
}  // namespace

TEST_CASE("peek leaves records queued until removed") {
  auto q = NewMemoryQueue(10);
  REQUIRE(q->Append(Records(0, 5)).ok());
  auto a = q->Peek(3, Millis(0));
  REQUIRE(a.ok());
  REQUIRE(a->size() == 3);
  CHECK((*a)[0].envelope.id == "0");
  auto b = q->Peek(3, Millis(0));
  CHECK((*b)[0].seq == (*a)[0].seq);
  REQUIRE(q->Remove((*a)[2].seq).ok());
  CHECK(q->size() == 2);
  CHECK((*q->Peek(10, Millis(0)))[0].envelope.id == "3");
}

TEST_CASE("a full queue blocks the producer until the consumer removes") {
  auto q = NewMemoryQueue(2);
  std::atomic<bool> appended{false};
  std::thread producer([&] {
    REQUIRE(q->Append(Records(0, 3)).ok());
    appended = true;
  });
  std::this_thread::sleep_for(Millis(50));
  CHECK_FALSE(appended.load());  // the third record waits for room
  auto peeked = q->Peek(1, Millis(0));
  REQUIRE(q->Remove((*peeked)[0].seq).ok());
  producer.join();
  CHECK(appended.load());
  CHECK(q->size() == 2);
}

TEST_CASE("closing wakes a blocked producer and a waiting consumer") {
  auto q = NewMemoryQueue(1);
  REQUIRE(q->Append(Records(0, 1)).ok());
  Status blocked_status;
  std::thread producer([&] { blocked_status = q->Append(Records(1, 2)); });
  std::this_thread::sleep_for(Millis(20));
  q->Close();
  producer.join();
  CHECK(blocked_status.code() == StatusCode::kCancelled);
  CHECK(q->size() == 1);  // what was queued stays readable
  auto empty = NewMemoryQueue(1);
  std::thread consumer([&] { CHECK(empty->Peek(1, Millis(60000))->empty()); });
  std::this_thread::sleep_for(Millis(20));
  empty->Close();
  consumer.join();
}
