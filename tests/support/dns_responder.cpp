#include "tests/support/dns_responder.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace gateway::test {

namespace {

std::uint32_t parse_v4(const std::string& text) {
  in_addr a{};
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1) throw std::invalid_argument("not an IPv4 address: " + text);
  return ntohl(a.s_addr);
}

void put16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

void put32(std::string& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v & 0xffff));
}

}  // namespace

dns_responder::dns_responder(std::string name, std::vector<std::string> ipv4, std::uint32_t ttl)
    : name_(std::move(name)), ttl_(ttl) {
  std::transform(name_.begin(), name_.end(), name_.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const auto& a : ipv4) addresses_.push_back(parse_v4(a));
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("dns_responder: socket");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    ::close(fd_);
    throw std::runtime_error("dns_responder: bind");
  }
  port_ = ntohs(sa.sin_port);
  thread_ = std::jthread([this](std::stop_token st) { serve(st); });
}

dns_responder::~dns_responder() { stop(); }

void dns_responder::set(std::vector<std::string> ipv4, std::uint32_t ttl) {
  std::vector<std::uint32_t> parsed;
  for (const auto& a : ipv4) parsed.push_back(parse_v4(a));
  std::lock_guard lock(mu_);
  addresses_ = std::move(parsed);
  ttl_ = ttl;
}

void dns_responder::stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();  // the loop wakes at least every 50 ms
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void dns_responder::serve(std::stop_token st) {
  unsigned char buf[512];
  while (!st.stop_requested()) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 12) continue;
    // The question: QNAME labels, QTYPE, QCLASS (RFC 1035 section 4.1.2).
    std::size_t pos = 12;
    std::string qname;
    bool ok = true;
    while (ok) {
      if (pos >= static_cast<std::size_t>(n)) {
        ok = false;
        break;
      }
      const std::size_t label = buf[pos++];
      if (label == 0) break;
      if (label > 63 || pos + label > static_cast<std::size_t>(n)) {
        ok = false;
        break;
      }
      if (!qname.empty()) qname += '.';
      for (std::size_t i = 0; i < label; ++i) qname += static_cast<char>(std::tolower(buf[pos + i]));
      pos += label;
    }
    if (!ok || pos + 4 > static_cast<std::size_t>(n)) continue;
    const std::uint16_t qtype = static_cast<std::uint16_t>(buf[pos] << 8 | buf[pos + 1]);
    const std::size_t question_end = pos + 4;
    std::vector<std::uint32_t> answers;
    std::uint32_t ttl = 0;
    int rcode = 0;
    if (qname != name_) {
      rcode = 3;  // NXDOMAIN
    } else if (qtype == 1) {
      ++queries_;
      std::lock_guard lock(mu_);
      answers = addresses_;
      ttl = ttl_;
      if (answers.size() > 16) answers.resize(16);
    }
    std::string out;
    out.append(reinterpret_cast<const char*>(buf), 2);  // ID
    const bool rd = (buf[2] & 0x01) != 0;
    out += static_cast<char>(0x84 | (rd ? 0x01 : 0x00));  // QR, AA, RD as asked
    out += static_cast<char>(0x80 | rcode);                // RA, RCODE
    put16(out, 1);
    put16(out, static_cast<std::uint16_t>(answers.size()));
    put16(out, 0);
    put16(out, 0);
    out.append(reinterpret_cast<const char*>(buf) + 12, question_end - 12);
    for (std::uint32_t a : answers) {
      put16(out, 0xc00c);  // the name: a pointer to the question's
      put16(out, 1);       // A
      put16(out, 1);       // IN
      put32(out, ttl);
      put16(out, 4);
      put32(out, a);
    }
    ::sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
  }
}

}  // namespace gateway::test
