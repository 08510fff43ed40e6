#include "gateway/json/reader.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/utf8.hpp"
#include "gateway/json/writer.hpp"
#include "tests/support/report.hpp"
#include "tests/support/skip.hpp"

namespace json = gateway::json;
using namespace std::string_literals;

namespace {

json::value parse_ok(std::string_view text, const json::parse_options& opts = {}) {
  auto r = json::parse(text, opts);
  INFO("input: " << text << "\nerror: " << r.error().message << " at offset " << r.error().offset);
  REQUIRE(r);
  return std::move(r).value();
}

json::parse_error parse_fails(std::string_view text, const json::parse_options& opts = {}) {
  auto r = json::parse(text, opts);
  INFO("input: " << text);
  REQUIRE_FALSE(r);
  CHECK_FALSE(r.error().message.empty());
  return r.error();
}

#ifdef GATEWAY_SHARED_DIR
std::string read_file(const std::filesystem::path& path) {
  std::string data(std::filesystem::file_size(path), '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  REQUIRE(in.gcount() == static_cast<std::streamsize>(data.size()));
  return data;
}
#endif

// A request-body-like document of `records` objects, one per line (record k
// starts on line k + 2), written with the gateway's own JSON writer.
std::string make_document(std::size_t records) {
  std::string out = "[\n";
  for (std::size_t k = 0; k < records; ++k) {
    if (k) out += ",\n";
    out += "{\"id\": ";
    json::append_number(out, static_cast<std::uint64_t>(k));
    out += ", \"name\": ";
    json::append_string(out, "user-" + std::to_string(k));
    out += ", \"email\": ";
    json::append_string(out, "user" + std::to_string(k) + "@example.com");
    out += ", \"score\": ";
    json::append_number(out, static_cast<double>(k) * 0.25, 2);
    out += ", \"active\": ";
    out += (k % 2) ? "true" : "false";
    out += ", \"tags\": [\"alpha\", \"beta\", null], \"bio\": ";
    json::append_string(out, "says \"hi\"\tfrom caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC, line\nbreak and a longer tail");
    out += "}";
  }
  out += "\n]\n";
  return out;
}

// What scan_object() hands over: each wanted member's key and value.
class recording_visitor final : public json::member_visitor {
 public:
  explicit recording_visitor(std::vector<std::string> wanted) : wanted_(std::move(wanted)) {}
  bool wants(std::string_view key) override {
    asked.emplace_back(key);
    for (const auto& w : wanted_) {
      if (w == key) return true;
    }
    return false;
  }
  void on_member(const json::member& m) override { got.push_back(m); }

  std::vector<std::string> asked;  // every key wants() was asked about
  std::vector<json::member> got;   // copies: the member is valid only during the call

 private:
  std::vector<std::string> wanted_;
};

}  // namespace

TEST_CASE("reader accepts every y_ file and rejects every n_ file of JSONTestSuite", "[unit][json]") {
  const std::filesystem::path dir = GATEWAY_SHARED_DIR "/testdata/JSONTestSuite/test_parsing/";
  std::error_code ec;
  GATEWAY_REQUIRE_AVAILABLE(std::filesystem::is_directory(dir, ec),
                            "JSONTestSuite not found at " << dir.string()
                                                          << " (git clone https://github.com/nst/JSONTestSuite "
                                                             "into ../shared/testdata)");
  std::size_t accepted = 0;
  std::size_t rejected = 0;
  std::size_t implementation_defined = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".json") continue;
    const std::string text = read_file(entry.path());
    const auto r = json::parse(text);
    INFO(name << ": " << (r ? "accepted" : "rejected: " + r.error().message));
    if (name.rfind("y_", 0) == 0) {
      CHECK(r);
      ++accepted;
    } else if (name.rfind("n_", 0) == 0) {
      CHECK_FALSE(r);
      ++rejected;
    } else if (name.rfind("i_", 0) == 0) {
      // Either answer is allowed by RFC 8259; ours follow the header's
      // choices: numbers of any size are read (range is as_double's and
      // as_int64's concern); lone surrogates, invalid UTF-8 and non-UTF-8
      // encodings are rejected.
      if (name.rfind("i_number_", 0) == 0) CHECK(r);
      if (name.rfind("i_string_", 0) == 0 || name.rfind("i_object_", 0) == 0) CHECK_FALSE(r);
      CHECK((r || !r.error().message.empty()));
      ++implementation_defined;
    }
  }
  CHECK(accepted >= 90);
  CHECK(rejected >= 180);
  CHECK(implementation_defined >= 30);
}

