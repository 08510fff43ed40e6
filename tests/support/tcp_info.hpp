#pragma once
// What the kernel counted on one TCP socket (TCP_INFO), for tests that
// check how a peer split its bytes into segments.
#include <cstdint>
#include <optional>

namespace gateway::test {

// Segments carrying data that the socket `fd` has received so far
// (tcpi_data_segs_in); nullopt if the kernel does not report it.
std::optional<std::uint32_t> data_segments_in(int fd);

}  // namespace gateway::test
