#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "sinks/file_sink.h"

namespace fs = std::filesystem;
using sluice::Envelope;

namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/sluice-file-sink-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<Envelope> Batch(int from, int to) {
  std::vector<Envelope> batch;
  for (int i = from; i < to; ++i) {
    // 10-byte body + newline = 11 bytes per line.
    char body[32];
    std::snprintf(body, sizeof body, "{\"n\":%04d}", i);
    batch.push_back(Envelope{std::to_string(i), "", body});
  }
  return batch;
}

}  // namespace

TEST_CASE("file sink appends one line per record and creates its directory") {
  TempDir dir;
  sluice::config::FileSinkConfig c;
  c.path = dir.path + "/sub/out.jsonl";
  auto sink = sluice::sinks::NewFileSink(c);
  REQUIRE(sink.ok());
  REQUIRE((*sink)->Write(Batch(0, 3)).status.ok());
  REQUIRE((*sink)->Write(Batch(3, 5)).status.ok());
  auto lines = Lines(c.path);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == "{\"n\":0000}");
  CHECK(lines[4] == "{\"n\":0004}");
}

TEST_CASE("file sink rotates by size, keeps `keep` files and never splits a record") {
  TempDir dir;
  sluice::config::FileSinkConfig c;
  c.path = dir.path + "/out.jsonl";
  c.rotate_max_size = 35;  // three 11-byte lines fit, a fourth does not
  c.rotate_keep = 2;
  auto sink = sluice::sinks::NewFileSink(c);
  REQUIRE(sink.ok());
  REQUIRE((*sink)->Write(Batch(0, 10)).status.ok());
  // 0-2 -> rotated away (keep=2), 3-5 -> .2, 6-8 -> .1, 9 -> live
  CHECK(Lines(c.path) == std::vector<std::string>{"{\"n\":0009}"});
  CHECK(Lines(c.path + ".1").size() == 3);
  CHECK(Lines(c.path + ".1")[0] == "{\"n\":0006}");
  CHECK(Lines(c.path + ".2")[0] == "{\"n\":0003}");
  CHECK_FALSE(fs::exists(c.path + ".3"));
  for (const auto& f : {c.path, c.path + ".1", c.path + ".2"}) {
    CHECK(fs::file_size(f) <= 35);
  }
}

TEST_CASE("file sink reopens an existing file and counts its size for rotation") {
  TempDir dir;
  sluice::config::FileSinkConfig c;
  c.path = dir.path + "/out.jsonl";
  c.rotate_max_size = 35;
  {
    auto sink = sluice::sinks::NewFileSink(c);
    REQUIRE((*sink)->Write(Batch(0, 2)).status.ok());
  }
  auto sink = sluice::sinks::NewFileSink(c);
  REQUIRE((*sink)->Write(Batch(2, 4)).status.ok());
  CHECK(Lines(c.path + ".1").size() == 3);
  CHECK(Lines(c.path).size() == 1);
}

TEST_CASE("file sink refuses a path it cannot open, naming it") {
  sluice::config::FileSinkConfig c;
  c.path = "/proc/no-such-dir/out.jsonl";
  auto sink = sluice::sinks::NewFileSink(c);
  REQUIRE_FALSE(sink.ok());
  CHECK(sink.status().message().find("/proc/no-such-dir") != std::string::npos);
}

TEST_CASE("file sink cuts off a record torn by a crash before it appends") {
  TempDir dir;
  sluice::config::FileSinkConfig c;
  c.path = dir.path + "/out.jsonl";
  std::string big(100 * 1024, 'x');  // a torn line longer than one read back
  for (const std::string& tail : {std::string("{\"n\":9"), "{\"n\":\"" + big}) {
    {
      std::ofstream out(c.path, std::ios::trunc);
      out << "{\"n\":0000}\n" << tail;  // killed in the middle of the second record
    }
    auto sink = sluice::sinks::NewFileSink(c);
    REQUIRE(sink.ok());
    REQUIRE((*sink)->Write(Batch(1, 3)).status.ok());
    CHECK(Lines(c.path) == std::vector<std::string>{"{\"n\":0000}", "{\"n\":0001}", "{\"n\":0002}"});
  }
  {  // nothing but a torn record
    std::ofstream out(c.path, std::ios::trunc);
    out << "{\"n\":";
  }
  auto sink = sluice::sinks::NewFileSink(c);
  REQUIRE(sink.ok());
  REQUIRE((*sink)->Write(Batch(5, 6)).status.ok());
  CHECK(Lines(c.path) == std::vector<std::string>{"{\"n\":0005}"});
}

TEST_CASE("file sink writes a new file when the old one was moved or deleted (logrotate)") {
  TempDir dir;
  sluice::config::FileSinkConfig c;
  c.path = dir.path + "/out.jsonl";
  auto sink = sluice::sinks::NewFileSink(c);
  REQUIRE(sink.ok());
  REQUIRE((*sink)->Write(Batch(0, 2)).status.ok());
  fs::rename(c.path, c.path + ".moved");
  REQUIRE((*sink)->Write(Batch(2, 4)).status.ok());
  CHECK(Lines(c.path + ".moved").size() == 2);
  CHECK(Lines(c.path) == std::vector<std::string>{"{\"n\":0002}", "{\"n\":0003}"});
  fs::remove(c.path);
  REQUIRE((*sink)->Write(Batch(4, 5)).status.ok());
  CHECK(Lines(c.path) == std::vector<std::string>{"{\"n\":0004}"});
}

TEST_CASE("file sink truncated behind its back (copytruncate) goes on at the file's real end") {
  TempDir dir;
  sluice::config::FileSinkConfig c;
  c.path = dir.path + "/out.jsonl";
  c.rotate_max_size = 35;  // three 11-byte lines
  auto sink = sluice::sinks::NewFileSink(c);
  REQUIRE(sink.ok());
  REQUIRE((*sink)->Write(Batch(0, 3)).status.ok());
  fs::resize_file(c.path, 0);
  REQUIRE((*sink)->Write(Batch(3, 6)).status.ok());
  // No NUL padding up to the old size, and no early rotation: three lines fit.
  CHECK(fs::file_size(c.path) == 33);
  CHECK(Lines(c.path) == std::vector<std::string>{"{\"n\":0003}", "{\"n\":0004}", "{\"n\":0005}"});
  CHECK_FALSE(fs::exists(c.path + ".1"));
}

TEST_CASE("file sink failing to write keeps the records for a retry, never refuses them") {
  TempDir dir;
  sluice::config::FileSinkConfig c;
  c.path = dir.path + "/sub/out.jsonl";
  auto sink = sluice::sinks::NewFileSink(c, /*sync_each_batch=*/true);
  REQUIRE(sink.ok());
  REQUIRE((*sink)->Write(Batch(0, 1)).status.ok());
  // The directory replaced by a file: as root no permission bit stops us,
  // but this does.
  fs::remove_all(dir.path + "/sub");
  std::ofstream(dir.path + "/sub") << "x";
  sluice::sinks::WriteResult r = (*sink)->Write(Batch(1, 2));
  CHECK_FALSE(r.status.ok());
  CHECK(sluice::IsTransient(r.status));
  CHECK(r.status.message().find(dir.path + "/sub") != std::string_view::npos);
  CHECK(r.rejected.empty());
  fs::remove(dir.path + "/sub");
  REQUIRE((*sink)->Write(Batch(1, 2)).status.ok());
  CHECK(Lines(c.path) == std::vector<std::string>{"{\"n\":0001}"});
}
