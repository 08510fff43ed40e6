#pragma once
// A minimal RFC 6455 peer pair for the tunnel tests, on blocking loopback
// sockets: an echo server (handshake with Sec-WebSocket-Accept, unmasks
// client frames, echoes text frames, answers a close) on a thread of its
// own, and client helpers (handshake, masked frames, reading frames).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <mutex>
#include <thread>
#include <vector>
#include <cctype>

namespace gateway::test::ws {

// RFC 6455 section 4.2.2 item 5.4: base64(SHA-1(key + GUID)).
inline std::string accept_for(std::string_view key) {
  std::string in(key);
  in += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

inline void set_timeout(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline bool write_all(int fd, std::string_view b) {
  while (!b.empty()) {
    ssize_t n = ::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    b.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// A byte stream with a buffer, so heads and frames can be read exactly.
class stream {
 public:
  explicit stream(int fd) : fd_(fd) {}
  bool fill() {
    char b[16384];
    ssize_t n = ::recv(fd_, b, sizeof b, 0);
    if (n <= 0) return false;
    buf_.append(b, static_cast<std::size_t>(n));
    return true;
  }
  std::optional<std::string> read_head() {
    for (;;) {
      auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::string head = buf_.substr(0, end + 4);
        buf_.erase(0, end + 4);
        return head;
      }
      if (!fill()) return std::nullopt;
    }
  }
  bool read_exact(std::size_t n, std::string& out) {
    while (buf_.size() < n)
      if (!fill()) return false;
    out = buf_.substr(0, n);
    buf_.erase(0, n);
    return true;
  }
  // True when the peer closed (EOF) with nothing left unread.
  bool at_eof() { return buf_.empty() && !fill(); }

 private:
  int fd_;
  std::string buf_;
};

struct frame {
  bool fin = true;
  int opcode = 0;
  std::string payload;
};

inline std::string encode(const frame& f, bool masked, std::uint32_t mask_key = 0x5a1c3e77) {
  std::string out;
  out.push_back(static_cast<char>((f.fin ? 0x80 : 0) | f.opcode));
  const std::size_t n = f.payload.size();
  const char m = masked ? static_cast<char>(0x80) : 0;
  if (n < 126) {
    out.push_back(static_cast<char>(m | static_cast<char>(n)));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(m | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xff));
  }
  if (!masked) return out + f.payload;
  char key[4] = {static_cast<char>(mask_key >> 24), static_cast<char>(mask_key >> 16), static_cast<char>(mask_key >> 8),
                 static_cast<char>(mask_key)};
  out.append(key, 4);
  for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<char>(f.payload[i] ^ key[i % 4]));
  return out;
}

// Reads one frame; `must_be_masked` checks the RFC's direction rule.
inline std::optional<frame> read_frame(stream& s, bool must_be_masked) {
  std::string h;
  if (!s.read_exact(2, h)) return std::nullopt;
  frame f;
  f.fin = (h[0] & 0x80) != 0;
  f.opcode = h[0] & 0x0f;
  const bool masked = (h[1] & 0x80) != 0;
  if (masked != must_be_masked) return std::nullopt;
  std::uint64_t n = static_cast<unsigned char>(h[1]) & 0x7f;
  std::string ext;
  if (n == 126) {
    if (!s.read_exact(2, ext)) return std::nullopt;
    n = (static_cast<unsigned char>(ext[0]) << 8) | static_cast<unsigned char>(ext[1]);
  } else if (n == 127) {
    if (!s.read_exact(8, ext)) return std::nullopt;
    n = 0;
    for (char c : ext) n = (n << 8) | static_cast<unsigned char>(c);
  }
  std::string key;
  if (masked && !s.read_exact(4, key)) return std::nullopt;
  if (!s.read_exact(static_cast<std::size_t>(n), f.payload)) return std::nullopt;
  if (masked)
    for (std::size_t i = 0; i < f.payload.size(); ++i) f.payload[i] = static_cast<char>(f.payload[i] ^ key[i % 4]);
  return f;
}

inline std::string header_value(std::string_view head, std::string_view name) {
  std::string lower_head(head), lower_name(name);
  for (auto& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto p = lower_head.find("\r\n" + lower_name + ":");
  if (p == std::string::npos) return {};
  p += 3 + name.size();
  auto e = head.find("\r\n", p);
  std::string v(head.substr(p, e - p));
  while (!v.empty() && v.front() == ' ') v.erase(0, 1);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

// Echo server: accepts connections one after another (each on its own
// thread), answers the handshake, echoes text and binary frames, and
// answers a close frame with a close frame and then closes.
class echo_server {
 public:
  echo_server() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(listen_fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~echo_server() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
  }
  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string last_request_head() const {
    std::lock_guard lock(mu_);
    return last_head_;
  }
  int echoed() const { return echoed_.load(); }

 private:
  void accept_loop() {
    std::vector<std::thread> sessions;
    while (!stopping_) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) break;
      sessions.emplace_back([this, fd] { serve(fd); });
    }
    for (auto& t : sessions) t.join();
  }
  void serve(int fd) {
    set_timeout(fd, 10000);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    stream s(fd);
    auto head = s.read_head();
    if (head) {
      {
        std::lock_guard lock(mu_);
        last_head_ = *head;
      }
      std::string key = header_value(*head, "Sec-WebSocket-Key");
      std::string resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: " + accept_for(key) + "\r\n\r\n";
      if (!key.empty() && write_all(fd, resp)) {
        while (auto f = read_frame(s, true)) {
          if (f->opcode == 0x8) {
            write_all(fd, encode(*f, false));
            break;
          }
          if (f->opcode == 0x1 || f->opcode == 0x2) {
            if (!write_all(fd, encode(*f, false))) break;
            ++echoed_;
          }
        }
      }
    }
    ::close(fd);
  }

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> echoed_{0};
  mutable std::mutex mu_;
  std::string last_head_;
  std::thread thread_;
};

// Connects to 127.0.0.1:port (receive timeout `ms`); -1 on failure.
inline int connect_to(std::uint16_t port, int ms = 10000) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_timeout(fd, ms);
  return fd;
}

}  // namespace gateway::test::ws
