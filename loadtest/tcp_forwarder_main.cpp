// tcp_forwarder: a blind TCP forwarder for load tests, the floor a proxy's CPU
// per request is measured against. Each accepted connection gets its own
// connection to the backend; bytes are copied both ways as they come, with no
// HTTP parsing, no headers added, no limits, no logs. Whatever an HTTP proxy
// does per request beyond this (parsing, routing, auth, headers, pooling) is
// what separates its figures from this one's on the same load.
//
//   tcp_forwarder --backend 127.0.0.1:PORT [--listen 127.0.0.1:0] [--threads 2]
//                 [--io epoll|io_uring]
//
// --io epoll: one edge-triggered epoll loop per thread, recv/send system calls
// (the shape of nginx's event loop). --io io_uring (when built with liburing):
// one ring per thread set up with SINGLE_ISSUER | DEFER_TASKRUN, multishot
// receives into a provided-buffer ring and registered (fixed) files: the
// fewest kernel entries and lookups io_uring offers for this traffic.
//
// Each thread has its own SO_REUSEPORT listener on one port. The backend
// connection is made with a blocking connect at accept; the sockets stay
// blocking, receives do not wait (MSG_DONTWAIT) and sends block until written: a tool for small requests and responses
// on loopback, not a proxy to run in front of anything. Prints "listening on ADDRESS:PORT" (flushed), serves until
// SIGINT/SIGTERM.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(TCP_FORWARDER_IO_URING)
#include <liburing.h>
#include <sys/mman.h>
#endif

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

constexpr std::string_view usage = R"(usage: tcp_forwarder --backend 127.0.0.1:PORT [options]
  --listen ADDR:PORT   address to listen on (default 127.0.0.1:0; port 0 picks a free one)
  --backend ADDR:PORT  where every accepted connection is forwarded (IPv4)
  --threads N          event-loop threads, each with its own listener (default 2)
  --io epoll|io_uring  epoll with recv/send, or io_uring with multishot receives,
                       provided buffers and fixed files (default epoll)
)";

bool parse_ipv4(std::string_view text, sockaddr_in& out) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string host(text.substr(0, colon));
  unsigned port = 0;
  const std::string_view p = text.substr(colon + 1);
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc{} || end != p.data() + p.size() || port > 65535) return false;
  out = sockaddr_in{};
  out.sin_family = AF_INET;
  out.sin_port = htons(static_cast<unsigned short>(port));
  return inet_pton(AF_INET, host.c_str(), &out.sin_addr) == 1;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "tcp_forwarder: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

int make_listener(const sockaddr_in& at) {
  const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  const int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(s, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) die("bind");
  if (::listen(s, 4096) != 0) die("listen");
  return s;
}

// The backend connection for a freshly accepted client, both with Nagle off;
// -1 (the client closed) when the backend cannot be reached.
int connect_backend(int client, const sockaddr_in& backend) {
  const int one = 1;
  const int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (u < 0 || ::connect(u, reinterpret_cast<const sockaddr*>(&backend), sizeof backend) != 0) {
    std::fprintf(stderr, "tcp_forwarder: backend: %s\n", std::strerror(errno));
    if (u >= 0) ::close(u);
    ::close(client);
    return -1;
  }
  ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return u;
}

// Writes all of [p, p + n) to a blocking socket; false on an error.
bool send_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// ---- epoll -------------------------------------------------------------

struct epoll_end {
  int fd;
  epoll_end* peer;
  char buf[16384];
};

// Closes both ends; the objects are freed after the current batch of events,
// which may still name either of them (a closed end has fd -1 and is skipped).
void close_pair(epoll_end* e, std::vector<epoll_end*>& graveyard) {
  for (epoll_end* x : {e, e->peer}) {
    ::close(x->fd);  // closing removes the descriptor from the epoll set
    x->fd = -1;
    graveyard.push_back(x);
  }
}

