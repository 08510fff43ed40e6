#include "gateway/middleware/api_keys.hpp"

#include <catch2/catch.hpp>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using gateway::middleware::api_key_set;

namespace {

namespace fs = std::filesystem;

// A file in a private temporary folder, removed with the folder.
class temp_file {
 public:
  explicit temp_file(std::string_view content) {
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           ("api_keys_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1)));
    fs::create_directories(dir_);
    path_ = (dir_ / "keys.txt").string();
    std::ofstream out(path_, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    REQUIRE(out.good());
  }
  ~temp_file() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;

  const std::string& path() const { return path_; }
  std::string dir() const { return dir_.string(); }

 private:
  fs::path dir_;
  std::string path_;
};

}  // namespace

TEST_CASE("api key set contains exactly the configured keys", "[unit][middleware][api_keys]") {
  const api_key_set keys({"key-alpha-0123456789", "key-beta-9876543210", "k"});
  CHECK(keys.size() == 3);
  CHECK_FALSE(keys.empty());
  CHECK(keys.contains("key-alpha-0123456789"));
  CHECK(keys.contains("key-beta-9876543210"));
  CHECK(keys.contains("k"));

  CHECK_FALSE(keys.contains(""));
  CHECK_FALSE(keys.contains("key-alpha-012345678"));    // prefix
  CHECK_FALSE(keys.contains("key-alpha-01234567890"));  // extension
  CHECK_FALSE(keys.contains("KEY-ALPHA-0123456789"));   // case matters
  CHECK_FALSE(keys.contains(" key-alpha-0123456789"));  // no trimming at lookup
  CHECK_FALSE(keys.contains("key-gamma"));
  CHECK_FALSE(keys.contains(std::string(api_key_set::max_key_size + 1, 'k')));
  // A key with an embedded NUL is not the key before the NUL.
  CHECK_FALSE(keys.contains(std::string_view("k\0x", 3)));
}

TEST_CASE("api key set without keys refuses everything", "[unit][middleware][api_keys]") {
  const api_key_set none;
  CHECK(none.empty());
  CHECK_FALSE(none.contains("anything"));
  CHECK_FALSE(none.contains(""));
  const api_key_set from_empty_list(std::vector<std::string>{});
  CHECK_FALSE(from_empty_list.contains("anything"));
}

TEST_CASE("api key set keeps duplicates once and accepts keys up to the size cap", "[unit][middleware][api_keys]") {
  const std::string longest(api_key_set::max_key_size, 'z');
  const api_key_set keys({"same", "same", "other", longest});
  CHECK(keys.size() == 3);
  CHECK(keys.contains("same"));
  CHECK(keys.contains(longest));
  CHECK_FALSE(keys.contains(longest.substr(1)));
}

TEST_CASE("api key set refuses invalid keys without echoing them", "[unit][middleware][api_keys]") {
  CHECK_THROWS_AS(api_key_set({"good", ""}), std::invalid_argument);
  CHECK_THROWS_AS(api_key_set({std::string(api_key_set::max_key_size + 1, 'a')}), std::invalid_argument);
  try {
    api_key_set bad({"fine", "secret\x01value"});
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    CHECK(msg.find("#2") != std::string::npos);
    CHECK(msg.find("0x01") != std::string::npos);
    CHECK(msg.find("secret") == std::string::npos);
  }
  CHECK(api_key_set::check_key("tab\there").has_value());
  CHECK(api_key_set::check_key(std::string_view("nul\0", 4)).has_value());
  CHECK(api_key_set::check_key("del\x7f").has_value());
  CHECK(api_key_set::check_key("line\nbreak").has_value());
  CHECK_FALSE(api_key_set::check_key("inner space is fine").has_value());
  CHECK_FALSE(api_key_set::check_key("utf8-\xc3\xa9-fine").has_value());
}

TEST_CASE("api key set reads a key file with comments, blank lines, whitespace, CRLF and a BOM", "[unit][middleware][api_keys]") {
  const temp_file file(
      "\xEF\xBB\xBF"
      "first-key\n"
      "# a comment line\n"
      "\n"
      "   \t  \n"
      "  second-key  \t\r\n"
      "   # an indented comment\n"
      "third#key-with-hash\r\n"
      "last-key-without-newline");
  std::string error = "stale";
  const api_key_set keys = api_key_set::from_file(file.path(), error);
  CHECK(error.empty());
  CHECK(keys.size() == 4);
  CHECK(keys.contains("first-key"));
  CHECK(keys.contains("second-key"));
  CHECK(keys.contains("third#key-with-hash"));
  CHECK(keys.contains("last-key-without-newline"));
  CHECK_FALSE(keys.contains("# a comment line"));
  CHECK_FALSE(keys.contains("a comment line"));
  CHECK_FALSE(keys.contains("\xEF\xBB\xBF" "first-key"));
  CHECK_FALSE(keys.contains("  second-key  \t\r"));
}

TEST_CASE("api key set reports the line of an invalid key in a file", "[unit][middleware][api_keys]") {
  SECTION("a control character inside the key") {
    const temp_file file("ok-key\n# comment\n\nbad\x01key-secretvalue\nlater-key\n");
    std::string error;
    const api_key_set keys = api_key_set::from_file(file.path(), error);
    CHECK(keys.empty());
    CHECK_FALSE(keys.contains("ok-key"));
    CHECK(error.find(file.path() + ":4:") != std::string::npos);
    CHECK(error.find("0x01") != std::string::npos);
    CHECK(error.find("secretvalue") == std::string::npos);
  }
  SECTION("a tab between two words") {
    const temp_file file("one\ttwo\n");
    std::string error;
    CHECK(api_key_set::from_file(file.path(), error).empty());
    CHECK(error.find(":1:") != std::string::npos);
  }
  SECTION("a NUL byte") {
    const temp_file file(std::string_view("fine\nzero\0byte\n", 15));
    std::string error;
    CHECK(api_key_set::from_file(file.path(), error).empty());
    CHECK(error.find(":2:") != std::string::npos);
  }
  SECTION("a key over the size cap") {
    const temp_file file("a\n" + std::string(api_key_set::max_key_size + 1, 'x') + "\n");
    std::string error;
    CHECK(api_key_set::from_file(file.path(), error).empty());
    CHECK(error.find(":2:") != std::string::npos);
  }
}

TEST_CASE("api key set reports unreadable key files and accepts an empty one", "[unit][middleware][api_keys]") {
  const temp_file file("# only comments\n\n");
  std::string error;
  const api_key_set none = api_key_set::from_file(file.path(), error);
  CHECK(error.empty());
  CHECK(none.empty());

  const api_key_set missing = api_key_set::from_file(file.dir() + "/does-not-exist", error);
  CHECK(missing.empty());
  CHECK(error.find("does-not-exist") != std::string::npos);
  CHECK(error.find("cannot open") != std::string::npos);

  error.clear();
  const api_key_set dir = api_key_set::from_file(file.dir(), error);
  CHECK(dir.empty());
  CHECK_FALSE(error.empty());
}

TEST_CASE("api key set answers from several threads at once", "[unit][middleware][api_keys]") {
  std::vector<std::string> list;
  for (int i = 0; i < 50; ++i) list.push_back("key-" + std::to_string(i));
  const api_key_set keys(list);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        const bool expect = i % 2 == 0;
        const std::string k = (expect ? "key-" : "nokey-") + std::to_string(i % 50);
        if (keys.contains(k) != expect) wrong.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong.load() == 0);
}
