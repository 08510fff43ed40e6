#include "tests/support/tcp_info.hpp"

// The kernel's struct tcp_info (glibc's netinet/tcp.h stops before the
// segment counters); this file includes no glibc TCP header, so the two
// definitions do not meet.
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>

namespace gateway::test {

std::optional<std::uint32_t> data_segments_in(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  if (len < offsetof(tcp_info, tcpi_data_segs_in) + sizeof info.tcpi_data_segs_in) return std::nullopt;
  return info.tcpi_data_segs_in;
}

}  // namespace gateway::test
