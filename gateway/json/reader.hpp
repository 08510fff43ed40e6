#pragma once
// Strict JSON reader (RFC 8259): parses one whole text into an owned DOM.
//
// Accepted language: exactly RFC 8259. In particular
//  - any value may be the top-level value (section 2); before and after it
//    only the four whitespace bytes space, tab, LF and CR; nothing else may
//    follow it;
//  - no comments, trailing commas, single quotes, leading zeros, '+' signs,
//    NaN/Infinity, unescaped control characters (U+0000..U+001F) in strings;
//  - the text must be UTF-8 (section 8.1): overlong forms, UTF-8-encoded
//    surrogates, bytes F5..FF and truncated sequences are rejected, and so is
//    a byte order mark;
//  - \u escapes: a surrogate pair decodes to one code point; a LONE SURROGATE
//    (a high one not followed by a \u low one, or a low one alone) IS
//    REJECTED (section 8.2 leaves this open), so every decoded string is valid
//    UTF-8. "\u0000" is accepted and yields a NUL byte inside the string;
//  - duplicate object keys are kept, in source order (section 4 leaves their
//    meaning open); find() returns the first, unique_member() tells a
//    caller that must not pick one that there are several;
//  - numbers of any length are accepted and keep their exact source text;
//    range questions are answered by as_double()/as_int64() (section 6).
//
// Errors: bad input is a parse_error value, never an exception; the only
// exception parse() can throw is std::bad_alloc (out of memory).
// Ownership: the result owns all its data and `text` may be freed after
// parse(), unless parse_options::borrow_text is set.
// Threads: parse() is reentrant; a value has no hidden mutable state, so
// const access from several threads at once is safe.
// Cost: one pass over the input with an explicit stack (no recursion while
// parsing). Strings and numbers of up to 16 bytes are stored inline; a longer
// one (unless borrowed), and every non-empty array or object, costs one
// exact-size allocation.
// A value takes 24 bytes and an object member 64 (x86-64), so the DOM can be
// up to ~12x the input size ("[1,1,1,...]"), with up to ~3x that briefly
// while the largest array is being built: cap untrusted input with max_size,
// or read it with scan_object(), which builds no DOM.
// Copying and destroying a value recurse once per nesting level, so their
// depth is bounded by the max_depth the value was parsed with.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace gateway::json {

namespace detail {
class parser;
}

enum class kind : std::uint8_t { null, boolean, number, string, array, object };

struct member;

// One JSON value. Accessors never fail: asking a value for a kind it is not
// gives a neutral answer (false, 0.0, empty view/span, nullopt, nullptr), so
// check the kind first where the difference matters.
class value {
 public:
  value() noexcept {}  // null, line 0
  value(const value& other);
  // A moved-from value is null.
  value(value&& other) noexcept { steal(other); }
  value& operator=(const value& other);
  value& operator=(value&& other) noexcept;
  ~value() {
    if (owns_memory()) release();
  }

  json::kind type() const noexcept { return kind_; }
  bool is_null() const noexcept { return kind_ == json::kind::null; }
  bool is_bool() const noexcept { return kind_ == json::kind::boolean; }
  bool is_number() const noexcept { return kind_ == json::kind::number; }
  bool is_string() const noexcept { return kind_ == json::kind::string; }
  bool is_array() const noexcept { return kind_ == json::kind::array; }
  bool is_object() const noexcept { return kind_ == json::kind::object; }

  // 1-based line of the value's first byte in the parsed text (0 for a
  // default-constructed value; saturates at 2^32-1).
  std::size_t line() const noexcept { return line_; }

  // false unless this is `true`.
  bool as_bool() const noexcept { return kind_ == json::kind::boolean && u_.boolean; }

  // Decoded UTF-8 contents of a string (may contain NUL bytes from \u0000);
  // empty for other kinds.
  std::string_view as_string() const noexcept;

  // Exact source text of a number ("1E+2", "-0.50"); empty for other kinds.
  std::string_view number_text() const noexcept;
  // Nearest double; +-inf or +-0.0 when out of range; 0.0 for non-numbers.
  double as_double() const noexcept;
  // The number when it is mathematically an integer in int64 range: "1e2",
  // "1.0" and "-0" give 100, 1 and 0; "1.5", "9223372036854775808" and
  // non-numbers give nullopt.
  std::optional<std::int64_t> as_int64() const noexcept;

  // Elements of an array / members of an object in source order (empty span
  // for other kinds). The spans stay valid as long as this value is unchanged.
  std::span<const value> items() const noexcept;
  std::span<const member> members() const noexcept;
  // Number of elements or members; 0 for scalars.
  std::size_t size() const noexcept;

  // First member named `key` (linear scan), or nullptr (also for non-objects).
  const value* find(std::string_view key) const noexcept;

 private:
  friend class detail::parser;

