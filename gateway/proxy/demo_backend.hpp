#pragma once
// A tiny HTTP/1.1 backend run inside the gateway process when no --backend is
// given, so that "curl http://127.0.0.1:8080/api/hello" works out of the box.
// Every request gets 200 with a JSON description of what arrived:
//   {"backend":"gateway demo backend","method":"GET","path":"/hello",
//    "query":"x=1","headers":[["Host","..."],...],"body_length":0}
// which also makes the proxy's forwarding visible.
//
// Threads: one std::jthread of its own, with its own io_context, listening on
// 127.0.0.1 (port 0: the kernel picks). stop() (or the destructor) closes the
// listener and every connection from that thread and joins it.
#include <cstdint>
#include <memory>
#include <string>

namespace gateway::proxy {

class demo_backend {
 public:
  // Binds 127.0.0.1:`port` and starts serving. Throws std::system_error if it cannot bind.
  explicit demo_backend(std::uint16_t port = 0);
  ~demo_backend();
  demo_backend(const demo_backend&) = delete;
  demo_backend& operator=(const demo_backend&) = delete;

  std::uint16_t port() const noexcept;
  std::string url() const;  // "http://127.0.0.1:PORT", for proxy_options::backend_url

  // Any thread, idempotent; returns when the backend's thread has ended.
  void stop() noexcept;

  std::uint64_t requests_served() const noexcept;
  std::uint64_t open_connections() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace gateway::proxy
