#include "gateway/net/read_readiness.hpp"

#include <asio/detail/reactor.hpp>

namespace gateway::net {

#if defined(ASIO_HAS_EPOLL) && !defined(ASIO_HAS_IO_URING_AS_DEFAULT)

namespace {

// Asio keeps the socket's reactor state and the reactor's per-descriptor
// "try a read at once" flag private. An explicit instantiation may name
// private members (C++20 [temp.spec]/6), which is how these
// accessors reach them without patching Asio's headers. They are checked
// against Asio 1.22's layout at compile time: a renamed member fails the
// build instead of misbehaving.
template <class Tag, auto Member>
struct private_access {
  friend constexpr auto member(Tag) noexcept { return Member; }
};

using socket_base_type = asio::basic_socket<asio::ip::tcp, asio::any_io_executor>;
using descriptor_state = asio::detail::epoll_reactor::descriptor_state;

struct socket_impl_tag {
  friend constexpr auto member(socket_impl_tag) noexcept;
};
struct try_speculative_tag {
  friend constexpr auto member(try_speculative_tag) noexcept;
};
struct descriptor_mutex_tag {
  friend constexpr auto member(descriptor_mutex_tag) noexcept;
};

template struct private_access<socket_impl_tag, &socket_base_type::impl_>;
template struct private_access<try_speculative_tag, &descriptor_state::try_speculative_>;
template struct private_access<descriptor_mutex_tag, &descriptor_state::mutex_>;

}  // namespace

void mark_read_drained(asio::ip::tcp::socket& s) noexcept {
  if (!s.is_open()) return;  // no reactor state (never opened, or closed)
  socket_base_type& base = s;
  auto& impl = (base.*member(socket_impl_tag{})).get_implementation();
  descriptor_state* state = impl.reactor_data_;
  if (state == nullptr) return;
  auto& mutex = state->*member(descriptor_mutex_tag{});
  mutex.lock();
  (state->*member(try_speculative_tag{}))[asio::detail::epoll_reactor::read_op] = false;
  mutex.unlock();
}

#else

void mark_read_drained(asio::ip::tcp::socket&) noexcept {}

#endif

}  // namespace gateway::net
