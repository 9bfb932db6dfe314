#pragma once
// Runs store operations on a test-owned io_context and waits (bounded) for their callbacks.

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <evosip/store/store.hpp>

namespace evosip::test {

using namespace std::chrono_literals;

class StoreRunner {
 public:
  boost::asio::io_context io;

  // Calls op(callback) and runs the io_context until the callback ran (at most `limit`).
  // Checks the callback did not run inside the call.
  template <typename T, typename Op>
  Result<T> call(Op op, std::chrono::milliseconds limit = 5000ms) {
    std::optional<Result<T>> out;
    op([&out](Result<T> r) { out = std::move(r); });
    EXPECT_FALSE(out.has_value()) << "callback ran inside the call";
    out.reset();
    run(limit, [&] { return out.has_value(); });
    if (!out) {
      return makeError(Errc::kTimeout, "test: no callback within the limit");
    }
    return std::move(*out);
  }

  // Runs the io_context until done() or the limit.
  template <typename Done>
  bool run(std::chrono::milliseconds limit, Done done) {
    io.restart();
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_one_for(10ms);
    }
    return done();
  }

  // Pings until the store answers (the redis backend connects asynchronously).
  bool waitReady(store::Store& s, std::chrono::milliseconds limit = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = call<void>([&](auto cb) { s.ping(cb); }, 1000ms);
      if (r) {
        return true;
      }
      run(20ms, [] { return false; });
    }
    return false;
  }
};

}  // namespace evosip::test