void run_epoll(int listener, sockaddr_in backend) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, listener, &lev) != 0) die("epoll_ctl");
  std::vector<epoll_event> events(512);
  std::vector<epoll_end*> graveyard;
  for (;;) {
    for (epoll_end* x : graveyard) delete x;
    graveyard.clear();
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      auto* e = static_cast<epoll_end*>(events[i].data.ptr);
      if (e != nullptr && e->fd < 0) continue;  // closed earlier in this batch
      if (e == nullptr) {
        for (;;) {
          const int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
          if (c < 0) break;
          const int u = connect_backend(c, backend);
          if (u < 0) continue;
          auto* ce = new epoll_end{c, nullptr, {}};
          auto* ue = new epoll_end{u, ce, {}};
          ce->peer = ue;
          for (epoll_end* x : {ce, ue}) {
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLET | EPOLLRDHUP;
            ev.data.ptr = x;
            if (::epoll_ctl(ep, EPOLL_CTL_ADD, x->fd, &ev) != 0) die("epoll_ctl");
          }
        }
        continue;  // the listener is non-blocking: accept4 stops at EAGAIN
      }
      // Edge-triggered: read until the socket is drained. A read shorter than
      // the buffer took everything there was (as nginx assumes), so it ends
      // the loop without a read that would only find EAGAIN, unless the peer
      // has closed (EPOLLRDHUP): data and the end in one edge need the read
      // that returns 0 after the data, or the end would go unnoticed.
      const bool to_the_end = (events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
      for (;;) {
        const ssize_t r = ::recv(e->fd, e->buf, sizeof e->buf, MSG_DONTWAIT);
        if (r > 0) {
          if (!send_all(e->peer->fd, e->buf, static_cast<std::size_t>(r))) {
            close_pair(e, graveyard);
            break;
          }
          if (static_cast<std::size_t>(r) < sizeof e->buf && !to_the_end) break;
          continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r == 0 || errno != EAGAIN) close_pair(e, graveyard);
        break;
      }
    }
  }
}

// ---- io_uring ----------------------------------------------------------

#if defined(TCP_FORWARDER_IO_URING)

constexpr unsigned ring_entries = 4096;
// One buffer group, a power of two: a receive holds a buffer until its send
// completes; when all are in flight a multishot receive ends with ENOBUFS and
// is armed again. The buffers are not touched until used (RSS follows use).
constexpr unsigned buffer_count = 2048;
constexpr unsigned buffer_size = 16384;
enum op : unsigned { op_accept = 1, op_recv = 2, op_send = 3, op_shutdown = 4 };
constexpr int peer_closing = -2;  // the other end has gone; this one is being shut down

std::uint64_t user_data(op o, unsigned slot, unsigned bid = 0) {
  return std::uint64_t{o} | (std::uint64_t{slot} << 8) | (std::uint64_t{bid} << 40);
}

class uring_loop {
 public:
  uring_loop(int listener, sockaddr_in backend, unsigned files) : backend_(backend), peer_(files, -1) {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (int rc = io_uring_queue_init_params(ring_entries, &ring_, &p); rc < 0) {
      errno = -rc;
      die("io_uring_queue_init_params (SINGLE_ISSUER | DEFER_TASKRUN needs Linux 6.1)");
    }
    if (int rc = io_uring_register_files_sparse(&ring_, files); rc < 0) {
      errno = -rc;
      die("io_uring_register_files_sparse");
    }
    for (unsigned s = files; s-- > 0;) free_slots_.push_back(s);
    void* br = ::mmap(nullptr, buffer_count * sizeof(io_uring_buf), PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                      -1, 0);
    if (br == MAP_FAILED) die("mmap");
    br_ = static_cast<io_uring_buf_ring*>(br);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
    reg.ring_entries = buffer_count;
    reg.bgid = 0;
    if (int rc = io_uring_register_buf_ring(&ring_, &reg, 0); rc < 0) {
      errno = -rc;
      die("io_uring_register_buf_ring");
    }
    io_uring_buf_ring_init(br_);
    buffers_ = std::make_unique_for_overwrite<char[]>(std::size_t{buffer_count} * buffer_size);
    for (unsigned i = 0; i < buffer_count; ++i) give_back(i, i);
    io_uring_buf_ring_advance(br_, static_cast<int>(buffer_count));
    io_uring_sqe* s = next_sqe();
    io_uring_prep_multishot_accept(s, listener, nullptr, nullptr, 0);
    io_uring_sqe_set_data64(s, user_data(op_accept, 0));
  }

