// MemoryDeadLetters: a DeadLetterStore for tests that keeps every letter in
// memory, so a test can assert what was dead-lettered and why.
//
//   MemoryDeadLetters dead;
//   sinks::DeliveryLoop loop("s", sink, queue, dead, RealClock());
//   ...
//   REQUIRE(dead.size() == 1);
//   CHECK(dead.Letters()[0].reason.find("400") != std::string::npos);
#ifndef SLUICE_TESTS_MEMORY_DEAD_LETTERS_H_
#define SLUICE_TESTS_MEMORY_DEAD_LETTERS_H_

#include <mutex>
#include <vector>

#include "platform/dead_letter.h"

namespace sluice::testing {

class MemoryDeadLetters : public DeadLetterStore {
 public:
  Status Put(const DeadLetter& letter) override {
    std::lock_guard<std::mutex> lock(mu);
    letters.push_back(letter);
    return Status::Ok();
  }
  // A copy, safe while writers run.
  std::vector<DeadLetter> Letters() {
    std::lock_guard<std::mutex> lock(mu);
    return letters;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return letters.size();
  }

  // Direct access once the writers stopped.
  std::mutex mu;
  std::vector<DeadLetter> letters;
};

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_MEMORY_DEAD_LETTERS_H_
