#include <catch2/catch.hpp>

#include "platform/status.h"

using namespace sluice;

namespace {

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  RETURN_IF_ERROR(Half(x).status());
  return Status::Ok();
}

}  // namespace

TEST_CASE("Status carries a code and a message, and OK carries nothing") {
  Status ok;
  CHECK(ok.ok());
  CHECK(ok.code() == StatusCode::kOk);
  CHECK(ok.ToString() == "OK");
  Status s = Status::Unavailable("broker down");
  CHECK_FALSE(s.ok());
  CHECK(s.code() == StatusCode::kUnavailable);
  CHECK(s.ToString() == "UNAVAILABLE: broker down");
  CHECK(s.WithContext("sink 'cloud'").message() == "sink 'cloud': broker down");
  CHECK(s.WithContext("x").code() == StatusCode::kUnavailable);
}

TEST_CASE("transient codes are the retryable ones") {
  CHECK(IsTransient(Status::Unavailable("")));
  CHECK(IsTransient(Status::ResourceExhausted("")));
  CHECK(IsTransient(Status::DeadlineExceeded("")));
  CHECK_FALSE(IsTransient(Status::InvalidArgument("")));
  CHECK_FALSE(IsTransient(Status::PermissionDenied("")));
  CHECK_FALSE(IsTransient(Status::Ok()));
}

TEST_CASE("StatusOr and the macros propagate the first error") {
  CHECK(*Quarter(8) == 2);
  CHECK(Quarter(6).status().message() == "odd: 3");
  CHECK(Quarter(5).status().message() == "odd: 5");
  CHECK(CheckEven(4).ok());
  CHECK(CheckEven(3).code() == StatusCode::kInvalidArgument);
}