  [[noreturn]] void run() {
    for (;;) {
      const int rc = io_uring_submit_and_wait(&ring_, 1);
      if (rc < 0 && rc != -EINTR) {
        errno = -rc;
        die("io_uring_submit_and_wait");
      }
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0;
      unsigned seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        complete(*cqe);
      }
      io_uring_cq_advance(&ring_, seen);
    }
  }

 private:
  io_uring_sqe* next_sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (s == nullptr) {
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
    }
    return s;
  }

  void give_back(unsigned bid, int offset) {
    io_uring_buf_ring_add(br_, buffers_.get() + std::size_t{bid} * buffer_size, buffer_size,
                          static_cast<unsigned short>(bid), io_uring_buf_ring_mask(buffer_count), offset);
  }

  void arm_receive(unsigned slot) {
    io_uring_sqe* s = next_sqe();
    io_uring_prep_recv_multishot(s, static_cast<int>(slot), nullptr, 0, 0);
    s->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    s->buf_group = 0;
    io_uring_sqe_set_data64(s, user_data(op_recv, slot));
  }

  // Empties a slot of the file table, which closes its socket once no
  // operation holds it.
  void release(unsigned slot) {
    int none = -1;
    io_uring_register_files_update(&ring_, slot, &none, 1);
    peer_[slot] = -1;
    free_slots_.push_back(slot);
  }

  void accepted(int client) {
    const int u = connect_backend(client, backend_);
    if (u < 0) return;
    if (free_slots_.size() < 2) {
      std::fprintf(stderr, "tcp_forwarder: no free file slot, connection closed\n");
      ::close(client);
      ::close(u);
      return;
    }
    const unsigned cs = free_slots_.back();
    free_slots_.pop_back();
    const unsigned us = free_slots_.back();
    free_slots_.pop_back();
    int fds[2] = {client, u};
    io_uring_register_files_update(&ring_, cs, &fds[0], 1);
    io_uring_register_files_update(&ring_, us, &fds[1], 1);
    ::close(client);  // the table holds them now
    ::close(u);
    peer_[cs] = static_cast<int>(us);
    peer_[us] = static_cast<int>(cs);
    arm_receive(cs);
    arm_receive(us);
  }

  // One end reported end of stream or an error: the other end is shut down
  // (its pending receive then ends too, and releases it), this one released.
  void ended(unsigned slot) {
    const int p = peer_[slot];
    if (p >= 0) {
      io_uring_sqe* s = next_sqe();
      io_uring_prep_shutdown(s, p, SHUT_RDWR);
      s->flags |= IOSQE_FIXED_FILE;
      io_uring_sqe_set_data64(s, user_data(op_shutdown, static_cast<unsigned>(p)));
      peer_[static_cast<unsigned>(p)] = peer_closing;
    }
    release(slot);
  }

  void complete(const io_uring_cqe& c) {
    const auto o = static_cast<op>(c.user_data & 0xff);
    const auto slot = static_cast<unsigned>((c.user_data >> 8) & 0xffffffff);
    switch (o) {
      case op_accept:
        if (c.res >= 0) accepted(c.res);
        if (!(c.flags & IORING_CQE_F_MORE)) die("multishot accept ended");
        return;
      case op_recv: {
        if (c.res == -ENOBUFS) {  // every buffer in flight: the multishot stopped
          arm_receive(slot);
          return;
        }
        if (c.res <= 0) {
          if (!(c.flags & IORING_CQE_F_MORE) && peer_[slot] != -1) ended(slot);
          return;
        }
        const unsigned bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
        const int p = peer_[slot];
        if (p < 0) {  // the other end is gone: drop the bytes
          give_back(bid, 0);
          io_uring_buf_ring_advance(br_, 1);
        } else {
          io_uring_sqe* s = next_sqe();
          io_uring_prep_send(s, p, buffers_.get() + std::size_t{bid} * buffer_size, static_cast<std::size_t>(c.res),
                             MSG_NOSIGNAL | MSG_WAITALL);
          s->flags |= IOSQE_FIXED_FILE;
          io_uring_sqe_set_data64(s, user_data(op_send, slot, bid));
        }
        if (!(c.flags & IORING_CQE_F_MORE) && peer_[slot] >= 0) arm_receive(slot);
        return;
      }
      case op_send:
        give_back(static_cast<unsigned>(c.user_data >> 40), 0);
        io_uring_buf_ring_advance(br_, 1);
        if (c.res < 0 && peer_[slot] >= 0) ended(slot);
        return;
      case op_shutdown:
        return;
    }
  }

  io_uring ring_{};
  io_uring_buf_ring* br_ = nullptr;
  std::unique_ptr<char[]> buffers_;
  sockaddr_in backend_;
  std::vector<int> peer_;  // per slot: the other end's slot, -1 free, peer_closing
  std::vector<unsigned> free_slots_;
};