  struct heap_text {
    char* data;
    std::size_t size;
  };
  struct heap_items {
    value* data;
    std::size_t size;
  };
  struct heap_members {
    member* data;
    std::size_t size;
  };
  struct borrowed_text {
    const char* data;
    std::size_t size;
  };
  static constexpr std::size_t inline_capacity = 16;
  static constexpr std::uint8_t on_heap = 0xFF;
  static constexpr std::uint8_t borrowed = 0xFE;  // u_.view points into the parsed text

  std::string_view text() const noexcept;
  void set_text(json::kind k, std::string_view s);
  void borrow_text(json::kind k, std::string_view s);  // set_text without the copy when s is long
  bool owns_memory() const noexcept { return kind_ >= json::kind::array || small_size_ == on_heap; }
  void release() noexcept;
  void copy_from(const value& other);
  // Inline: std::vector<value> growth and the parser's scratch stacks move
  // values one by one.
  void steal(value& other) noexcept {
    u_ = other.u_;
    line_ = other.line_;
    kind_ = other.kind_;
    small_size_ = other.small_size_;
    other.kind_ = json::kind::null;
    other.small_size_ = 0;
  }

  union payload {
    bool boolean;
    char small[inline_capacity];  // string/number text of up to 16 bytes
    heap_text text;
    heap_items items;
    heap_members members;
    borrowed_text view;
  } u_{};
  std::uint32_t line_ = 0;
  json::kind kind_ = json::kind::null;
  std::uint8_t small_size_ = 0;  // inline text length, on_heap or borrowed
};

struct member {
  std::string key;           // decoded UTF-8
  std::size_t key_line = 0;  // 1-based line of the key's opening quote
  json::value value;
};

// The member of `object` named `key` (nullptr when there is none, or for a
// non-object), with `duplicate` set when the name occurs more than once.
// For a caller whose reading must agree with every other parser's: "first
// wins" and "last wins" readers disagree about a repeated member (RFC 8259
// section 4), so such a caller refuses the text instead of picking one.
const value* unique_member(const value& object, std::string_view key, bool& duplicate) noexcept;

struct parse_options {
  // Maximum nesting of arrays/objects: "[[1]]" has depth 2. Deeper input is
  // an error (never a stack overflow). 0 allows only scalars.
  std::size_t max_depth = 64;
  // Maximum input size in bytes; larger input is rejected before parsing.
  std::size_t max_size = std::numeric_limits<std::size_t>::max();
  // Strings without escapes and numbers longer than 16 bytes refer to the
  // parsed text instead of being copied: the result is valid only while that
  // text is (a copy of a value owns its text again). For a caller that keeps
  // the text anyway, e.g. validation reading a request body in place.
  bool borrow_text = false;
};

struct parse_error {
  std::size_t offset = 0;  // byte offset of the offending byte (text.size() at end of input)
  std::size_t line = 1;    // 1-based; lines end at LF
  std::size_t column = 1;  // 1-based, counted in code points from the line start
  std::string message;     // e.g. "expected ':' after object key"
};

// Either the parsed value or the first error. std::expected-like, without
// exceptions: value() on an error gives a null value, error() on a success
// gives an empty parse_error.
class parse_result {
 public:
  parse_result(json::value v) noexcept : data_(std::move(v)) {}
  parse_result(parse_error e) noexcept : data_(std::move(e)) {}

  explicit operator bool() const noexcept { return data_.index() == 0; }
  bool has_value() const noexcept { return data_.index() == 0; }

  const json::value& value() const& noexcept;
  json::value value() && noexcept;  // moves the value out: std::move(r).value()
  const parse_error& error() const noexcept;

 private:
  std::variant<json::value, parse_error> data_;
};

parse_result parse(std::string_view text, const parse_options& opts = {});

// Receives the members of a top-level object from scan_object(), one at a
// time, in source order.
class member_visitor {
 public:
  // Whether the member named `key` (decoded) is wanted. The value of one
  // that is not is only checked, and on_member() is not called for it.
  virtual bool wants(std::string_view key) = 0;
  // A wanted member, its value complete: a scalar as parse() would give it;
  // an array or object as an empty one of its kind (its contents are
  // checked, not kept). `m` is valid only during the call.
  virtual void on_member(const member& m) = 0;

 protected:
  ~member_visitor() = default;
};

// Reads `text` as parse() does (the same language, limits and errors), but
// the top-level value must be an object, which is refused at its first
// non-whitespace byte when it is not, and no DOM is built: each member of
// that object goes to `visitor` as soon as it is read. Those calls come
// before the rest of the text is checked: act on them only when the result
// is nullopt (the whole text is valid); otherwise it is the first error.
// Memory: the nesting stack (max_depth) and the member being read, whatever
// the size of the text, so a body can be checked without a tree that is a
// multiple of its size ("{"a":[1,1,1,...]}").
std::optional<parse_error> scan_object(std::string_view text, const parse_options& opts, member_visitor& visitor);

}  // namespace gateway::json