TEST_CASE("reader accepts any scalar or container as the top-level value", "[unit][json]") {
  CHECK(parse_ok("0").as_int64() == 0);
  CHECK(parse_ok("-0").number_text() == "-0");
  CHECK(parse_ok("1.5e-3").as_double() == Approx(0.0015));
  CHECK(parse_ok("\"s\"").as_string() == "s");
  CHECK(parse_ok("true").as_bool());
  CHECK(parse_ok("false").is_bool());
  CHECK_FALSE(parse_ok("false").as_bool());
  CHECK(parse_ok("null").is_null());
  CHECK(parse_ok(" \t\r\n 7 \t\r\n ").as_int64() == 7);
  CHECK(parse_ok("[]").is_array());
  CHECK(parse_ok("[ ]").size() == 0);
  CHECK(parse_ok("{}").is_object());
  CHECK(parse_ok("{ }").members().empty());
  CHECK(parse_ok("\"\x7F\"").as_string() == "\x7F");  // DEL is not a control character in RFC 8259
  CHECK(parse_ok("{\"\":0}").find("") != nullptr);
  CHECK(parse_ok("[1e5,-0.0e-0,1E+2]").items()[2].number_text() == "1E+2");
}

TEST_CASE("reader rejects everything RFC 8259 does not allow, with a helpful message", "[unit][json]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "unexpected end of input, expected a value"},
      {"   ", "unexpected end of input, expected a value"},
      {"[1,]", "trailing comma before ']'"},
      {"{\"a\":1,}", "trailing comma before '}'"},
      {"[01]", "leading zeros are not allowed"},
      {"-01", "leading zeros are not allowed"},
      {"-", "expected a digit after '-'"},
      {"-a", "expected a digit after '-'"},
      {"1.", "expected a digit after the decimal point"},
      {"1.e3", "expected a digit after the decimal point"},
      {"1e", "expected a digit in the exponent"},
      {"1e+", "expected a digit in the exponent"},
      {".5", "a number must start with a digit"},
      {"+1", "must not start with '+'"},
      {"NaN", "NaN and Infinity are not allowed"},
      {"[Infinity]", "NaN and Infinity are not allowed"},
      {"-Infinity", "expected a digit after '-'"},
      {"'a'", "single-quoted strings are not allowed"},
      {"{'a':1}", "single-quoted strings are not allowed"},
      {"/* c */ 1", "comments are not allowed"},
      {"[1] // c", "unexpected data after the top-level value"},
      {"1 2", "unexpected data after the top-level value"},
      {"1\0"s, "unexpected data after the top-level value"},
      {"\"a\tb\"", "control character in string must be escaped"},
      {"\"a\nb\"", "line break inside a string"},
      {"\"\x1F\"", "control character in string must be escaped"},
      {"\"abc", "unterminated string"},
      {"\"abc\\", "unterminated string"},
      {"\f1", "unexpected byte 0x0C"},
      {"\xC2\xA0" "1", "unexpected byte 0xC2"},
      {"\xEF\xBB\xBF{}", "byte order mark"},
      {"{\"a\" 1}", "expected ':' after object key"},
      {"{\"a\"", "expected ':' after object key"},
      {"{1:2}", "expected '\"' to start an object key"},
      {"{", "unexpected end of input, expected an object key"},
      {"{\"a\":", "unexpected end of input, expected a value"},
      {"[", "unexpected end of input, expected a value"},
      {"[1", "unexpected end of input, expected ',' or ']'"},
      {"{\"a\":1", "unexpected end of input, expected ',' or '}'"},
      {"[1 2]", "expected ',' or ']' after array element"},
      {"[1:2]", "expected ',' or ']' after array element"},
      {"{\"a\":1 \"b\":2}", "expected ',' or '}' after object member"},
      {"[,1]", "unexpected ',', expected a value"},
      {"[\"a\",,]", "unexpected ',', expected a value"},
      {"]", "unexpected ']', expected a value"},
      {"tru", "invalid literal, expected 'true'"},
      {"falsy", "invalid literal, expected 'false'"},
      {"nul", "invalid literal, expected 'null'"},
      {"True", "unexpected character 'T'"},
      {"truex", "unexpected data after the top-level value"},
      {"\"\\x\"", "invalid escape '\\x' in string"},
      {"\"\\u12\"", "invalid \\u escape, expected four hex digits"},
      {"\"\\u12G4\"", "invalid \\u escape, expected four hex digits"},
      {"\"\\U0041\"", "invalid escape '\\U' in string"},
  };
  for (const auto& [text, message] : cases) {
    const auto r = json::parse(text);
    INFO("input: " << text);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains(message));
    CHECK(r.error().offset <= text.size());
  }
}

