// Network helpers shared by the C++ tests.
#pragma once

#include <cstdint>

namespace medius::testing {

// A 127.0.0.1 port that is free for both TCP and UDP right now (SIP listens on both).
// Chosen at random below the kernel's ephemeral range (32768-60999), so that client
// sockets opened by the tests (gRPC, redis, SIP clients) never take it before the server
// under test binds it, and parallel test processes rarely pick the same one. Throws
// std::runtime_error when none is found.
std::uint16_t freeLoopbackPort();

}  // namespace medius::testing
