#include "gateway/proxy/name_resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <asio/posix/stream_descriptor.hpp>
#include <climits>
#include <mutex>
#include <stdexcept>

#include "gateway/net/run_bounded.hpp"

namespace gateway::proxy {

namespace {

ares_channel as_channel(void* c) { return static_cast<ares_channel>(c); }

void init_library_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const int rc = ares_library_init(ARES_LIB_INIT_ALL); rc != ARES_SUCCESS)
      throw std::runtime_error(std::string("c-ares: ") + ares_strerror(rc));
  });
}

// What one ares_getaddrinfo() answered: the IPv4 addresses, or the IPv6 ones
// when there are none (the backend most likely listens on IPv4, as
// "localhost" shows: 127.0.0.1 and ::1, and many services bind 127.0.0.1 only).
lookup_result read_answer(int status, const ares_addrinfo* res) {
  lookup_result out;
  out.status = status;
  if (status != ARES_SUCCESS || res == nullptr) {
    if (out.status == ARES_SUCCESS) out.status = ARES_ENODATA;
    out.error = ares_strerror(out.status);
    return out;
  }
  std::vector<asio::ip::address> v4, v6;
  int ttl = INT_MAX;
  for (const ares_addrinfo_node* n = res->nodes; n != nullptr; n = n->ai_next) {
    if (n->ai_family == AF_INET && n->ai_addr != nullptr) {
      const auto* sa = reinterpret_cast<const sockaddr_in*>(n->ai_addr);
      v4.emplace_back(asio::ip::address_v4(ntohl(sa->sin_addr.s_addr)));
    } else if (n->ai_family == AF_INET6 && n->ai_addr != nullptr) {
      const auto* sa = reinterpret_cast<const sockaddr_in6*>(n->ai_addr);
      asio::ip::address_v6::bytes_type b;
      std::copy_n(reinterpret_cast<const unsigned char*>(&sa->sin6_addr), 16, b.begin());
      v6.emplace_back(asio::ip::address_v6(b, sa->sin6_scope_id));
    } else {
      continue;
    }
    ttl = std::min(ttl, std::max(0, n->ai_ttl));
  }
  out.addresses = v4.empty() ? std::move(v6) : std::move(v4);
  std::sort(out.addresses.begin(), out.addresses.end());
  out.addresses.erase(std::unique(out.addresses.begin(), out.addresses.end()), out.addresses.end());
  if (out.addresses.empty()) {
    out.status = ARES_ENODATA;
    out.error = ares_strerror(ARES_ENODATA);
    return out;
  }
  out.ttl = std::chrono::seconds(ttl == INT_MAX ? 0 : ttl);
  return out;
}

void on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* res) {
  std::unique_ptr<dns_channel::callback> cb(static_cast<dns_channel::callback*>(arg));
  lookup_result r = read_answer(status, res);
  if (res != nullptr) ares_freeaddrinfo(res);
  (*cb)(std::move(r));
}

std::chrono::nanoseconds clamp_ttl(std::chrono::seconds ttl, const dns_options& o) {
  return std::clamp<std::chrono::nanoseconds>(ttl, o.min_ttl, std::max(o.min_ttl, o.max_ttl));
}

}  // namespace

// --- name_table ---

std::vector<asio::ip::address> name_table::addresses(std::string_view host) const {
  std::lock_guard lock(mu_);
  auto it = names_.find(host);
  return it == names_.end() ? std::vector<asio::ip::address>{} : it->second.addresses;
}

bool name_table::known(std::string_view host) const {
  std::lock_guard lock(mu_);
  return names_.find(host) != names_.end();
}

std::size_t name_table::size() const {
  std::lock_guard lock(mu_);
  return names_.size();
}

bool name_table::update(std::string_view host, std::vector<asio::ip::address> addrs, clock::time_point due) {
  std::lock_guard lock(mu_);
  resolutions.fetch_add(1, std::memory_order_relaxed);
  auto it = names_.find(host);
  if (it == names_.end()) {
    if (names_.size() >= max_names)
      throw std::length_error("more than " + std::to_string(max_names) + " backend host names");
    names_.emplace(std::string(host), entry{std::move(addrs), due});
    version_.fetch_add(1, std::memory_order_release);
    return true;
  }
  it->second.due = due;
  if (it->second.addresses == addrs) return false;
  it->second.addresses = std::move(addrs);
  changes.fetch_add(1, std::memory_order_relaxed);
  version_.fetch_add(1, std::memory_order_release);
  return true;
}

