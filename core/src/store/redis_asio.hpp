#pragma once
// Drives a hiredis redisAsyncContext from an Asio executor: hiredis' event hooks (addRead,
// delRead, addWrite, delWrite, cleanup) become async_wait calls on a stream_descriptor that
// borrows the context's socket.

#include <boost/asio/any_io_executor.hpp>

struct redisAsyncContext;

namespace evosip::store::detail {

// Attaches the context to the executor; call right after redisAsyncConnect, before setting the
// connect callback. The adapter detaches itself when hiredis frees the context.
void attachToAsio(redisAsyncContext* context, const boost::asio::any_io_executor& executor);

}  // namespace evosip::store::detail