TEST_CASE("reader caps nesting at max_depth instead of overflowing the stack", "[unit][json]") {
  SECTION("100000 opening brackets are an error at the 65th") {
    const auto e = parse_fails(std::string(100000, '['));
    CHECK(e.message == "nesting deeper than max_depth (64)");
    CHECK(e.offset == 64);
    CHECK(e.line == 1);
    CHECK(e.column == 65);
  }
  SECTION("100000 nested objects are an error too") {
    std::string text;
    for (int i = 0; i < 100000; ++i) text += "{\"a\":";
    CHECK_THAT(parse_fails(text).message, Catch::Contains("max_depth"));
  }
  SECTION("exactly max_depth levels are accepted, one more is not") {
    const std::string ok = std::string(64, '[') + "1" + std::string(64, ']');
    const json::value v = parse_ok(ok);
    const json::value* cur = &v;
    int depth = 0;
    while (cur->is_array()) {
      ++depth;
      REQUIRE(cur->size() == 1);
      cur = &cur->items()[0];
    }
    CHECK(depth == 64);
    CHECK(cur->as_int64() == 1);
    parse_fails(std::string(65, '[') + "1" + std::string(65, ']'));
  }
  SECTION("the cap is configurable and counts arrays and objects alike") {
    json::parse_options opts;
    opts.max_depth = 3;
    parse_ok("[[[1]]]", opts);
    parse_ok("{\"a\":[{}]}", opts);
    parse_fails("{\"a\":{\"b\":[[]]}}", opts);
    opts.max_depth = 0;
    parse_ok("1", opts);
    parse_fails("[]", opts);
    opts.max_depth = 5000;
    parse_ok(std::string(2000, '[') + std::string(2000, ']'), opts);
  }
}

TEST_CASE("reader reports the line and column of an error", "[unit][json]") {
  SECTION("a missing colon in a multi-line config") {
    const std::string text = "{\n  \"a\": 1,\n  \"b\" 2\n}";
    const auto e = parse_fails(text);
    CHECK(e.message == "expected ':' after object key");
    CHECK(e.line == 3);
    CHECK(e.column == 7);
    CHECK(e.offset == 18);
    CHECK(text[e.offset] == '2');
  }
  SECTION("end of input points past the last byte") {
    const auto e = parse_fails("[1,\n2");
    CHECK(e.offset == 5);
    CHECK(e.line == 2);
    CHECK(e.column == 2);
  }
  SECTION("columns count code points, not bytes") {
    const auto e = parse_fails("[\"\xE6\x97\xA5\xE6\x9C\xAC\", x]");
    CHECK(e.offset == 11);
    CHECK(e.column == 8);
  }
  SECTION("CRLF line ends count as one line each") {
    const auto e = parse_fails("{\r\n\"a\":\r\n  x}");
    CHECK(e.line == 3);
    CHECK(e.column == 3);
  }
  SECTION("an error inside a string points at the offending byte") {
    const auto e = parse_fails("\n\n  [\"ok\", \"bad\\q\"]");
    CHECK(e.message == "invalid escape '\\q' in string");
    CHECK(e.line == 3);
    CHECK(e.column == 14);
    CHECK(e.offset == 15);
  }
}

TEST_CASE("reader records the line of every value and object key", "[unit][json]") {
  const std::string text =
      "{\n"                      // 1
      "  \"name\": \"gw\",\n"    // 2
      "  \"listen\": {\n"        // 3
      "    \"port\": 8080\n"     // 4
      "  },\n"                   // 5
      "  \"keys\": [\n"          // 6
      "    \"k1\",\n"            // 7
      "    \"k2\"\n"             // 8
      "  ],\n"                   // 9
      "  \"timeout\":\n"         // 10
      "     30, \"flag\": true\n"  // 11
      "}\n";
  const json::value v = parse_ok(text);
  CHECK(v.line() == 1);
  const auto members = v.members();
  REQUIRE(members.size() == 5);
  CHECK(members[0].key == "name");
  CHECK(members[0].key_line == 2);
  CHECK(members[0].value.line() == 2);
  CHECK(members[1].key_line == 3);
  CHECK(members[1].value.line() == 3);
  CHECK(members[1].value.members()[0].key_line == 4);
  CHECK(members[1].value.find("port")->line() == 4);
  CHECK(members[2].key_line == 6);
  CHECK(members[2].value.items()[0].line() == 7);
  CHECK(members[2].value.items()[1].line() == 8);
  CHECK(members[3].key == "timeout");
  CHECK(members[3].key_line == 10);
  CHECK(members[3].value.line() == 11);
  CHECK(members[4].key_line == 11);
  CHECK(members[4].value.line() == 11);
  CHECK(json::value{}.line() == 0);
}

