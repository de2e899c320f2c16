#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "platform/json_text.h"

using namespace sluice;

TEST_CASE("escaped strings read back unchanged") {
  std::string nasty = "quote\" backslash\\ newline\n tab\t bell\x07 nul";
  nasty.push_back('\0');
  nasty += " unicode \xc3\xa9";
  std::string out;
  AppendJsonString(out, nasty);
  CHECK(nlohmann::json::parse(out).get<std::string>() == nasty);
}

TEST_CASE("UTF-8 validation") {
  CHECK(IsValidUtf8("plain"));
  CHECK(IsValidUtf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  CHECK_FALSE(IsValidUtf8("\xff"));
  CHECK_FALSE(IsValidUtf8("\xc3"));          // truncated
  CHECK_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong
  CHECK_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
}

TEST_CASE("base64 matches RFC 4648 test vectors") {
  CHECK(Base64Encode("") == "");
  CHECK(Base64Encode("f") == "Zg==");
  CHECK(Base64Encode("fo") == "Zm8=");
  CHECK(Base64Encode("foo") == "Zm9v");
  CHECK(Base64Encode("foobar") == "Zm9vYmFy");
}
