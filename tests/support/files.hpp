#pragma once
// Files for tests and the perf_gate command: a temporary directory that
// removes itself, programs found on PATH, and the descriptor limit.
#include <cstdint>
#include <string>
#include <string_view>

namespace gateway::test {

// A fresh directory under $TMPDIR (else /tmp), removed with its files on
// destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const noexcept { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// The executable `name` in a directory of $PATH or of /usr/sbin, /sbin,
// /usr/bin, /bin (Debian puts haproxy and nginx in sbin); empty when there
// is none.
std::string find_program(std::string_view name);

// Raises this process's soft RLIMIT_NOFILE to `want`, or to the hard limit
// when that is lower (the default: as high as it goes); returns the soft
// limit now in force, which the caller checks against what it needs.
std::uint64_t raise_descriptor_limit(std::uint64_t want = UINT64_MAX);

}  // namespace gateway::test