#endif

}  // namespace

int main(int argc, char** argv) {
  sockaddr_in listen_at{};
  parse_ipv4("127.0.0.1:0", listen_at);
  sockaddr_in backend{};
  bool have_backend = false;
  unsigned threads = 2;
  std::string_view io = "epoll";
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto value = [&]() -> std::string_view {
      return i + 1 < argc ? std::string_view(argv[++i]) : std::string_view();
    };
    bool ok = true;
    if (a == "--help" || a == "-h") {
      std::fwrite(usage.data(), 1, usage.size(), stdout);
      return 0;
    } else if (a == "--listen") {
      ok = parse_ipv4(value(), listen_at);
    } else if (a == "--backend") {
      ok = have_backend = parse_ipv4(value(), backend);
    } else if (a == "--threads") {
      const std::string_view v = value();
      const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), threads);
      ok = ec == std::errc{} && p == v.data() + v.size() && threads > 0 && threads <= 64;
    } else if (a == "--io") {
      io = value();
#if defined(TCP_FORWARDER_IO_URING)
      ok = io == "epoll" || io == "io_uring";
#else
      ok = io == "epoll";
      if (io == "io_uring") {
        std::fprintf(stderr, "tcp_forwarder: built without liburing: --io io_uring is not available\n");
        return 2;
      }
#endif
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "tcp_forwarder: bad argument %.*s\n%.*s", static_cast<int>(a.size()), a.data(),
                   static_cast<int>(usage.size()), usage.data());
      return 2;
    }
  }
  if (!have_backend) {
    std::fprintf(stderr, "tcp_forwarder: --backend is required\n%.*s", static_cast<int>(usage.size()), usage.data());
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // SIGINT and SIGTERM blocked in every thread (the loops inherit the mask)
  // and taken by sigwait below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }

  // The first listener picks the port when it is 0; the others share it.
  std::vector<int> listeners;
  listeners.push_back(make_listener(listen_at));
  socklen_t len = sizeof listen_at;
  if (::getsockname(listeners[0], reinterpret_cast<sockaddr*>(&listen_at), &len) != 0) die("getsockname");
  for (unsigned t = 1; t < threads; ++t) listeners.push_back(make_listener(listen_at));

  std::vector<std::thread> loops;
  for (int l : listeners) {
#if defined(TCP_FORWARDER_IO_URING)
    if (io == "io_uring") {
      // Registered files count against RLIMIT_NOFILE; half of it per thread
      // at most, two slots per forwarded connection.
      const auto files = static_cast<unsigned>(std::min<rlim_t>(nofile.rlim_cur / 2 / threads, 32768));
      loops.emplace_back([l, backend, files] { uring_loop(l, backend, files).run(); });
      continue;
    }
#endif
    loops.emplace_back([l, backend] { run_epoll(l, backend); });
  }
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &listen_at.sin_addr, text, sizeof text);
  std::printf("listening on %s:%u\n", text, static_cast<unsigned>(ntohs(listen_at.sin_port)));
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  std::_Exit(0);  // the loops never return; the kernel closes every socket
}