TEST_CASE("numbers keep their source text and convert exactly", "[unit][json]") {
  const auto int64 = [](std::string_view text) { return parse_ok(text).as_int64(); };
  constexpr auto max = std::numeric_limits<std::int64_t>::max();
  constexpr auto min = std::numeric_limits<std::int64_t>::min();
  CHECK(int64("1e2") == 100);
  CHECK(int64("1E+2") == 100);
  CHECK(int64("-0") == 0);
  CHECK(int64("-0.0e5") == 0);
  CHECK(int64("0e99999999999999999999") == 0);
  CHECK(int64("9223372036854775808") == std::nullopt);
  CHECK(int64("9223372036854775807") == max);
  CHECK(int64("-9223372036854775808") == min);
  CHECK(int64("-9223372036854775809") == std::nullopt);
  CHECK(int64("18446744073709551616") == std::nullopt);
  CHECK(int64("1.0") == 1);
  CHECK(int64("1.5") == std::nullopt);
  CHECK(int64("100e-2") == 1);
  CHECK(int64("1e-2") == std::nullopt);
  CHECK(int64("0.000") == 0);
  CHECK(int64("1e18") == 1'000'000'000'000'000'000);
  CHECK(int64("1e19") == std::nullopt);
  CHECK(int64("1e99999999999999999999") == std::nullopt);
  CHECK(int64("123456789012345678900000000000e-11") == 1234567890123456789);
  CHECK(int64("0.0000000000000000000001e22") == 1);
  CHECK(int64("-12.50e1") == -125);
  CHECK(int64("1.25e1") == std::nullopt);

  CHECK(parse_ok("1E+2").number_text() == "1E+2");
  CHECK(parse_ok("-0.50").number_text() == "-0.50");
  CHECK(parse_ok("[1234567890123456]").items()[0].number_text() == "1234567890123456");      // 16: inline
  CHECK(parse_ok("[12345678901234567]").items()[0].number_text() == "12345678901234567");    // 17: heap
  CHECK(parse_ok("0.1").as_double() == 0.1);
  CHECK(parse_ok("123").as_double() == 123.0);
  CHECK(parse_ok("-2.5E-3").as_double() == -0.0025);
  CHECK(parse_ok("12345678901234567890123").as_double() == 12345678901234567890123.0);
  CHECK(std::signbit(parse_ok("-0.0").as_double()));
  CHECK(parse_ok("1e400").as_double() == HUGE_VAL);
  CHECK(parse_ok("-1e400").as_double() == -HUGE_VAL);
  CHECK(parse_ok("1e-400").as_double() == 0.0);
  CHECK(std::signbit(parse_ok("-1e-400").as_double()));
}

TEST_CASE("reader decodes escapes and surrogate pairs to UTF-8", "[unit][json]") {
  CHECK(parse_ok(R"("\u00e9")").as_string() == "\xC3\xA9");
  CHECK(parse_ok(R"("\u20AC")").as_string() == "\xE2\x82\xAC");
  CHECK(parse_ok(R"("\uFFFF")").as_string() == "\xEF\xBF\xBF");
  CHECK(parse_ok(R"("\uD83D\uDE00")").as_string() == "\xF0\x9F\x98\x80");
  CHECK(parse_ok(R"("\ud834\udd1e")").as_string() == "\xF0\x9D\x84\x9E");
  CHECK(parse_ok(R"("\uDBFF\uDFFF")").as_string() == "\xF4\x8F\xBF\xBF");
  CHECK(parse_ok(R"("\u0000")").as_string() == "\0"s);
  CHECK(parse_ok(R"("\"\\\/\b\f\n\r\t")").as_string() == "\"\\/\b\f\n\r\t");
  CHECK(parse_ok(R"("a\nb\u0041c")").as_string() == "a\nbAc");
  CHECK(parse_ok(R"("a long string with an escape \n past sixteen bytes")").as_string() ==
        "a long string with an escape \n past sixteen bytes");
  CHECK(parse_ok("\"\xE6\x97\xA5\xE6\x9C\xAC\"").as_string() == "\xE6\x97\xA5\xE6\x9C\xAC");
  const json::value v = parse_ok(R"({"k\u00e9y": 1, "x\ty": 2})");
  CHECK(v.find("k\xC3\xA9y") != nullptr);
  CHECK(v.members()[1].key == "x\ty");
}

