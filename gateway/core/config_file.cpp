#include "gateway/core/config_file.hpp"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <memory>
#include <vector>

#include "gateway/core/units.hpp"
#include "gateway/json/reader.hpp"

namespace gateway::core {

namespace {

constexpr std::size_t max_file_size = 1024 * 1024;

struct file_error {
  std::string_view name;
  std::string& err;
  bool at(std::size_t line, const std::string& what) {
    err = std::string(name) + ":" + std::to_string(line) + ": " + what;
    return false;
  }
};

// The flag's textual form of a scalar: strings as they are, numbers by their
// source text, booleans as on/off where the flag takes on or off (anywhere
// else a boolean is refused: `"api_key": [true]` must not become the key
// "on").
bool scalar_text(const json::value& v, std::string_view flag, std::string& out) {
  if (v.is_string()) out = std::string(v.as_string());
  else if (v.is_number()) out = std::string(v.number_text());
  else if (v.is_bool() && takes_boolean(flag))
    out = v.as_bool() ? "on" : "off";
  else return false;
  return true;
}

// A route's prefix as add_route stores it (with its trailing '/').
std::string route_prefix(std::string_view prefix) {
  std::string p(prefix);
  if (!p.empty() && p.back() != '/') p.push_back('/');
  return p;
}

bool is_route_given(const config& out, std::string_view prefix) {
  const std::string p = route_prefix(prefix);
  for (const auto& r : out.routes)
    if (r.prefix == p) return true;
  return false;
}

bool read_bool(const json::member& m, bool& out, file_error& fail) {
  if (!m.value.is_bool()) return fail.at(m.value.line(), "'" + m.key + "': expected true or false");
  out = m.value.as_bool();
  return true;
}

bool read_duration(const json::member& m, std::optional<std::chrono::nanoseconds>& out, file_error& fail) {
  std::optional<std::chrono::nanoseconds> d;
  // A number is seconds, as for the top-level durations (which go through
  // their flags' parsers).
  if (m.value.is_string()) d = parse_duration(m.value.as_string());
  else if (m.value.is_number())
    d = parse_duration(m.value.number_text());
  if (!d || d->count() <= 0)
    return fail.at(m.value.line(), "'" + m.key + "': expected a duration like \"5s\" (a number: seconds)");
  out = d;
  return true;
}

bool read_length(const json::member& m, std::optional<std::size_t>& out, file_error& fail) {
  auto n = m.value.as_int64();
  if (!m.value.is_number() || !n || *n < 0) return fail.at(m.value.line(), "'" + m.key + "': expected a count");
  out = static_cast<std::size_t>(*n);
  return true;
}

bool read_rule(const json::value& v, const std::string& prefix, route_config& r, file_error& fail) {
  if (!v.is_object()) return fail.at(v.line(), "'validate': expected objects like {\"field\": \"name\", \"required\": true}");
  field_rule fr;
  std::string path = prefix;
  for (const auto& m : v.members()) {
    if (m.key == "field") {
      if (!m.value.is_string() || m.value.as_string().empty())
        return fail.at(m.value.line(), "'field': expected a field name");
      fr.field = std::string(m.value.as_string());
    } else if (m.key == "path") {
      std::string_view p = m.value.as_string();
      if (!m.value.is_string() || p.substr(0, prefix.size()) != prefix)
        return fail.at(m.value.line(), "'path': expected a path under " + prefix);
      if (std::string why = path_pattern_problem(p, "route"); !why.empty()) return fail.at(m.value.line(), "'path': " + why);
      path = std::string(p);
    } else if (m.key == "required") {
      if (!read_bool(m, fr.required, fail)) return false;
    } else if (m.key == "min_len") {
      if (!read_length(m, fr.min_len, fail)) return false;
    } else if (m.key == "max_len") {
      if (!read_length(m, fr.max_len, fail)) return false;
    } else {
      return fail.at(m.key_line, "unknown key '" + m.key + "' (in a validation rule)");
    }
  }
  if (fr.field.empty()) return fail.at(v.line(), "a validation rule needs a \"field\"");
  if (!fr.required && !fr.min_len && !fr.max_len)
    return fail.at(v.line(),
                   "a validation rule needs \"required\": true, \"min_len\" or \"max_len\" (it checks nothing)");
  if (fr.min_len && fr.max_len && *fr.min_len > *fr.max_len)
    return fail.at(v.line(), "'min_len' is larger than 'max_len': no value could pass");
  for (auto& rules : r.validation) {
    if (rules.route == path) {
      rules.fields.push_back(std::move(fr));
      return true;
    }
  }
  r.validation.push_back({std::move(path), {std::move(fr)}});
  return true;
}

// A list of strings, or (when `one_ok`) a single string taken as a list of one.
bool read_strings(const json::member& m, std::vector<std::string>& out, file_error& fail, bool one_ok = false) {
  out.clear();
  if (one_ok && m.value.is_string()) {
    out.emplace_back(m.value.as_string());
    return true;
  }
  if (!m.value.is_array()) return fail.at(m.value.line(), "'" + m.key + "': expected a list of strings");
  for (const auto& item : m.value.items()) {
    if (!item.is_string()) return fail.at(item.line(), "'" + m.key + "': expected a list of strings");
    out.emplace_back(item.as_string());
  }
  return true;
}

// {"set": {"Name": "value"}, "add": {"Name": "value" or ["v1", "v2"]},
//  "remove": ["Name"]}: the shape only; names and values are checked where
// they are compiled (middleware/header_rules.hpp).
bool read_header_edits(const json::member& m, header_edits& out, file_error& fail) {
  if (!m.value.is_object())
    return fail.at(m.value.line(), "'" + m.key + "': expected an object with \"set\", \"add\" and \"remove\"");
  for (const auto& part : m.value.members()) {
    const std::string where = "'" + m.key + "." + part.key + "'";
    if (part.key == "set" || part.key == "add") {
      if (!part.value.is_object())
        return fail.at(part.value.line(), where + ": expected an object of header names and values");
      auto& list = part.key == "set" ? out.set : out.add;
      for (const auto& f : part.value.members()) {
        if (f.value.is_string()) {
          list.emplace_back(f.key, std::string(f.value.as_string()));
        } else if (part.key == "add" && f.value.is_array()) {
          for (const auto& item : f.value.items()) {
            if (!item.is_string()) return fail.at(item.line(), where + " '" + f.key + "': expected strings");
            list.emplace_back(f.key, std::string(item.as_string()));
          }
        } else {
          return fail.at(f.value.line(), where + " '" + f.key + "': expected a string" +
                                             (part.key == "add" ? " or a list of strings" : ""));
        }
      }
    } else if (part.key == "remove") {
      if (!read_strings(part, out.remove, fail)) return false;
    } else {
      return fail.at(part.key_line, "unknown key '" + part.key + "' (in '" + m.key + "': set, add, remove)");
    }
  }
  return true;
}

// {"origins": [...] or "*", "methods": [...], "headers": [...],
//  "credentials": bool, "max_age": seconds or "10m", "expose_headers": [...]}
bool read_cors(const json::member& m, std::optional<cors_config>& out, file_error& fail) {
  if (!m.value.is_object()) return fail.at(m.value.line(), "'cors': expected an object with \"origins\"");
  cors_config c;
  bool has_origins = false;
  for (const auto& part : m.value.members()) {
    if (part.key == "origins") {
      if (!read_strings(part, c.origins, fail, true)) return false;
      has_origins = true;
    } else if (part.key == "methods") {
      if (!read_strings(part, c.methods, fail)) return false;
    } else if (part.key == "headers") {
      if (!read_strings(part, c.headers, fail, true)) return false;
    } else if (part.key == "expose_headers") {
      if (!read_strings(part, c.expose_headers, fail, true)) return false;
    } else if (part.key == "credentials") {
      if (!read_bool(part, c.credentials, fail)) return false;
    } else if (part.key == "max_age") {
      std::optional<std::chrono::nanoseconds> d;
      if (auto n = part.value.as_int64(); part.value.is_number() && n && *n >= 0) d = std::chrono::seconds(*n);
      else if (part.value.is_string()) d = parse_duration(part.value.as_string());
      if (!d || d->count() < 0 || *d > std::chrono::hours(24 * 365))
        return fail.at(part.value.line(), "'max_age': expected seconds or a duration like \"10m\" (at most a year)");
      c.max_age = std::chrono::duration_cast<std::chrono::seconds>(*d);
    } else {
      return fail.at(part.key_line, "unknown key '" + part.key +
                                        "' (in 'cors': origins, methods, headers, credentials, max_age, "
                                        "expose_headers)");
    }
  }
  if (!has_origins || c.origins.empty())
    return fail.at(m.value.line(), "'cors': needs \"origins\": a list of origins, or \"*\"");
  out = std::move(c);
  return true;
}

// A key given twice in one object, at any depth, is an error: which of
// the two was meant cannot be told (and a lookup would take the first one
// while a loop over the members applies both). Sorting the keys keeps a
// large object (up to the 1 MiB file limit) at n log n.
bool check_unique_keys(const json::value& v, file_error& fail) {
  if (v.is_array()) {
    for (const auto& item : v.items())
      if (!check_unique_keys(item, fail)) return false;
    return true;
  }
  if (!v.is_object()) return true;
  const auto members = v.members();
  std::vector<std::size_t> order(members.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return members[a].key < members[b].key; });
  const json::member* repeated = nullptr;  // the first repeat in the file
  for (std::size_t i = 1; i < order.size(); ++i) {
    if (members[order[i]].key != members[order[i - 1]].key) continue;
    if (repeated == nullptr || order[i] < static_cast<std::size_t>(repeated - members.data()))
      repeated = &members[order[i]];
  }
  if (repeated != nullptr) return fail.at(repeated->key_line, "'" + repeated->key + "' given twice");
  for (const auto& m : members)
    if (!check_unique_keys(m.value, fail)) return false;
  return true;
}

bool read_route(const json::value& v, config& out, file_error& fail) {
  if (!v.is_object()) return fail.at(v.line(), "'routes': expected objects with \"prefix\" and \"backend\"");
  // A misspelt key is named before anything it might have been meant as.
  static constexpr std::string_view keys[] = {"prefix", "backend", "strip_prefix", "auth", "rate_limit",
                                              "timeout", "connect_timeout", "validate", "request_headers",
                                              "response_headers", "host", "cors", "balance"};
  for (const auto& m : v.members())
    if (std::find(std::begin(keys), std::end(keys), m.key) == std::end(keys))
      return fail.at(m.key_line, "unknown key '" + m.key + "' (in a route)");
  const json::value* prefix = v.find("prefix");
  const json::value* backend = v.find("backend");
  if (prefix == nullptr || !prefix->is_string())
    return fail.at(prefix ? prefix->line() : v.line(), "a route needs \"prefix\": \"/path/\"");
  // "backend": one URL, a "URL,URL..." list, or a list of URLs (each may
  // end in ";weight=N").
  std::string backend_list;
  if (backend != nullptr && backend->is_array()) {
    for (const auto& item : backend->items()) {
      if (!item.is_string()) return fail.at(item.line(), "'backend': expected a list of URLs");
      if (!backend_list.empty()) backend_list += ',';
      backend_list += item.as_string();
    }
  } else if (backend != nullptr && backend->is_string()) {
    backend_list = std::string(backend->as_string());
  }
  if (backend_list.empty())
    return fail.at(backend ? backend->line() : v.line(),
                   "a route needs \"backend\": \"http://HOST:PORT\" (or a list of URLs)");
  std::string err;
  // Every file route is new: a second one with the same prefix is a mistake.
  if (is_route_given(out, prefix->as_string()))
    return fail.at(prefix->line(), "route '" + route_prefix(prefix->as_string()) + "' is given twice");
  if (!add_route(prefix->as_string(), backend_list, out.routes, err)) return fail.at(prefix->line(), err);
  route_config& r = out.routes.back();
  for (const auto& m : v.members()) {
    if (m.key == "prefix" || m.key == "backend") continue;
    if (m.key == "strip_prefix") {
      if (!read_bool(m, r.strip_prefix, fail)) return false;
    } else if (m.key == "auth") {
      if (!read_bool(m, r.auth, fail)) return false;
    } else if (m.key == "rate_limit") {
      if (!read_bool(m, r.rate_limit, fail)) return false;
    } else if (m.key == "timeout") {
      if (!read_duration(m, r.timeout, fail)) return false;
    } else if (m.key == "connect_timeout") {
      if (!read_duration(m, r.connect_timeout, fail)) return false;
    } else if (m.key == "request_headers") {
      if (!read_header_edits(m, r.request_headers, fail)) return false;
    } else if (m.key == "response_headers") {
      if (!read_header_edits(m, r.response_headers, fail)) return false;
    } else if (m.key == "host") {
      if (!m.value.is_string() || (m.value.as_string() != "client" && m.value.as_string() != "upstream"))
        return fail.at(m.value.line(), "'host': expected \"client\" (the client's Host, the default) or \"upstream\" "
                                       "(the backend's authority)");
      r.upstream_host = m.value.as_string() == "upstream";
    } else if (m.key == "balance") {
      if (!m.value.is_string() || (m.value.as_string() != "round_robin" && m.value.as_string() != "least_request"))
        return fail.at(m.value.line(), "'balance': expected \"round_robin\" or \"least_request\"");
      r.balance = std::string(m.value.as_string());
    } else if (m.key == "cors") {
      if (!read_cors(m, r.cors, fail)) return false;
    } else if (m.key == "validate") {
      if (!m.value.is_array()) return fail.at(m.value.line(), "'validate': expected a list of rules");
      for (const auto& rule : m.value.items())
        if (!read_rule(rule, r.prefix, r, fail)) return false;
    } else {
      return fail.at(m.key_line, "unknown key '" + m.key + "' (in a route)");
    }
  }
  return true;
}

}  // namespace

