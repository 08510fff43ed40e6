#pragma once
// Backend host names, resolved with c-ares. c-ares reads /etc/resolv.conf
// and /etc/hosts itself (no NSS), so names work in the static binary and on
// a `scratch` image too; numeric addresses never come here.
//
//   name_table     one per gateway (app::shared_state), any thread: each
//                  name's addresses (its IPv4 addresses, or its IPv6 ones
//                  when it has none; sorted, never empty once resolved), when
//                  it is due again, and a version bumped whenever any name's
//                  set changes. A proxy route with a named member reads the
//                  version once per request (one relaxed load) and rebuilds
//                  its members when it moved (proxy_handler.cpp).
//   dns_channel    one ares_channel driven by one io_context, without a
//                  thread: c-ares names the sockets it wants watched
//                  (ARES_OPT_SOCK_STATE_CB), each is awaited for readiness
//                  through a posix::stream_descriptor that never owns the
//                  socket, and one timer covers c-ares's own timeouts.
//   resolve_names  start-up, reload and --check-config: resolves the names
//                  the table does not know yet on a private io_context,
//                  blocking the caller (never a worker); throws naming the
//                  first name that failed, and the table is left unchanged.
//   name_refresher on one worker's loop (worker 0's pipeline owns it):
//                  re-resolves each name when its TTL runs out, the TTL
//                  bounded to [min_ttl, max_ttl] (an /etc/hosts entry has
//                  TTL 0: min_ttl). A failed or empty answer keeps the last
//                  good addresses, is counted, and is retried after min_ttl.
//                  c-ares reads /etc/hosts (and, when the channel starts,
//                  /etc/resolv.conf) with plain file reads on that loop: a
//                  small local file, at most once per name per min_ttl.
#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace gateway::proxy {

struct dns_options {
  // "IP[:PORT],..." (IPv6 in brackets) instead of /etc/resolv.conf's
  // nameservers; empty: resolv.conf. /etc/hosts is read first either way.
  std::string servers;
  std::chrono::nanoseconds min_ttl = std::chrono::seconds(1);
  std::chrono::nanoseconds max_ttl = std::chrono::seconds(60);
  // Per try; c-ares doubles it for each later try.
  std::chrono::milliseconds timeout{1000};
  int tries = 2;
};

class name_table {
 public:
  static constexpr std::size_t max_names = 256;
  using clock = std::chrono::steady_clock;

  std::uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }
  // The name's addresses; empty when it was never resolved.
  std::vector<asio::ip::address> addresses(std::string_view host) const;
  bool known(std::string_view host) const;
  std::size_t size() const;
  // A good answer: stores `addrs` (not empty), due again after `ttl`. True
  // when the set changed (the version moved). Throws std::length_error for
  // a new name past max_names.
  bool update(std::string_view host, std::vector<asio::ip::address> addrs, clock::time_point due);
  // A failed re-resolution: the addresses stay, due again at `due`.
  void failed(std::string_view host, clock::time_point due);
  // When the name is due (now for an unknown name).
  clock::time_point due(std::string_view host) const;

  // Figures for /metrics (any thread).
  std::atomic<std::int64_t> resolutions{0};  // answers with addresses (start-up included)
  std::atomic<std::int64_t> failures{0};     // re-resolutions that failed or came back empty
  std::atomic<std::int64_t> changes{0};      // address sets that changed after start-up

 private:
  struct entry {
    std::vector<asio::ip::address> addresses;
    clock::time_point due;
  };
  mutable std::mutex mu_;
  std::map<std::string, entry, std::less<>> names_;
  std::atomic<std::uint64_t> version_{0};
};

// The result of one lookup: status 0 (ARES_SUCCESS) with at least one
// address, else a c-ares status and `error` saying what it means.
struct lookup_result {
  int status = 0;
  std::string error;
  std::vector<asio::ip::address> addresses;  // IPv4 ones, or IPv6 when none; sorted, unique
  std::chrono::seconds ttl{0};               // the smallest of the addresses'
};

class dns_channel {
 public:
  using callback = std::function<void(lookup_result)>;
  // Thread: `io`'s. Throws std::runtime_error when c-ares cannot start or
  // `servers` is malformed.
  dns_channel(asio::io_context& io, const dns_options& o);
  // Pending lookups complete with ARES_EDESTRUCTION before it returns.
  ~dns_channel();
  dns_channel(const dns_channel&) = delete;
  dns_channel& operator=(const dns_channel&) = delete;

  void resolve(const std::string& host, callback cb);

 private:
  struct watch;
  static void on_socket_state(void* self, int fd, int readable, int writable);
  void arm(const std::shared_ptr<watch>& w);
  void rearm_timer();

  asio::io_context& io_;
  void* channel_ = nullptr;  // ares_channel (the header stays free of ares.h)
  std::map<int, std::shared_ptr<watch>> watches_;
  asio::steady_timer timer_;
  std::shared_ptr<char> alive_ = std::make_shared<char>();  // handlers check it before touching *this
};

// True for a backend host that is a name (not a numeric IPv4 or IPv6 address).
bool is_host_name(std::string_view host);

// Resolves every name of `hosts` not in `table` yet (blocking, at most
// about timeout * (2^tries - 1) per server), then stores them all. Throws
// std::runtime_error "cannot resolve 'NAME': WHY" for the first one that failed.
void resolve_names(name_table& table, const std::vector<std::string>& hosts, const dns_options& o);

class name_refresher : public std::enable_shared_from_this<name_refresher> {
 public:
  static std::shared_ptr<name_refresher> make(asio::io_context& io, std::shared_ptr<name_table> table,
                                              std::vector<std::string> hosts, dns_options o);
  // On io's thread. start() after stop() does nothing.
  void start();
  void stop() noexcept;

  name_refresher(asio::io_context& io, std::shared_ptr<name_table> table, std::vector<std::string> hosts,
                 dns_options o);

 private:
  struct item {
    std::string host;
    asio::steady_timer timer;
  };
  void wait(item& it);
  void refresh(item& it);

  asio::io_context& io_;
  std::shared_ptr<name_table> table_;
  dns_options opts_;
  std::vector<std::unique_ptr<item>> items_;
  std::unique_ptr<dns_channel> channel_;
  bool stopped_ = false;
};

}  // namespace gateway::proxy