TEST_CASE("reader rejects lone surrogate escapes", "[unit][json]") {
  for (const char* text : {R"("\uD800")", R"("\uD800x")", R"("\uD800\u0041")", R"("\uDBFF\uD800")",
                           R"("\uD800\n")", R"("\uDC00")", R"("\uDFFF\uD800")", R"(["\uD83D"])"}) {
    CHECK_THAT(parse_fails(text).message, Catch::Contains("surrogate"));
  }
  CHECK_THAT(parse_fails(R"("\uD800\u00)").message, Catch::Contains("surrogate"));
}

TEST_CASE("reader rejects invalid UTF-8 in the input", "[unit][json]") {
  for (const char* text : {
           "\"\xC0\x80\"",          // overlong NUL
           "\"\xC1\xBF\"",          // overlong
           "\"\xE0\x80\x80\"",      // overlong 3-byte
           "\"\xF0\x80\x80\x80\"",  // overlong 4-byte
           "\"\xED\xA0\x80\"",      // U+D800 encoded in UTF-8
           "\"\xED\xBF\xBF\"",      // U+DFFF encoded in UTF-8
           "\"\xF4\x90\x80\x80\"",  // above U+10FFFF
           "\"\xF5\x80\x80\x80\"",  // byte F5
           "\"\xFF\"",              // byte FF
           "\"\x80\"",              // lone continuation byte
           "\"\xE2\x82\"",          // truncated before the quote
           "\"\xE2\x82",            // truncated at end of input
           "\"\xC3\"",              // lead byte then quote
       }) {
    const auto e = parse_fails(text);
    CHECK((e.message == "invalid UTF-8 in string" || e.message == "unterminated string"));
  }
  CHECK(parse_fails("\"\xC3\"").offset == 1);
  CHECK_THAT(parse_fails("\xC3\xA9").message, Catch::Contains("unexpected byte 0xC3"));
  // Boundaries that are valid.
  for (const char* text : {"\"\xC2\x80\"", "\"\xDF\xBF\"", "\"\xE0\xA0\x80\"", "\"\xED\x9F\xBF\"",
                           "\"\xEE\x80\x80\"", "\"\xEF\xBF\xBF\"", "\"\xF0\x90\x80\x80\"", "\"\xF4\x8F\xBF\xBF\""}) {
    const json::value v = parse_ok(text);
    CHECK(gateway::core::utf8_length(v.as_string()) == 1);
  }
}

TEST_CASE("reader keeps duplicate keys in source order and find returns the first", "[unit][json]") {
  const json::value v = parse_ok(R"({"a": 1, "b": 2, "a": 3})");
  REQUIRE(v.size() == 3);
  const auto m = v.members();
  CHECK(m[0].key == "a");
  CHECK(m[1].key == "b");
  CHECK(m[2].key == "a");
  CHECK(m[2].value.as_int64() == 3);
  REQUIRE(v.find("a") != nullptr);
  CHECK(v.find("a")->as_int64() == 1);
  CHECK(v.find("b")->as_int64() == 2);
  CHECK(v.find("c") == nullptr);
  CHECK(v.find("A") == nullptr);
  CHECK(parse_ok("[\"a\"]").find("a") == nullptr);
  std::vector<std::string> keys;
  for (const auto& member : v.members()) keys.push_back(member.key);
  CHECK(keys == std::vector<std::string>{"a", "b", "a"});
}

TEST_CASE("unique_member finds a member and tells whether its name repeats", "[unit][json]") {
  const json::value v = parse_ok(R"({"a": 1, "b": 2, "a": 3, "c": {"b": 4}})");
  bool duplicate = false;
  REQUIRE(json::unique_member(v, "b", duplicate) != nullptr);
  CHECK(json::unique_member(v, "b", duplicate)->as_int64() == 2);
  CHECK_FALSE(duplicate);  // a nested "b" is another object's member
  CHECK(json::unique_member(v, "x", duplicate) == nullptr);
  CHECK_FALSE(duplicate);
  CHECK(json::unique_member(v, "a", duplicate) != nullptr);
  CHECK(duplicate);
  bool in_array = false;
  CHECK(json::unique_member(parse_ok(R"(["a","a"])"), "a", in_array) == nullptr);
  CHECK_FALSE(in_array);
}

TEST_CASE("scan_object accepts exactly the object texts parse accepts, with the same errors", "[unit][json]") {
  const std::filesystem::path dir = GATEWAY_SHARED_DIR "/testdata/JSONTestSuite/test_parsing/";
  std::error_code ec;
  GATEWAY_REQUIRE_AVAILABLE(std::filesystem::is_directory(dir, ec),
                            "JSONTestSuite not found at " << dir.string()
                                                          << " (git clone https://github.com/nst/JSONTestSuite "
                                                             "into ../shared/testdata)");
  std::vector<std::string> texts = {make_document(20), "{\"a\":" + make_document(3) + "}",
                                    R"({"a":{"b":[1,{"c":"\ud83d\ude00"}]},"d":"\u00e9"})"};
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") texts.push_back(read_file(entry.path()));
  }
  std::size_t objects = 0;
  std::size_t same_error = 0;
  for (const auto& text : texts) {
    INFO("input: " << text.substr(0, 200));
    const auto parsed = json::parse(text);
    recording_visitor everything({});
    const auto scanned = json::scan_object(text, {}, everything);
    const bool object = parsed && parsed.value().is_object();
    CHECK(scanned.has_value() == !object);
    if (object) {
      ++objects;
      // wants() is asked about every top-level key, decoded, in order.
      std::vector<std::string> keys;
      for (const auto& m : parsed.value().members()) keys.push_back(m.key);
      CHECK(everything.asked == keys);
    } else if (!parsed && scanned && text.find_first_not_of(" \t\r\n") != std::string::npos &&
               text[text.find_first_not_of(" \t\r\n")] == '{') {
      // An invalid object text: the first error is the same one.
      CHECK(scanned->offset == parsed.error().offset);
      CHECK(scanned->message == parsed.error().message);
      ++same_error;
    }
  }
  CHECK(objects >= 12);
  CHECK(same_error >= 35);
}