bool apply_config_text(std::string_view text, std::string_view name, config& out, std::string& err) {
  file_error fail{name, err};
  json::parse_options opts;
  opts.max_depth = 16;
  opts.max_size = max_file_size;
  auto parsed = json::parse(text, opts);
  if (!parsed) {
    const auto& e = parsed.error();
    err = std::string(name) + ":" + std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message;
    return false;
  }
  const json::value& doc = parsed.value();
  if (!doc.is_object()) return fail.at(doc.line(), "expected a JSON object of settings");
  if (!check_unique_keys(doc, fail)) return false;
  for (const auto& m : doc.members()) {
    if (m.key == "routes") {
      if (!m.value.is_array()) return fail.at(m.value.line(), "'routes': expected a list of route objects");
      for (const auto& r : m.value.items())
        if (!read_route(r, out, fail)) return false;
      continue;
    }
    std::string flag = "--";
    for (char ch : m.key) flag.push_back(ch == '_' ? '-' : ch);
    const bool dashed = m.key.find('-') != std::string::npos;
    std::string why;
    std::string text_value;
    apply_result res = apply_result::unknown;
    if (m.key == "config" || m.key == "check_config" || m.key == "help" || m.key == "version" || dashed) {
      res = apply_result::unknown;
    } else if (m.value.is_array() && is_repeatable_flag(flag)) {
      for (const auto& item : m.value.items()) {
        if (!scalar_text(item, flag, text_value))
          return fail.at(item.line(), "'" + m.key + "': expected a list of strings");
        // As for "routes": a prefix given twice in the file is a mistake, not a
        // replacement (a --route flag replaces a route of the file; see add_route).
        if (const auto prefix = std::string_view(text_value).substr(0, text_value.find('='));
            flag == "--route" && is_route_given(out, prefix))
          return fail.at(item.line(), "route '" + route_prefix(prefix) + "' is given twice");
        res = apply_setting(flag, text_value, out, why);
        if (res == apply_result::bad_value)
          return fail.at(item.line(), "'" + m.key + "': invalid value '" + text_value + "': " + why);
        if (res != apply_result::ok) break;
      }
      if (m.value.items().empty()) res = is_setting(flag) ? apply_result::ok : apply_result::unknown;
    } else if (scalar_text(m.value, flag, text_value)) {
      res = apply_setting(flag, text_value, out, why);
      if (res == apply_result::bad_value)
        return fail.at(m.value.line(), "'" + m.key + "': invalid value '" + text_value + "': " + why);
    } else {
      // Objects, null, or a list for a single-valued setting.
      if (!is_setting(flag)) res = apply_result::unknown;
      else if (m.value.is_bool())
        return fail.at(m.value.line(), "'" + m.key + "': true and false are only for on/off settings");
      else return fail.at(m.value.line(), "'" + m.key + "': expected a string, number or boolean");
    }
    if (res == apply_result::unknown) {
      std::string msg = "unknown key '" + m.key + "'";
      if (dashed) msg += " (config keys use '_' where flags use '-')";
      return fail.at(m.key_line, msg);
    }
  }
  return true;
}

bool load_config_file(const std::string& path, config& out, std::string& err) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) {
    err = path + ": cannot open the config file";
    return false;
  }
  std::string text;
  char buf[16384];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) {
    text.append(buf, n);
    if (text.size() > max_file_size) {
      err = path + ": the config file is larger than 1 MiB";
      return false;
    }
  }
  if (std::ferror(f.get())) {
    err = path + ": cannot read the config file";
    return false;
  }
  return apply_config_text(text, path, out, err);
}

}  // namespace gateway::core
