#pragma once
// Keeping a test's client thread on one CPU: on loopback the kernel handles
// a SYN on the sender's CPU, which is what the listener group's steering
// (net/accept_steering.hpp) looks at.
#include <pthread.h>
#include <sched.h>

#include <vector>

namespace gateway::test {

// The CPUs the calling thread may run on.
inline std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

// Keeps the calling thread on one CPU while it lives.
class pinned {
 public:
  explicit pinned(int cpu) {
    CPU_ZERO(&old_);
    pthread_getaffinity_np(pthread_self(), sizeof old_, &old_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ok_ = pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
  }
  ~pinned() { pthread_setaffinity_np(pthread_self(), sizeof old_, &old_); }
  pinned(const pinned&) = delete;
  pinned& operator=(const pinned&) = delete;
  bool ok() const { return ok_; }

 private:
  cpu_set_t old_;
  bool ok_ = false;
};

}  // namespace gateway::test
