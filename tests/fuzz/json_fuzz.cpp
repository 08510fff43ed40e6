// libFuzzer target: the strict JSON reader (json::parse).
//
// On arbitrary bytes parse() must return a value or an error, never crash.
// When it accepts the text, a round trip must hold: the value written out
// again (compactly, strings through json::append_string, numbers as their
// exact source text) parses, gives an equal value, and writes out to the
// same text. Since append_string replaces invalid UTF-8 by U+FFFD, this also
// checks the reader's promise that every decoded string is valid UTF-8.
// A deep copy of the value must be equal too, and as_int64/as_double must
// agree where both answer. Parsing with borrow_text (strings and numbers left
// in the input) must give the same answer and an equal value. scan_object()
// must accept exactly the texts parse() accepts as objects, refuse an
// invalid object text with parse()'s error, and hand over the same top-level
// members (containers as empty ones of their kind).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/core/utf8.hpp"
#include "gateway/json/reader.hpp"
#include "gateway/json/writer.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace gateway;

// Recursion depth is bounded by parse_options::max_depth (64).
void write(const json::value& v, std::string& out) {
  switch (v.type()) {
    case json::kind::null: out += "null"; break;
    case json::kind::boolean: out += v.as_bool() ? "true" : "false"; break;
    case json::kind::number: out += v.number_text(); break;
    case json::kind::string: json::append_string(out, v.as_string()); break;
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const json::value& item : v.items()) {
        if (!first) out.push_back(',');
        first = false;
        write(item, out);
      }
      out.push_back(']');
      break;
    }
    case json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const json::member& m : v.members()) {
        if (!first) out.push_back(',');
        first = false;
        json::append_string(out, m.key);
        out.push_back(':');
        write(m.value, out);
      }
      out.push_back('}');
      break;
    }
  }
}

bool equal(const json::value& a, const json::value& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case json::kind::null: return true;
    case json::kind::boolean: return a.as_bool() == b.as_bool();
    case json::kind::number: return a.number_text() == b.number_text();
    case json::kind::string: return a.as_string() == b.as_string();
    case json::kind::array: {
      auto x = a.items(), y = b.items();
      if (x.size() != y.size() || a.size() != x.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (!equal(x[i], y[i])) return false;
      return true;
    }
    case json::kind::object: {
      auto x = a.members(), y = b.members();
      if (x.size() != y.size() || a.size() != x.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (x[i].key != y[i].key || !equal(x[i].value, y[i].value)) return false;
      return true;
    }
  }
  return false;
}

// Per-value checks that need no second parse.
void check_scalars(const json::value& v) {
  switch (v.type()) {
    case json::kind::number: {
      FUZZ_CHECK(!v.number_text().empty());
      const double d = v.as_double();
      if (auto i = v.as_int64()) {
        // The text is exactly the integer *i, so its nearest double is the
        // nearest double of *i.
        FUZZ_CHECK(d == static_cast<double>(*i));
      }
      break;
    }
    case json::kind::string:
      FUZZ_CHECK(core::utf8_length(v.as_string()) <= v.as_string().size());
      break;
    case json::kind::array:
      for (const json::value& item : v.items()) check_scalars(item);
      break;
    case json::kind::object:
      for (const json::member& m : v.members()) {
        FUZZ_CHECK(v.find(m.key) != nullptr);
        check_scalars(m.value);
      }
      break;
    default:
      break;
  }
}

// Keeps every top-level member scan_object() hands over; wants them all.
class keep_all final : public json::member_visitor {
 public:
  bool wants(std::string_view) override { return true; }
  void on_member(const json::member& m) override { members.push_back(m); }
  std::vector<json::member> members;
};

void check_scan(std::string_view text, const json::parse_result& r) {
  keep_all seen;
  const auto scanned = json::scan_object(text, {}, seen);
  const bool object = r && r.value().is_object();
  FUZZ_CHECK(scanned.has_value() == !object);
  if (!object) {
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    if (!r && first != std::string_view::npos && text[first] == '{') {
      FUZZ_CHECK(scanned->offset == r.error().offset && scanned->message == r.error().message);
    }
    return;
  }
  const auto members = r.value().members();
  FUZZ_CHECK(seen.members.size() == members.size());
  for (std::size_t i = 0; i < members.size(); ++i) {
    const json::value& full = members[i].value;
    const json::value& got = seen.members[i].value;
    FUZZ_CHECK(seen.members[i].key == members[i].key && got.type() == full.type());
    if (full.is_array() || full.is_object()) FUZZ_CHECK(got.size() == 0);
    else FUZZ_CHECK(equal(got, full));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  json::parse_result r = json::parse(text);
  json::parse_options borrow;
  borrow.borrow_text = true;
  json::parse_result b = json::parse(text, borrow);
  FUZZ_CHECK(r.has_value() == b.has_value());
  check_scan(text, r);
  if (!r) {
    const json::parse_error& e = r.error();
    FUZZ_CHECK(e.offset <= size && e.line >= 1 && e.column >= 1 && !e.message.empty());
    FUZZ_CHECK(b.error().offset == e.offset && b.error().message == e.message);
    return 0;
  }
  const json::value& v = r.value();
  check_scalars(v);
  FUZZ_CHECK(equal(v, b.value()));

  std::string once;
  write(v, once);
  json::parse_result again = json::parse(once);
  if (!again) {
    std::fprintf(stderr, "re-parse failed at %zu: %s\n", again.error().offset, again.error().message.c_str());
  }
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(equal(v, again.value()));
  std::string twice;
  write(again.value(), twice);
  FUZZ_CHECK(once == twice);

  json::value copy(v);
  FUZZ_CHECK(equal(v, copy));
  json::value moved(std::move(copy));
  FUZZ_CHECK(equal(v, moved) && copy.is_null());
  return 0;
}