void name_table::failed(std::string_view host, clock::time_point due) {
  std::lock_guard lock(mu_);
  failures.fetch_add(1, std::memory_order_relaxed);
  if (auto it = names_.find(host); it != names_.end()) it->second.due = due;
}

name_table::clock::time_point name_table::due(std::string_view host) const {
  std::lock_guard lock(mu_);
  auto it = names_.find(host);
  return it == names_.end() ? clock::now() : it->second.due;
}

// --- dns_channel ---

// One socket c-ares asked us to watch. The descriptor never owns it: it is
// released (not closed) when c-ares says it is done, before c-ares closes it.
struct dns_channel::watch {
  watch(asio::io_context& io, int socket) : sd(io, socket), fd(socket) {}
  asio::posix::stream_descriptor sd;
  int fd;
  bool want_read = false, want_write = false;
  bool reading = false, writing = false;
  bool closed = false;
};

dns_channel::dns_channel(asio::io_context& io, const dns_options& o) : io_(io), timer_(io) {
  init_library_once();
  ares_options opts{};
  opts.sock_state_cb = &dns_channel::on_socket_state;
  opts.sock_state_cb_data = this;
  opts.timeout = static_cast<int>(o.timeout.count());
  opts.tries = o.tries;
  ares_channel ch = nullptr;
  const int rc = ares_init_options(&ch, &opts, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS) throw std::runtime_error(std::string("c-ares: ") + ares_strerror(rc));
  channel_ = ch;
  if (!o.servers.empty()) {
    if (const int src = ares_set_servers_ports_csv(ch, o.servers.c_str()); src != ARES_SUCCESS) {
      ares_destroy(ch);
      channel_ = nullptr;
      throw std::runtime_error("--dns-server '" + o.servers + "': " + ares_strerror(src));
    }
  }
}

dns_channel::~dns_channel() {
  // ares_destroy completes pending lookups (ARES_EDESTRUCTION) and says
  // (fd, 0, 0) for each socket, which releases its descriptor.
  if (channel_ != nullptr) ares_destroy(as_channel(channel_));
  channel_ = nullptr;
  for (auto& [fd, w] : watches_) {
    w->closed = true;
    w->sd.release();
  }
  watches_.clear();
  alive_.reset();
}

void dns_channel::on_socket_state(void* self, int fd, int readable, int writable) {
  auto& ch = *static_cast<dns_channel*>(self);
  auto it = ch.watches_.find(fd);
  if (readable == 0 && writable == 0) {
    if (it == ch.watches_.end()) return;
    it->second->closed = true;
    it->second->sd.release();  // cancels its waits; c-ares closes the socket
    ch.watches_.erase(it);
    return;
  }
  if (it == ch.watches_.end()) it = ch.watches_.emplace(fd, std::make_shared<watch>(ch.io_, fd)).first;
  it->second->want_read = readable != 0;
  it->second->want_write = writable != 0;
  ch.arm(it->second);
}

void dns_channel::arm(const std::shared_ptr<watch>& w) {
  std::weak_ptr<char> alive = alive_;
  if (w->want_read && !w->reading) {
    w->reading = true;
    w->sd.async_wait(asio::posix::descriptor_base::wait_read, [this, w, alive](std::error_code ec) {
      w->reading = false;
      if (alive.expired() || w->closed || ec || !w->want_read) return;
      ares_process_fd(as_channel(channel_), w->fd, ARES_SOCKET_BAD);
      if (alive.expired()) return;
      if (!w->closed) arm(w);
      rearm_timer();
    });
  }
  if (w->want_write && !w->writing) {
    w->writing = true;
    w->sd.async_wait(asio::posix::descriptor_base::wait_write, [this, w, alive](std::error_code ec) {
      w->writing = false;
      if (alive.expired() || w->closed || ec || !w->want_write) return;
      ares_process_fd(as_channel(channel_), ARES_SOCKET_BAD, w->fd);
      if (alive.expired()) return;
      if (!w->closed) arm(w);
      rearm_timer();
    });
  }
}

