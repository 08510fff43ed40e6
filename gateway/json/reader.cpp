#include "gateway/json/reader.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "gateway/core/utf8.hpp"

namespace gateway::json {

namespace {

// Bytes the string scanner must stop at: the closing quote, an escape, a
// control character (RFC 8259 section 7 requires them escaped) and non-ASCII
// bytes (which need UTF-8 validation). Everything else is copied in bulk.
constexpr std::array<bool, 256> string_stops = [] {
  std::array<bool, 256> t{};
  for (std::size_t c = 0; c < 256; ++c) t[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
  return t;
}();

// Skips bytes that need no attention in a string, 8 at a time (the SWAR
// "has zero byte" idiom): a word is skipped only when none of its bytes is
// '"', '\\', below 0x20 or above 0x7F. Returns where the byte loop resumes.
const unsigned char* skip_plain(const unsigned char* p, const unsigned char* end) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  while (end - p >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    const std::uint64_t quote = w ^ (ones * '"');
    const std::uint64_t slash = w ^ (ones * '\\');
    const std::uint64_t special = ((quote - ones) & ~quote) | ((slash - ones) & ~slash) | (w - ones * 0x20) | w;
    if (special & highs) break;
    p += 8;
  }
  return p;
}

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The four hex digits at p (caller checked that 4 bytes exist), or -1.
long hex4(const char* p) noexcept {
  long v = 0;
  for (int i = 0; i < 4; ++i) {
    const int d = hex_digit(p[i]);
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  char buf[4];
  std::size_t n;
  if (cp < 0x80) {
    buf[0] = static_cast<char>(cp);
    n = 1;
  } else if (cp < 0x800) {
    buf[0] = static_cast<char>(0xC0 | (cp >> 6));
    buf[1] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    buf[0] = static_cast<char>(0xE0 | (cp >> 12));
    buf[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    buf[2] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    buf[0] = static_cast<char>(0xF0 | (cp >> 18));
    buf[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 4;
  }
  out.append(buf, n);
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// A number's source text split per RFC 8259 section 6 (already validated):
// value = sign * digits(int_part frac_part) * 10^(exponent - frac_part.size()).
struct decimal_parts {
  bool negative = false;
  std::string_view int_part;
  std::string_view frac_part;
  long long exponent = 0;  // saturated at +-exponent_limit
};

// Far beyond any double or int64, small enough that adding digit counts of a
// text that fits in memory cannot overflow a long long.
constexpr long long exponent_limit = 1'000'000'000'000LL;

decimal_parts split_number(std::string_view t) noexcept {
  decimal_parts d;
  std::size_t i = 0;
  if (i < t.size() && t[i] == '-') {
    d.negative = true;
    ++i;
  }
  std::size_t start = i;
  while (i < t.size() && is_digit(t[i])) ++i;
  d.int_part = t.substr(start, i - start);
  if (i < t.size() && t[i] == '.') {
    start = ++i;
    while (i < t.size() && is_digit(t[i])) ++i;
    d.frac_part = t.substr(start, i - start);
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool neg_exp = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) neg_exp = t[i++] == '-';
    long long e = 0;
    for (; i < t.size() && is_digit(t[i]); ++i) e = std::min(exponent_limit, e * 10 + (t[i] - '0'));
    d.exponent = neg_exp ? -e : e;
  }
  return d;
}

// The significant digits of a decimal: value = digits[first..last] * 10^scale.
struct significand {
  bool zero = true;
  std::size_t count = 0;  // number of digits from the first to the last non-zero one
  long long scale = 0;    // power of ten applied to the last non-zero digit
};

significand significant_digits(const decimal_parts& d) noexcept {
  const std::size_t n = d.int_part.size() + d.frac_part.size();
  auto digit = [&](std::size_t k) {
    return k < d.int_part.size() ? d.int_part[k] : d.frac_part[k - d.int_part.size()];
  };
  significand s;
  std::size_t first = 0;
  while (first < n && digit(first) == '0') ++first;
  if (first == n) return s;
  std::size_t last = n - 1;
  while (digit(last) == '0') --last;
  s.zero = false;
  s.count = last - first + 1;
  s.scale = d.exponent - static_cast<long long>(d.frac_part.size()) + static_cast<long long>(n - 1 - last);
  return s;
}

std::optional<std::int64_t> exact_int64(std::string_view text) noexcept {
  const decimal_parts d = split_number(text);
  const significand s = significant_digits(d);
  if (s.zero) return 0;  // "-0", "0.0", "0e999" are all exactly zero
  if (s.scale < 0) return std::nullopt;  // the last non-zero digit is after the point
  // int64 has at most 19 decimal digits; 19 digits always fit in a uint64.
  if (static_cast<long long>(s.count) + s.scale > 19) return std::nullopt;
  const std::size_t n = d.int_part.size() + d.frac_part.size();
  std::uint64_t acc = 0;
  std::size_t taken = 0;
  for (std::size_t k = 0; k < n && taken < s.count; ++k) {
    const char c = k < d.int_part.size() ? d.int_part[k] : d.frac_part[k - d.int_part.size()];
    if (acc == 0 && c == '0') continue;  // leading zeros (also "0.000123e10")
    acc = acc * 10 + static_cast<std::uint64_t>(c - '0');
    ++taken;
  }
  for (long long k = 0; k < s.scale; ++k) acc *= 10;
  constexpr std::uint64_t int64_max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (d.negative) {
    if (acc > int64_max + 1) return std::nullopt;
    // -(2^63) is representable; negate in unsigned arithmetic to avoid overflow.
    return static_cast<std::int64_t>(~acc + 1);
  }
  if (acc > int64_max) return std::nullopt;
  return static_cast<std::int64_t>(acc);
}

double to_double(std::string_view text) noexcept {
  double v = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec == std::errc{}) return v;
  // Out of range: decide between overflow and underflow from the position of
  // the leading digit (the text is valid, so this is the only failure).
  const decimal_parts d = split_number(text);
  const significand s = significant_digits(d);
  if (s.zero) return d.negative ? -0.0 : 0.0;
  const long long magnitude = s.scale + static_cast<long long>(s.count) - 1;
  const double r0 = magnitude > 0 ? HUGE_VAL : 0.0;
  return d.negative ? -r0 : r0;
}

std::uint32_t saturate_line(std::size_t line) noexcept {
  return static_cast<std::uint32_t>(std::min<std::size_t>(line, std::numeric_limits<std::uint32_t>::max()));
}

}  // namespace

// ---------------------------------------------------------------------------
// value

// The sizes the header promises (they set the DOM's memory per input byte).
static_assert(sizeof(void*) != 8 || sizeof(value) == 24);
static_assert(sizeof(void*) != 8 || sizeof(member) == 64);

value::value(const value& other) { copy_from(other); }

value& value::operator=(const value& other) {
  if (this != &other) {
    value tmp(other);  // copy first: `other` may live inside *this
    release();
    steal(tmp);
  }
  return *this;
}

value& value::operator=(value&& other) noexcept {
  if (this != &other) {
    value tmp(std::move(other));  // `other` may live inside *this
    release();
    steal(tmp);
  }
  return *this;
}

void value::release() noexcept {
  switch (kind_) {
    case json::kind::number:
    case json::kind::string:
      if (small_size_ == on_heap) std::allocator<char>().deallocate(u_.text.data, u_.text.size);
      break;
    case json::kind::array:
      if (u_.items.data) {
        std::destroy_n(u_.items.data, u_.items.size);
        std::allocator<value>().deallocate(u_.items.data, u_.items.size);
      }
      break;
    case json::kind::object:
      if (u_.members.data) {
        std::destroy_n(u_.members.data, u_.members.size);
        std::allocator<member>().deallocate(u_.members.data, u_.members.size);
      }
      break;
    case json::kind::null:
    case json::kind::boolean:
      break;
  }
  kind_ = json::kind::null;
  small_size_ = 0;
}

void value::copy_from(const value& other) {
  line_ = other.line_;
  switch (other.kind_) {
    case json::kind::null:
      break;
    case json::kind::boolean:
      u_.boolean = other.u_.boolean;
      kind_ = json::kind::boolean;
      break;
    case json::kind::number:
    case json::kind::string:
      set_text(other.kind_, other.text());
      break;
    case json::kind::array: {
      const std::size_t n = other.u_.items.size;
      value* p = n ? std::allocator<value>().allocate(n) : nullptr;
      try {
        std::uninitialized_copy_n(other.u_.items.data, n, p);
      } catch (...) {  // only std::bad_alloc; the copied elements are already destroyed
        if (p) std::allocator<value>().deallocate(p, n);
        throw;
      }
      u_.items = {p, n};
      kind_ = json::kind::array;
      break;
    }
    case json::kind::object: {
      const std::size_t n = other.u_.members.size;
      member* p = n ? std::allocator<member>().allocate(n) : nullptr;
      try {
        std::uninitialized_copy_n(other.u_.members.data, n, p);
      } catch (...) {
        if (p) std::allocator<member>().deallocate(p, n);
        throw;
      }
      u_.members = {p, n};
      kind_ = json::kind::object;
      break;
    }
  }
}

void value::set_text(json::kind k, std::string_view s) {
  if (s.size() <= inline_capacity) {
    if (!s.empty()) std::memcpy(u_.small, s.data(), s.size());
    small_size_ = static_cast<std::uint8_t>(s.size());
  } else {
    char* p = std::allocator<char>().allocate(s.size());
    std::memcpy(p, s.data(), s.size());
    u_.text = {p, s.size()};
    small_size_ = on_heap;
  }
  kind_ = k;
}

void value::borrow_text(json::kind k, std::string_view s) {
  if (s.size() <= inline_capacity) {
    set_text(k, s);
    return;
  }
  u_.view = {s.data(), s.size()};
  small_size_ = borrowed;
  kind_ = k;
}

std::string_view value::text() const noexcept {
  if (small_size_ == on_heap) return {u_.text.data, u_.text.size};
  if (small_size_ == borrowed) return {u_.view.data, u_.view.size};
  return {u_.small, small_size_};
}

std::string_view value::as_string() const noexcept {
  return kind_ == json::kind::string ? text() : std::string_view{};
}

std::string_view value::number_text() const noexcept {
  return kind_ == json::kind::number ? text() : std::string_view{};
}

double value::as_double() const noexcept {
  return kind_ == json::kind::number ? to_double(text()) : 0.0;
}

std::optional<std::int64_t> value::as_int64() const noexcept {
  if (kind_ != json::kind::number) return std::nullopt;
  return exact_int64(text());
}

std::span<const value> value::items() const noexcept {
  if (kind_ != json::kind::array) return {};
  return {u_.items.data, u_.items.size};
}

std::span<const member> value::members() const noexcept {
  if (kind_ != json::kind::object) return {};
  return {u_.members.data, u_.members.size};
}

std::size_t value::size() const noexcept {
  if (kind_ == json::kind::array) return u_.items.size;
  if (kind_ == json::kind::object) return u_.members.size;
  return 0;
}

const value* value::find(std::string_view key) const noexcept {
  for (const member& m : members()) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

const value* unique_member(const value& object, std::string_view key, bool& duplicate) noexcept {
  const value* found = nullptr;
  for (const member& m : object.members()) {
    if (m.key != key) continue;
    if (found != nullptr) duplicate = true;
    found = &m.value;
  }
  return found;
}

// ---------------------------------------------------------------------------
// parse_result

namespace {
const value null_value{};
const parse_error no_error{};
}  // namespace

const value& parse_result::value() const& noexcept {
  const auto* v = std::get_if<json::value>(&data_);
  return v ? *v : null_value;
}

value parse_result::value() && noexcept {
  auto* v = std::get_if<json::value>(&data_);
  return v ? std::move(*v) : json::value{};
}

const parse_error& parse_result::error() const noexcept {
  const auto* e = std::get_if<parse_error>(&data_);
  return e ? *e : no_error;
}

// ---------------------------------------------------------------------------
// parser
//
// A pushdown automaton over the grammar of RFC 8259 sections 2-7. Instead of
// recursing, it keeps one frame per open array/object. Values being built
// live in two scratch stacks (array elements, object members); a frame
// remembers where its children start. Closing a container moves its children
// into one exact-size allocation, so the scratch is reused across the whole
// parse and a container costs one allocation however it grew.

namespace detail {

class parser {
 public:
  // With a visitor: scan_object() (the top-level value must be an object,
  // its members go to the visitor one by one, nothing below them is kept).
  parser(std::string_view text, const parse_options& opts, member_visitor* visitor = nullptr) noexcept
      : begin_(text.data()),
        p_(text.data()),
        end_(text.data() + text.size()),
        line_start_(text.data()),
        opts_(opts),
        visitor_(visitor) {}

  parse_result run();

 private:
  struct frame {
    bool is_object;
    bool kept;  // its children are built (always, unless scanning)
    std::uint32_t line;
    std::size_t first;  // index of the first child in its scratch stack
  };

  // RFC 8259 section 2: ws = *( %x20 / %x09 / %x0A / %x0D ). Lines are
  // counted here: a newline can occur nowhere else in valid JSON.
  void skip_ws() noexcept {
    while (p_ != end_) {
      const char c = *p_;
      if (c == ' ' || c == '\t' || c == '\r') {
        ++p_;
      } else if (c == '\n') {
        ++p_;
        ++line_;
        line_start_ = p_;
      } else {
        break;
      }
    }
  }

  bool fail(const char* at, std::string message) {
    parse_error e;
    e.offset = static_cast<std::size_t>(at - begin_);
    e.line = line_;
    e.column = core::utf8_length(std::string_view(line_start_, static_cast<std::size_t>(at - line_start_))) + 1;
    e.message = std::move(message);
    error_ = std::move(e);
    return false;
  }

  // Where the value being parsed goes: the newest slot of the innermost
  // container, or the root; null when it is only checked (scanning: below
  // a top-level member, or in a member the visitor does not want).
  value* target() noexcept {
    if (frames_.empty()) return &root_;
    const frame& f = frames_.back();
    if (!f.kept || (visitor_ != nullptr && frames_.size() == 1 && !member_wanted_)) return nullptr;
    return f.is_object ? &members_.back().value : &items_.back();
  }

  // Scanning: a top-level member's value is complete; hand the member to
  // the visitor if it wants it, and drop it.
  void member_done() {
    if (member_wanted_) visitor_->on_member(members_.back());
    members_.pop_back();
  }

  bool parse_value();
  bool parse_string_into(std::string_view& raw, std::string* decoded, bool& escaped);
  bool parse_string_value(value* v);
  bool parse_key();
  bool parse_number(value* v);
  bool parse_literal(value* v);
  bool open_container(bool is_object);
  void close_container();
  bool fail_unexpected();

  const char* const begin_;
  const char* p_;
  const char* const end_;
  std::size_t line_ = 1;
  const char* line_start_;
  const parse_options& opts_;
  member_visitor* const visitor_;
  bool member_wanted_ = false;  // scanning: the visitor wants the current top-level member

  value root_;
  std::vector<frame> frames_;
  std::vector<value> items_;
  std::vector<member> members_;
  std::string decoded_;  // reused buffer for strings with escapes
  parse_error error_;
};

parse_result parser::run() {
  if (static_cast<std::size_t>(end_ - begin_) > opts_.max_size) {
    fail(begin_, "input is larger than max_size (" + std::to_string(opts_.max_size) + " bytes)");
    return std::move(error_);
  }
  skip_ws();
  if (visitor_ != nullptr && (p_ == end_ || *p_ != '{')) {
    // Refused before anything is read: a scan is for an object's members.
    fail(p_, "expected an object ('{') as the top-level value");
    return std::move(error_);
  }
  for (;;) {
    // Parse one value into target(); open_container() leaves a new slot
    // ready instead, and the loop goes round for its first child.
    if (p_ == end_) {
      fail(p_, "unexpected end of input, expected a value");
      return std::move(error_);
    }
    if (*p_ == '{' || *p_ == '[') {
      bool child_pending = false;
      const bool is_object = *p_ == '{';
      if (!open_container(is_object)) return std::move(error_);
      skip_ws();
      if (p_ != end_ && *p_ == (is_object ? '}' : ']')) {
        ++p_;
        close_container();
      } else if (is_object) {
        if (!parse_key()) return std::move(error_);
        child_pending = true;
      } else {
        if (frames_.back().kept) items_.emplace_back();
        child_pending = true;
      }
      if (child_pending) continue;
    } else if (!parse_value()) {
      return std::move(error_);
    }

    // A value is complete. Consume separators and closing brackets until
    // the next value starts or the top-level value is done.
    for (;;) {
      if (visitor_ != nullptr && frames_.size() == 1) member_done();
      skip_ws();
      if (frames_.empty()) {
        if (p_ != end_) {
          fail(p_, "unexpected data after the top-level value");
          return std::move(error_);
        }
        return std::move(root_);
      }
      const bool is_object = frames_.back().is_object;
      const char close = is_object ? '}' : ']';
      if (p_ == end_) {
        fail(p_, is_object ? "unexpected end of input, expected ',' or '}'"
                           : "unexpected end of input, expected ',' or ']'");
        return std::move(error_);
      }
      if (*p_ == close) {
        ++p_;
        close_container();
        continue;
      }
      if (*p_ != ',') {
        fail(p_, is_object ? "expected ',' or '}' after object member"
                           : "expected ',' or ']' after array element");
        return std::move(error_);
      }
      ++p_;
      skip_ws();
      if (p_ != end_ && (*p_ == ']' || *p_ == '}')) {
        fail(p_, std::string("trailing comma before '") + *p_ + "'");
        return std::move(error_);
      }
      if (is_object) {
        if (!parse_key()) return std::move(error_);
      } else if (frames_.back().kept) {
        items_.emplace_back();
      }
      break;
    }
  }
}

bool parser::open_container(bool is_object) {
  if (frames_.size() >= opts_.max_depth) {
    return fail(p_, "nesting deeper than max_depth (" + std::to_string(opts_.max_depth) + ")");
  }
  // Scanning keeps only the top-level object's frame: what is below its
  // members is checked, not built.
  const bool kept = visitor_ == nullptr || frames_.empty();
  frames_.push_back({is_object, kept, saturate_line(line_), is_object ? members_.size() : items_.size()});
  ++p_;
  return true;
}

void parser::close_container() {
  const frame f = frames_.back();
  frames_.pop_back();
  value v;
  v.line_ = f.line;
  if (!f.kept) {
    // Checked, not built: a container of its kind with no children.
    v.kind_ = f.is_object ? json::kind::object : json::kind::array;
    v.u_.members = {nullptr, 0};
  } else if (f.is_object) {
    const std::size_t n = members_.size() - f.first;
    v.kind_ = json::kind::object;
    v.u_.members = {nullptr, 0};  // u_{} zeroes only the union's first member
    if (n) {
      member* p = std::allocator<member>().allocate(n);
      // member's move constructor is noexcept: nothing to roll back.
      std::uninitialized_move(members_.begin() + static_cast<std::ptrdiff_t>(f.first), members_.end(), p);
      v.u_.members = {p, n};
    }
    members_.erase(members_.begin() + static_cast<std::ptrdiff_t>(f.first), members_.end());
  } else {
    const std::size_t n = items_.size() - f.first;
    v.kind_ = json::kind::array;
    v.u_.items = {nullptr, 0};
    if (n) {
      value* p = std::allocator<value>().allocate(n);
      std::uninitialized_move(items_.begin() + static_cast<std::ptrdiff_t>(f.first), items_.end(), p);
      v.u_.items = {p, n};
    }
    items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(f.first), items_.end());
  }
  if (value* t = target()) *t = std::move(v);
}

bool parser::parse_value() {
  value* v = target();
  switch (*p_) {
    case '"':
      return parse_string_value(v);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
      return parse_number(v);
    case 't':
    case 'f':
    case 'n':
      return parse_literal(v);
    default:
      return fail_unexpected();
  }
}

bool parser::fail_unexpected() {
  const char c = *p_;
  switch (c) {
    case '/':
      return fail(p_, "comments are not allowed in JSON");
    case '\'':
      return fail(p_, "single-quoted strings are not allowed, use '\"'");
    case 'N':
    case 'I':
      return fail(p_, "NaN and Infinity are not allowed in JSON");
    case '+':
      return fail(p_, "a number must not start with '+'");
    case '.':
      return fail(p_, "a number must start with a digit");
    case ',':
    case ':':
    case ']':
    case '}':
      return fail(p_, std::string("unexpected '") + c + "', expected a value");
    default:
      break;
  }
  const auto b = static_cast<unsigned char>(c);
  if (b > 0x20 && b < 0x7F) return fail(p_, std::string("unexpected character '") + c + "', expected a value");
  static constexpr char hex[] = "0123456789ABCDEF";
  if (b == 0xEF && end_ - p_ >= 3 && static_cast<unsigned char>(p_[1]) == 0xBB &&
      static_cast<unsigned char>(p_[2]) == 0xBF) {
    return fail(p_, "a byte order mark is not allowed (RFC 8259 section 8.1)");
  }
  return fail(p_, std::string("unexpected byte 0x") + hex[b >> 4] + hex[b & 0xF] + ", expected a value");
}

// RFC 8259 section 7. On success p_ is past the closing quote and either
// `raw` is the undecoded contents (no escapes: the common case, no copy) or
// `escaped` is set and `decoded` holds the decoded contents. A null
// `decoded`: the string is only checked (its escapes too), `raw` not set.
bool parser::parse_string_into(std::string_view& raw, std::string* decoded, bool& escaped) {
  const auto* p = reinterpret_cast<const unsigned char*>(p_) + 1;
  const auto* end = reinterpret_cast<const unsigned char*>(end_);
  const auto* run = p;
  escaped = false;
  auto at = [](const unsigned char* q) { return reinterpret_cast<const char*>(q); };
  for (;;) {
    p = skip_plain(p, end);
    while (p != end && !string_stops[*p]) ++p;
    if (p == end) return fail(end_, "unterminated string");
    const unsigned char c = *p;
    if (c == '"') {
      if (escaped) {
        if (decoded) decoded->append(at(run), static_cast<std::size_t>(p - run));
      } else {
        raw = std::string_view(at(run), static_cast<std::size_t>(p - run));
      }
      p_ = at(p + 1);
      return true;
    }
    if (c >= 0x80) {
      const std::size_t n = core::utf8_sequence_length(p, end);
      if (n == 0) return fail(at(p), "invalid UTF-8 in string");
      p += n;
      continue;
    }
    if (c < 0x20) {
      return fail(at(p), c == '\n' ? "unterminated string (line break inside a string must be escaped as \\n)"
                                   : "control character in string must be escaped");
    }
    // A backslash: flush the plain run, then decode the escape.
    if (!escaped) {
      escaped = true;
      if (decoded) decoded->clear();
    }
    if (decoded) decoded->append(at(run), static_cast<std::size_t>(p - run));
    if (end - p < 2) return fail(end_, "unterminated string");
    char simple = 0;  // the byte a one-character escape stands for
    switch (p[1]) {
      case '"': simple = '"'; break;
      case '\\': simple = '\\'; break;
      case '/': simple = '/'; break;
      case 'b': simple = '\b'; break;
      case 'f': simple = '\f'; break;
      case 'n': simple = '\n'; break;
      case 'r': simple = '\r'; break;
      case 't': simple = '\t'; break;
      case 'u': {
        const long hi = end - p >= 6 ? hex4(at(p + 2)) : -1;
        if (hi < 0) return fail(at(p), "invalid \\u escape, expected four hex digits");
        auto cp = static_cast<std::uint32_t>(hi);
        if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(at(p), "lone low surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          // RFC 8259 section 7: a character outside the BMP is a UTF-16
          // surrogate pair of two escapes. A lone one is rejected (see header).
          const long lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(at(p + 8)) : -1;
          if (lo < 0xDC00 || lo > 0xDFFF) return fail(at(p), "lone high surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<std::uint32_t>(lo) - 0xDC00);
          p += 6;
        }
        if (decoded) append_utf8(*decoded, cp);
        p += 4;
        break;
      }
      default: {
        const auto e = static_cast<unsigned char>(p[1]);
        if (e > 0x20 && e < 0x7F) {
          return fail(at(p), std::string("invalid escape '\\") + static_cast<char>(e) + "' in string");
        }
        return fail(at(p), "invalid escape in string");
      }
    }
    if (simple != 0 && decoded) decoded->push_back(simple);
    p += 2;
    run = p;
  }
}

bool parser::parse_string_value(value* v) {
  const std::uint32_t line = saturate_line(line_);
  std::string_view raw;
  bool escaped = false;
  if (!parse_string_into(raw, v ? &decoded_ : nullptr, escaped)) return false;
  if (v == nullptr) return true;
  if (escaped) v->set_text(json::kind::string, decoded_);
  else if (opts_.borrow_text) v->borrow_text(json::kind::string, raw);
  else v->set_text(json::kind::string, raw);
  v->line_ = line;
  return true;
}

// member = string name-separator value (RFC 8259 section 4). Pushes the
// member's slot, key filled in, and leaves p_ at the start of its value.
bool parser::parse_key() {
  if (p_ == end_) return fail(p_, "unexpected end of input, expected an object key");
  if (*p_ != '"') {
    return fail(p_, *p_ == '\'' ? "single-quoted strings are not allowed, use '\"'"
                                : "expected '\"' to start an object key");
  }
  const std::size_t key_line = line_;
  std::string_view raw;
  bool escaped = false;
  const bool kept = frames_.back().kept;
  if (!parse_string_into(raw, kept ? &decoded_ : nullptr, escaped)) return false;
  skip_ws();
  if (p_ == end_ || *p_ != ':') return fail(p_, "expected ':' after object key");
  ++p_;
  skip_ws();
  if (!kept) return true;
  const std::string_view key = escaped ? std::string_view(decoded_) : raw;
  if (visitor_ != nullptr) member_wanted_ = visitor_->wants(key);
  member& m = members_.emplace_back();
  m.key.assign(key);
  m.key_line = key_line;
  return true;
}

// number = [ minus ] int [ frac ] [ exp ] (RFC 8259 section 6).
bool parser::parse_number(value* v) {
  const char* start = p_;
  const char* p = p_;
  if (*p == '-') {
    ++p;
    if (p == end_ || !is_digit(*p)) return fail(p, "expected a digit after '-'");
  }
  if (*p == '0') {
    ++p;
    if (p != end_ && is_digit(*p)) return fail(start, "leading zeros are not allowed in numbers");
  } else {
    while (p != end_ && is_digit(*p)) ++p;
  }
  if (p != end_ && *p == '.') {
    ++p;
    if (p == end_ || !is_digit(*p)) return fail(p, "expected a digit after the decimal point");
    while (p != end_ && is_digit(*p)) ++p;
  }
  if (p != end_ && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p != end_ && (*p == '+' || *p == '-')) ++p;
    if (p == end_ || !is_digit(*p)) return fail(p, "expected a digit in the exponent");
    while (p != end_ && is_digit(*p)) ++p;
  }
  const std::string_view number(start, static_cast<std::size_t>(p - start));
  p_ = p;
  if (v == nullptr) return true;
  if (opts_.borrow_text) v->borrow_text(json::kind::number, number);
  else v->set_text(json::kind::number, number);
  v->line_ = saturate_line(line_);
  return true;
}

bool parser::parse_literal(value* v) {
  const std::size_t avail = static_cast<std::size_t>(end_ - p_);
  auto matches = [&](std::string_view word) {
    return avail >= word.size() && std::memcmp(p_, word.data(), word.size()) == 0;
  };
  const std::uint32_t line = saturate_line(line_);
  if (*p_ == 't') {
    if (!matches("true")) return fail(p_, "invalid literal, expected 'true'");
    p_ += 4;
    if (v) {
      v->kind_ = json::kind::boolean;
      v->u_.boolean = true;
    }
  } else if (*p_ == 'f') {
    if (!matches("false")) return fail(p_, "invalid literal, expected 'false'");
    p_ += 5;
    if (v) {
      v->kind_ = json::kind::boolean;
      v->u_.boolean = false;
    }
  } else {
    if (!matches("null")) return fail(p_, "invalid literal, expected 'null'");
    p_ += 4;
  }
  if (v) v->line_ = line;
  return true;
}

}  // namespace detail

parse_result parse(std::string_view text, const parse_options& opts) {
  return detail::parser(text, opts).run();
}

std::optional<parse_error> scan_object(std::string_view text, const parse_options& opts, member_visitor& visitor) {
  parse_result r = detail::parser(text, opts, &visitor).run();
  if (r) return std::nullopt;
  return r.error();
}

}  // namespace gateway::json
