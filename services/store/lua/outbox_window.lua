-- A chat's first entries in order.
-- KEYS: order frames
-- ARGV: size
-- Returns: {msg_key, frame, msg_key, frame, ...}, at most `size` pairs.
local ids = redis.call('ZRANGE', order, 0, tonumber(size) - 1)
if #ids == 0 then return {} end
local found = redis.call('HMGET', frames, unpack(ids))
local out = {}
for i, id in ipairs(ids) do
  if found[i] then out[#out + 1] = id; out[#out + 1] = found[i] end
end
return out