void dns_channel::rearm_timer() {
  timeval tv{};
  timeval* next = ares_timeout(as_channel(channel_), nullptr, &tv);
  if (next == nullptr) {
    timer_.cancel();  // nothing pending: the loop may run dry
    return;
  }
  timer_.expires_after(std::chrono::seconds(next->tv_sec) + std::chrono::microseconds(next->tv_usec));
  timer_.async_wait([this, alive = std::weak_ptr<char>(alive_)](std::error_code ec) {
    if (alive.expired() || ec) return;
    ares_process_fd(as_channel(channel_), ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
    if (!alive.expired()) rearm_timer();
  });
}

void dns_channel::resolve(const std::string& host, callback cb) {
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NOSORT;  // sorted by address here (RFC 6724 order needs a probe per address)
  auto* arg = new callback(std::move(cb));
  // May complete at once (an /etc/hosts entry, a bad name).
  ares_getaddrinfo(as_channel(channel_), host.c_str(), nullptr, &hints, &on_addrinfo, arg);
  rearm_timer();
}

// --- names ---

bool is_host_name(std::string_view host) {
  std::error_code ec;
  (void)asio::ip::make_address(std::string(host), ec);
  return static_cast<bool>(ec);
}

void resolve_names(name_table& table, const std::vector<std::string>& hosts, const dns_options& o) {
  std::vector<std::string> todo;
  for (const auto& h : hosts)
    if (!table.known(h) && std::find(todo.begin(), todo.end(), h) == todo.end()) todo.push_back(h);
  if (todo.empty()) return;
  asio::io_context io(1);
  std::vector<lookup_result> results(todo.size());
  for (auto& r : results) {
    r.status = ARES_ETIMEOUT;
    r.error = ares_strerror(ARES_ETIMEOUT);
  }
  {
    dns_channel ch(io, o);
    std::size_t pending = todo.size();
    for (std::size_t i = 0; i < todo.size(); ++i)
      ch.resolve(todo[i], [&results, &pending, &io, i](lookup_result r) {
        if (r.status == ARES_EDESTRUCTION) return;
        results[i] = std::move(r);
        if (--pending == 0) io.stop();
      });
    // Until every lookup has answered or timed out (c-ares's own timer);
    // the bound only guards against a socket c-ares keeps watched.
    if (pending > 0) net::run_bounded(io, o.timeout * ((1 << std::max(1, o.tries)) - 1) * 4 + std::chrono::seconds(1));
  }
  for (std::size_t i = 0; i < todo.size(); ++i)
    if (results[i].status != ARES_SUCCESS)
      throw std::runtime_error("cannot resolve '" + todo[i] + "': " + results[i].error);
  const auto now = name_table::clock::now();
  for (std::size_t i = 0; i < todo.size(); ++i)
    table.update(todo[i], std::move(results[i].addresses), now + clamp_ttl(results[i].ttl, o));
}

// --- name_refresher ---

std::shared_ptr<name_refresher> name_refresher::make(asio::io_context& io, std::shared_ptr<name_table> table,
                                                     std::vector<std::string> hosts, dns_options o) {
  return std::make_shared<name_refresher>(io, std::move(table), std::move(hosts), std::move(o));
}

name_refresher::name_refresher(asio::io_context& io, std::shared_ptr<name_table> table,
                               std::vector<std::string> hosts, dns_options o)
    : io_(io), table_(std::move(table)), opts_(std::move(o)) {
  for (auto& h : hosts) items_.push_back(std::make_unique<item>(item{std::move(h), asio::steady_timer(io_)}));
}

void name_refresher::start() {
  if (stopped_ || channel_) return;
  try {
    channel_ = std::make_unique<dns_channel>(io_, opts_);
  } catch (const std::exception&) {
    // The same options started at start-up; if c-ares cannot start now the
    // names keep their addresses and every due refresh counts as failed.
    table_->failures.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  for (auto& it : items_) wait(*it);
}

void name_refresher::stop() noexcept {
  if (stopped_) return;
  stopped_ = true;
  for (auto& it : items_) it->timer.cancel();
  channel_.reset();  // lookups in flight end with ARES_EDESTRUCTION, ignored below
}

void name_refresher::wait(item& it) {
  if (stopped_) return;
  it.timer.expires_at(table_->due(it.host));
  it.timer.async_wait([self = shared_from_this(), &it](std::error_code ec) {
    if (ec || self->stopped_) return;
    self->refresh(it);
  });
}

void name_refresher::refresh(item& it) {
  channel_->resolve(it.host, [self = shared_from_this(), &it](lookup_result r) {
    if (r.status == ARES_EDESTRUCTION || self->stopped_) return;
    const auto now = name_table::clock::now();
    if (r.status == ARES_SUCCESS) {
      try {
        self->table_->update(it.host, std::move(r.addresses), now + clamp_ttl(r.ttl, self->opts_));
      } catch (const std::exception&) {
        self->table_->failed(it.host, now + self->opts_.min_ttl);  // not reached: the name is known
      }
    } else {
      self->table_->failed(it.host, now + self->opts_.min_ttl);
    }
    self->wait(it);
  });
}

}  // namespace gateway::proxy
