#include <array>
#include <atomic>
#include <cstring>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <evosip/base/base64url.hpp>
#include <evosip/base/hash.hpp>
#include <evosip/edge/flow_token.hpp>

namespace evosip::edge {
namespace {

constexpr size_t kMacLen = 8;
// Layout: proto(1) family(1: 4|6) ip(4|16) port(2) worker(2) seq(4) mac(8)
size_t pack(const transport::Destination& d, unsigned char* buf) {
  size_t n = 0;
  buf[n++] = static_cast<unsigned char>(d.protocol);
  if (d.remote.ip.is_v6()) {
    buf[n++] = 6;
    auto b = d.remote.ip.to_v6().to_bytes();
    std::memcpy(buf + n, b.data(), 16);
    n += 16;
  } else {
    buf[n++] = 4;
    auto b = d.remote.ip.to_v4().to_bytes();
    std::memcpy(buf + n, b.data(), 4);
    n += 4;
  }
  buf[n++] = static_cast<unsigned char>(d.remote.port >> 8);
  buf[n++] = static_cast<unsigned char>(d.remote.port & 0xff);
  buf[n++] = static_cast<unsigned char>(d.connection.worker >> 8);
  buf[n++] = static_cast<unsigned char>(d.connection.worker & 0xff);
  for (int s = 24; s >= 0; s -= 8) {
    buf[n++] = static_cast<unsigned char>((d.connection.seq >> s) & 0xff);
  }
  return n;
}

// Signing and checking a token cost an HMAC-SHA256 each, and the same tokens come back again and
// again: every request of a dialog carries its token, every call of a client's flow gets the
// same one. Each thread remembers the last pairs (token, packed flow) it made or verified, per
// codec; a hit skips the HMAC. Only a token whose MAC was checked or made here is remembered.
constexpr size_t kMaxBody = 26;   // proto, family, IPv6, port, worker, seq
constexpr size_t kMaxToken = 48;  // base64url of kMaxBody + kMacLen bytes
constexpr size_t kMemoSlots = 512;

struct MemoSlot {
  uint64_t codec = 0;
  uint8_t bodyLen = 0;
  uint8_t tokenLen = 0;
  unsigned char body[kMaxBody];
  char token[kMaxToken];
};

struct TokenMemo {
  std::array<MemoSlot, kMemoSlots> byToken;
  std::array<MemoSlot, kMemoSlots> byBody;
};

TokenMemo& memo() {
  thread_local std::unique_ptr<TokenMemo> m = std::make_unique<TokenMemo>();
  return *m;
}

void remember(MemoSlot& slot, uint64_t codec, const unsigned char* body, size_t bodyLen,
              std::string_view token) {
  if (bodyLen > kMaxBody || token.size() > kMaxToken) {
    return;
  }
  slot.codec = codec;
  slot.bodyLen = static_cast<uint8_t>(bodyLen);
  slot.tokenLen = static_cast<uint8_t>(token.size());
  std::memcpy(slot.body, body, bodyLen);
  std::memcpy(slot.token, token.data(), token.size());
}

std::atomic<uint64_t> gCodecs{0};

}  // namespace

FlowTokenCodec::FlowTokenCodec(std::string_view secret) : id_(++gCodecs) {
  std::array<unsigned char, 32> key{};
  if (secret.empty()) {
    if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
      throw std::runtime_error("cannot draw a random flow-token secret");
    }
  } else {
    SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), key.data());
  }
  hmac_ = std::make_shared<const auth::HmacSha256>(
      std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
  OPENSSL_cleanse(key.data(), key.size());
}

namespace {

std::string_view bytes(const unsigned char* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

}  // namespace

void FlowTokenCodec::encode(const transport::Destination& flow, std::string& out) const {
  unsigned char buf[64];
  size_t n = pack(flow, buf);
  MemoSlot& slot = memo().byBody[hash64(bytes(buf, n), id_) % kMemoSlots];
  if (slot.codec == id_ && slot.bodyLen == n && std::memcmp(slot.body, buf, n) == 0) {
    out.append(slot.token, slot.tokenLen);
    return;
  }
  const auto mac = hmac_->sign({bytes(buf, n)});
  std::memcpy(buf + n, mac.data(), kMacLen);
  const size_t before = out.size();
  base64urlEncode(buf, n + kMacLen, out);
  remember(slot, id_, buf, n, std::string_view(out).substr(before));
}

std::optional<transport::Destination> FlowTokenCodec::decode(std::string_view token) const {
  if (token.size() > 80) {
    return std::nullopt;
  }
  MemoSlot& slot = memo().byToken[hash64(token, id_) % kMemoSlots];
  if (slot.codec == id_ && slot.tokenLen == token.size() &&
      CRYPTO_memcmp(slot.token, token.data(), token.size()) == 0) {
    return unpack(slot.body);
  }
  unsigned char buf[64];
  int len = base64urlDecode(token, buf, sizeof buf);
  if (len < 2) {
    return std::nullopt;
  }
  const size_t ipLen = buf[1] == 6 ? 16 : (buf[1] == 4 ? 4 : 0);
  const size_t bodyLen = 2 + ipLen + 2 + 2 + 4;
  if (ipLen == 0 || static_cast<size_t>(len) != bodyLen + kMacLen || buf[0] > 4) {
    return std::nullopt;
  }
  const auto mac = hmac_->sign({bytes(buf, bodyLen)});
  if (CRYPTO_memcmp(mac.data(), buf + bodyLen, kMacLen) != 0) {
    return std::nullopt;
  }
  remember(slot, id_, buf, bodyLen, token);
  return unpack(buf);
}

// The flow of a checked body: proto(1) family(1) ip(4|16) port(2) worker(2) seq(4).
transport::Destination FlowTokenCodec::unpack(const unsigned char* buf) {
  const size_t ipLen = buf[1] == 6 ? 16 : 4;
  transport::Destination d;
  d.protocol = static_cast<transport::Protocol>(buf[0]);
  size_t p = 2;
  if (ipLen == 16) {
    boost::asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), buf + p, 16);
    d.remote.ip = boost::asio::ip::address_v6(b);
  } else {
    boost::asio::ip::address_v4::bytes_type b;
    std::memcpy(b.data(), buf + p, 4);
    d.remote.ip = boost::asio::ip::address_v4(b);
  }
  p += ipLen;
  d.remote.port = static_cast<uint16_t>((buf[p] << 8) | buf[p + 1]);
  p += 2;
  d.connection.worker = static_cast<uint32_t>((buf[p] << 8) | buf[p + 1]);
  p += 2;
  d.connection.seq =
      (static_cast<uint32_t>(buf[p]) << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3];
  return d;
}

}  // namespace evosip::edge