TEST_CASE("scan_object hands over the wanted top-level members, their containers empty", "[unit][json]") {
  const std::string text =
      R"({"a": 1, "n\u0061me": "x\"y", "skip": {"name": 2, "s": "\u00e9"}, "b": [1, [2]],)"
      "\n"
      R"( "c": {"d": 3}, "e": null, "a": true, "long": "a string longer than sixteen bytes"})";
  recording_visitor v({"a", "name", "b", "c", "e", "long"});
  json::parse_options opts;
  opts.borrow_text = true;
  REQUIRE_FALSE(json::scan_object(text, opts, v));
  CHECK(v.asked == std::vector<std::string>{"a", "name", "skip", "b", "c", "e", "a", "long"});
  REQUIRE(v.got.size() == 7);
  CHECK(v.got[0].key == "a");
  CHECK(v.got[0].value.number_text() == "1");
  CHECK(v.got[1].key == "name");  // the key decoded
  CHECK(v.got[1].value.as_string() == "x\"y");
  CHECK(v.got[2].key == "b");
  CHECK(v.got[2].value.is_array());
  CHECK(v.got[2].value.size() == 0);  // checked, not kept
  CHECK(v.got[3].key == "c");
  CHECK(v.got[3].value.is_object());
  CHECK(v.got[3].value.size() == 0);
  CHECK(v.got[3].key_line == 2);
  CHECK(v.got[3].value.line() == 2);
  CHECK(v.got[4].value.is_null());
  CHECK(v.got[5].key == "a");  // a repeated name comes again: the visitor sees both
  CHECK(v.got[5].value.as_bool());
  CHECK(v.got[6].value.as_string() == "a string longer than sixteen bytes");

  recording_visitor none({});
  CHECK_FALSE(json::scan_object("{}", {}, none));
  CHECK_FALSE(json::scan_object(" { } ", {}, none));
  CHECK(none.asked.empty());
  // Nesting below the members still counts against max_depth.
  json::parse_options shallow;
  shallow.max_depth = 3;
  CHECK_FALSE(json::scan_object(R"({"a":[[1]]})", shallow, none));
  const auto deep = json::scan_object(R"({"a":[[[1]]]})", shallow, none);
  REQUIRE(deep);
  CHECK(deep->message == "nesting deeper than max_depth (3)");
  // Members handed over before an error later in the text are the caller's
  // to ignore: the result says the text is invalid.
  recording_visitor early({"a"});
  CHECK(json::scan_object(R"({"a":"x","b":[1,]})", {}, early));
  CHECK(early.got.size() == 1);
}

TEST_CASE("scan_object refuses a text that is not an object at its first byte", "[unit][json]") {
  // A big array is refused before any of it is read.
  std::string big = " \n[";
  for (int i = 0; i < 100000; ++i) big += "1,";
  big += "oops";
  for (const std::string& text : {big, std::string("[]"), std::string("1"), std::string("\"s\""),
                                  std::string("null"), std::string(""), std::string("  "), std::string("x{}")}) {
    INFO("input: " << text.substr(0, 40));
    recording_visitor v({"a"});
    const auto e = json::scan_object(text, {}, v);
    REQUIRE(e);
    CHECK(e->offset == std::min(text.find_first_not_of(" \t\r\n"), text.size()));
    CHECK(e->message == "expected an object ('{') as the top-level value");
    CHECK(v.asked.empty());
  }
  recording_visitor v({"a"});
  const auto e = json::scan_object(big, {}, v);
  REQUIRE(e);
  CHECK(e->line == 2);
  CHECK(e->column == 1);
}

