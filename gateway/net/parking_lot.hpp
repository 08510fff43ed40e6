#pragma once
// The parking lot: where a worker keeps plain keep-alive connections that
// shed their session (net/connection.hpp) until their client sends again.
//
// A parked connection is its socket and a few fields in one record of the
// lot's slab (168 bytes; the slab's blocks are apart from the memory that
// sessions churn through): no connection_state, no coroutine, no pending
// Asio operation. A TLS connection's record also owns its tls_stream (the
// SSL object with its session and keys; the record buffers were freed when
// the session shed), which goes back to the new connection_state.
// The socket stays registered with Asio's reactor (so parking and resuming
// cost it nothing); the lot watches its descriptor in an epoll set of its
// own, which the io_context watches as one descriptor. Each descriptor is
// in that set one-shot: added the first time its connection parks, armed
// again (EPOLL_CTL_MOD) each later time, disarmed by the event itself, so
// an idle spell costs one epoll_ctl. When the descriptor turns readable
// (bytes, end of stream or an error), the record is handed back to the
// worker (worker::resume), which starts a new session on the socket.
//
// Everything here runs on the owning worker's thread.
#include <sys/epoll.h>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <asio/ip/tcp.hpp>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace gateway::net {

class worker;
class tls_stream;
struct connection_state;

struct parked_connection {
  // Client address text ("ADDRESS:PORT") up to this long is kept in the
  // record (every IPv4 one); a longer one (IPv6) in a heap block of its own.
  static constexpr std::size_t inline_address_max = 24;

  parked_connection() noexcept = default;
  ~parked_connection();  // in parking_lot.cpp, where tls_stream is complete
  parked_connection(const parked_connection&) = delete;
  parked_connection& operator=(const parked_connection&) = delete;

  std::optional<asio::ip::tcp::socket> socket;
  // With TLS on the listener: the connection's stream, rebound to `socket`.
  std::unique_ptr<tls_stream> tls;
  // The idle timeout and when the idle spell began: a session resumed
  // without a request byte (a TLS record still arriving, or one that
  // carries no data) keeps them rather than starting a new spell.
  std::chrono::steady_clock::time_point deadline{};
  std::chrono::steady_clock::time_point idle_since{};
  // The lot's list of parked records (or, when free, its free list).
  parked_connection* prev = nullptr;
  parked_connection* next = nullptr;
  union {
    char inline_address[inline_address_max];
    char* heap_address;
  };
  std::uint8_t client_address_len = 0;
  std::uint8_t client_ip_offset = 0;  // the ADDRESS part inside it
  std::uint8_t client_ip_len = 0;
  bool fresh = false;              // no request head received yet
  bool proxy_header_read = false;  // --proxy-protocol header already read

  const char* client_address() const noexcept {
    return client_address_len <= inline_address_max ? inline_address : heap_address;
  }
};

class parking_lot {
 public:
  parking_lot(worker& owner, asio::io_context& io) noexcept : owner_(owner), io_(io) {}
  ~parking_lot();
  parking_lot(const parking_lot&) = delete;
  parking_lot& operator=(const parking_lot&) = delete;

  // Takes the connection's socket (and TLS stream) and parks it. False when it could not (no
  // epoll set, the lot is shut): the socket is then untouched and still the
  // caller's. True also when the socket was taken but could not be watched:
  // it is closed then.
  bool park(connection_state& c);

  // Closes the parked connections whose idle timeout has passed.
  void expire(std::chrono::steady_clock::time_point now) noexcept;

  // Closes every parked connection and stops watching (a drain, or the
  // worker's end); park() refuses from then on.
  void shut() noexcept;

  std::size_t size() const noexcept { return count_; }

 private:
  static constexpr std::size_t slab_records = 256;
  static constexpr int events_per_call = 64;

  bool open() noexcept;
  void arm();
  void take_ready();
  parked_connection* take_record();
  void give_back(parked_connection* p) noexcept;
  void unlink(parked_connection* p) noexcept;

  worker& owner_;
  asio::io_context& io_;
  int epoll_fd_ = -1;
  // The epoll set as one descriptor of the io_context (it owns epoll_fd_).
  std::unique_ptr<asio::posix::stream_descriptor> watch_;
  bool armed_ = false;
  bool shut_ = false;
  // Slab blocks, kept until the lot is destroyed: their number follows the
  // most connections ever parked at once (bounded by --max-connections).
  std::vector<std::unique_ptr<parked_connection[]>> slabs_;
  parked_connection* free_ = nullptr;
  parked_connection* first_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace gateway::net
