#pragma once
// The Lua scripts of the redis backend: each runs atomically on the server, so several routers
// writing the same AoR, call or nonce never interleave.

namespace evosip::store::detail {

// Upserts one field of a hash of records (bindings of an AoR, dialogs of a call) whose values
// are JSON objects with "expires" (ms since the epoch), drops the fields that have expired and
// sets the key's TTL to the latest expiry: the key lives exactly as long as its last record.
// KEYS[1] hash, ARGV[1] field, ARGV[2] value, ARGV[3] the writer's clock (ms since the epoch).
// Relative PEXPIRE, so the server's clock does not matter. Returns the fields left.
inline constexpr const char* kPutScript = R"lua(
local now = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local latest = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ok, v = pcall(cjson.decode, all[i + 1])
  local e = nil
  if ok and type(v) == 'table' then e = tonumber(v['expires']) end
  if e == nil or e <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif e > latest then
    latest = e
  end
end
if latest > now then
  redis.call('PEXPIRE', KEYS[1], latest - now)
end
return redis.call('HLEN', KEYS[1])
)lua";

// Digest nonce-count check-and-set. KEYS[1] nonce key, ARGV[1] nc, ARGV[2] TTL in ms.
inline constexpr const char* kNonceScript = R"lua(
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > last then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
)lua";

// Compare-and-set of a value: written when the key is absent or holds one of the expected
// values. KEYS[1] value key, ARGV[1] value, ARGV[2] TTL in ms, ARGV[3..] the expected values.
inline constexpr const char* kPutIfScript = R"lua(
local cur = redis.call('GET', KEYS[1])
if cur then
  local match = false
  for i = 3, #ARGV do
    if cur == ARGV[i] then match = true break end
  end
  if not match then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
)lua";

}  // namespace evosip::store::detail