TEST_CASE("utf8_length counts code points", "[unit][core]") {
  CHECK(gateway::core::utf8_length("") == 0);
  CHECK(gateway::core::utf8_length("abc") == 3);
  CHECK(gateway::core::utf8_length("\xC3\xA9") == 1);
  CHECK(gateway::core::utf8_length("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E") == 3);
  CHECK(gateway::core::utf8_length("\xF0\x9F\x98\x80") == 1);
  CHECK(gateway::core::utf8_length("a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80") == 4);
  CHECK(gateway::core::utf8_length("\0"s) == 1);
  // Invalid bytes count one each, as the writer's U+FFFD replacement does.
  CHECK(gateway::core::utf8_length("\xFF") == 1);
  CHECK(gateway::core::utf8_length("a\xE2\x82") == 3);
  CHECK(gateway::core::utf8_length("\xC0\x80") == 2);
  CHECK(gateway::core::utf8_length("\xED\xA0\x80") == 3);
  for (std::string_view s : {"\xFF" "ab", "a\xE2\x82", "\xC0\x80z", "x\xF0\x9F\x98"}) {
    std::string written;
    json::append_string(written, s);
    CHECK(gateway::core::utf8_length(parse_ok(written).as_string()) == gateway::core::utf8_length(s));
  }
}

TEST_CASE("reader rejects input larger than max_size before parsing", "[unit][json]") {
  json::parse_options opts;
  opts.max_size = 5;
  parse_ok("[1,2]", opts);
  const auto e = parse_fails("[1,2] ", opts);
  CHECK(e.message == "input is larger than max_size (5 bytes)");
  CHECK(e.offset == 0);
  opts.max_size = 0;
  CHECK_THAT(parse_fails("1", opts).message, Catch::Contains("max_size"));
}

TEST_CASE("values give neutral answers when asked for another kind", "[unit][json]") {
  const json::value s = parse_ok("\"text\"");
  CHECK(s.type() == json::kind::string);
  CHECK_FALSE(s.as_bool());
  CHECK(s.as_double() == 0.0);
  CHECK(s.as_int64() == std::nullopt);
  CHECK(s.number_text().empty());
  CHECK(s.items().empty());
  CHECK(s.members().empty());
  CHECK(s.size() == 0);
  CHECK(s.find("text") == nullptr);
  const json::value n = parse_ok("42");
  CHECK(n.type() == json::kind::number);
  CHECK(n.as_string().empty());
  CHECK_FALSE(n.as_bool());
  const json::value a = parse_ok("[1]");
  CHECK(a.members().empty());
  CHECK(a.as_int64() == std::nullopt);
  const json::value nul;
  CHECK(nul.is_null());
  CHECK(nul.type() == json::kind::null);
}

TEST_CASE("parse_result gives a null value on error and an empty error on success", "[unit][json]") {
  const auto bad = json::parse("[");
  CHECK_FALSE(bad.has_value());
  CHECK(bad.value().is_null());
  CHECK_FALSE(bad.error().message.empty());
  auto good = json::parse("{\"a\":[1,2]}");
  CHECK(good.has_value());
  CHECK(good.error().message.empty());
  CHECK(good.value().find("a")->size() == 2);
  const json::value moved = std::move(good).value();
  CHECK(moved.find("a")->items()[1].as_int64() == 2);
}

TEST_CASE("values copy deeply and move without copying", "[unit][json]") {
  const std::string text =
      R"({"s": "a string longer than sixteen bytes", "n": 12345678901234567890, "t": true,)"
      R"( "a": [1, "x", {"k": [null, {}]}], "o": {"inner": "v"}})";
  json::value copy;
  {
    const json::value original = parse_ok(text);
    copy = original;
    json::value another(original);
    CHECK(another.find("o")->find("inner")->as_string() == "v");
  }
  REQUIRE(copy.is_object());
  CHECK(copy.size() == 5);
  CHECK(copy.find("s")->as_string() == "a string longer than sixteen bytes");
  CHECK(copy.find("n")->number_text() == "12345678901234567890");
  CHECK(copy.find("t")->as_bool());
  CHECK(copy.find("a")->items()[2].find("k")->items()[1].is_object());

  json::value moved(std::move(copy));
  CHECK(copy.is_null());  // NOLINT(bugprone-use-after-move): moved-from is documented as null
  CHECK(moved.size() == 5);

  const json::value& self = moved;
  moved = self;  // self-assignment keeps the value
  CHECK(moved.size() == 5);
  moved = moved.find("a")->items()[2];  // assigning a part of itself
  REQUIRE(moved.is_object());
  CHECK(moved.find("k")->size() == 2);
  CHECK(moved.line() == 1);
}

