// Cutting a TCP connection's bytes into SIP messages (RFC 3261 18.3, RFC 5626 keep-alives):
// deliver each complete message, answer a misframed or oversized one with 400/413 and close,
// and time out a message that stays incomplete.

#include <cstring>

#include <evosip/sip/framing.hpp>
#include <evosip/sip/response.hpp>

#include "worker_state.hpp"

namespace evosip::transport {

void WorkerState::processStream(const std::shared_ptr<TcpConnection>& c) {
  size_t offset = 0;
  uint64_t messages = 0;
  beginBatch();
  while (!c->closed && !c->closing) {
    std::string_view data(c->buffer.get() + offset, c->used - offset);
    auto framed = sip::frameStream(data, settings.maxMessageSize);
    if (!framed) {
      reject(c, offset, framed.error().code);
      break;
    }
    const sip::Frame& f = framed->frame;
    if (f.kind == sip::Frame::Kind::kNeedMore) {
      break;
    }
    if (f.kind == sip::Frame::Kind::kKeepAlive) {
      if (framed->pong) {
        stats.tcpKeepAlives.fetch_add(1, std::memory_order_relaxed);
        queueWrite(c, "\r\n");
      }
      offset += f.length;
      continue;
    }
    ++messages;
    deliver(Packet{data.substr(0, f.length), c->source});
    offset += f.length;
  }
  if (messages) {
    stats.tcpReceived.fetch_add(messages, std::memory_order_relaxed);
  }
  endBatch();
  if (c->closed || c->closing) {
    return;
  }
  if (offset > 0) {
    std::memmove(c->buffer.get(), c->buffer.get() + offset, c->used - offset);
    c->used -= offset;
  }
  notePartial(c, offset > 0);
  if (c->used == c->capacity && c->capacity > settings.maxMessageSize) {
    reject(c, 0, Errc::kTooLarge);  // cannot happen with frameStream's limits; never spin
    return;
  }
  armRead(c);
}

void WorkerState::reject(const std::shared_ptr<TcpConnection>& c, size_t offset, Errc code) {
  const bool tooLarge = code == Errc::kTooLarge;
  (tooLarge ? stats.tcpOversize : stats.tcpMisframed).fetch_add(1, std::memory_order_relaxed);
  std::string reply = sip::buildUnframedResponse(
      std::string_view(c->buffer.get() + offset, c->used - offset), tooLarge ? 413 : 400);
  if (reply.empty()) {
    closeConnection(c);
    return;
  }
  c->closing = true;
  queueWrite(c, reply);
}

void WorkerState::notePartial(const std::shared_ptr<TcpConnection>& c, bool newMessage) {
  if (c->used == 0) {
    c->partial = false;
    return;
  }
  if (c->partial && !newMessage) {
    return;  // the same message goes on: its deadline stands
  }
  c->partial = true;
  c->partialSince = steady_clock::now();
  const auto deadline = c->partialSince + settings.tcpMessageTimeout;
  if (deadline < c->timerAt) {
    armTimer(c, deadline);
  }
}

}  // namespace evosip::transport