TEST_CASE("borrow_text leaves long plain strings and numbers in the parsed text, copies own theirs",
          "[unit][json]") {
  const std::string text = R"({"long":"abcdefghijklmnopqrstuvwxyz","short":"abc",)"
                           R"("escaped":"abcdefghijklmnopqrst\nuvwxyz","n":123456789012345678901234567890})";
  const auto inside = [&](std::string_view v) {
    return v.data() >= text.data() && v.data() + v.size() <= text.data() + text.size();
  };
  json::parse_options opts;
  opts.borrow_text = true;
  const auto r = json::parse(text, opts);
  REQUIRE(r);
  const json::value& doc = r.value();
  CHECK(doc.find("long")->as_string() == "abcdefghijklmnopqrstuvwxyz");
  CHECK(inside(doc.find("long")->as_string()));  // no copy
  CHECK(doc.find("n")->number_text() == "123456789012345678901234567890");
  CHECK(inside(doc.find("n")->number_text()));
  CHECK(doc.find("escaped")->as_string() == "abcdefghijklmnopqrst\nuvwxyz");
  CHECK_FALSE(inside(doc.find("escaped")->as_string()));  // decoded: its own copy
  CHECK(doc.find("short")->as_string() == "abc");
  CHECK_FALSE(inside(doc.find("short")->as_string()));  // inline in the value

  // A copy owns its text and outlives the parsed text.
  json::value copy = doc;
  CHECK_FALSE(inside(copy.find("long")->as_string()));
  CHECK(copy.find("long")->as_string() == "abcdefghijklmnopqrstuvwxyz");
  CHECK(copy.find("n")->number_text() == doc.find("n")->number_text());

  // Without the option nothing points into the text.
  const auto owned = json::parse(text);
  REQUIRE(owned);
  CHECK_FALSE(inside(owned.value().find("long")->as_string()));
  CHECK_FALSE(inside(owned.value().find("n")->number_text()));
}

TEST_CASE("strings written by the writer read back unchanged", "[unit][json]") {
  std::vector<std::string> strings;
  std::string all_ascii;
  for (int c = 0; c < 0x80; ++c) {
    strings.emplace_back(1, static_cast<char>(c));
    all_ascii.push_back(static_cast<char>(c));
  }
  strings.push_back(all_ascii);
  strings.push_back("");
  strings.push_back("exactly 16 bytes");
  strings.push_back("exactly 17 bytes!");
  strings.push_back("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 \"quoted\" back\\slash");
  std::string doc = "[";
  for (std::size_t i = 0; i < strings.size(); ++i) {
    if (i) doc += ',';
    json::append_string(doc, strings[i]);
  }
  doc += ']';
  const json::value v = parse_ok(doc);
  REQUIRE(v.size() == strings.size());
  for (std::size_t i = 0; i < strings.size(); ++i) {
    INFO("string " << i);
    CHECK(v.items()[i].as_string() == strings[i]);
  }
}

TEST_CASE("reader parses a large request body with correct values and lines", "[unit][json]") {
  const std::size_t records = 3000;
  const std::string doc = make_document(records);
  const json::value v = parse_ok(doc);
  REQUIRE(v.size() == records);
  for (std::size_t k = 0; k < records; k += 499) {
    INFO("record " << k);
    const json::value& r = v.items()[k];
    CHECK(r.line() == k + 2);
    CHECK(r.members()[0].key_line == k + 2);
    CHECK(r.find("id")->as_int64() == static_cast<std::int64_t>(k));
    CHECK(r.find("name")->as_string() == "user-" + std::to_string(k));
    CHECK(r.find("score")->as_double() == Approx(static_cast<double>(k) * 0.25));
    CHECK(r.find("active")->as_bool() == (k % 2 == 1));
    CHECK(r.find("tags")->items()[2].is_null());
    CHECK(gateway::core::utf8_length(r.find("bio")->as_string()) == 52);
  }
}

TEST_CASE("reader throughput on a 1 MiB body", "[.perf][json]") {
  std::string doc;
  for (std::size_t n = 4000; doc.size() < (1u << 20); n += n / 16) doc = make_document(n);
  const int rounds = 50;
  std::size_t values = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < rounds; ++i) {
    const auto r = json::parse(doc);
    REQUIRE(r);
    values += r.value().size();
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  const double mib = static_cast<double>(doc.size()) / (1 << 20);
  GATEWAY_REPORT("parsed " << mib << " MiB (" << values / rounds << " records) " << rounds
                           << " times: " << elapsed.count() / rounds * 1e3 << " ms per parse, "
                           << mib * rounds / elapsed.count() << " MiB/s");
  CHECK(values > 0);
}
