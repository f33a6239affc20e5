-- Keep what chip gave up as dead letters: each of `docs` (letters as JSON objects, one a line,
-- without their ID) gets the shard's next ID and goes into the shard's hash, the shard's index by
-- time and its channel's index. Then the shard's letters older than `ttl` go, and the oldest past
-- the bounds: `most_per_channel` of the channel (IDs of its letters dropped since go first and count
-- for nothing), then `most` of the shard. Every key expires `ttl` after the last letter.
-- KEYS: letters index channel_letters reasons seq
-- ARGV: shard reason docs now ttl most most_per_channel
-- Returns: {letters dropped by the bounds, the new IDs...}
-- include: dead_letters
local added = {0}
for doc in string.gmatch(docs, '[^\n]+') do
  local id = shard .. '-' .. redis.call('INCR', seq)
  redis.call('HSET', letters, id, '{"id":"' .. id .. '",' .. string.sub(doc, 2))
  redis.call('ZADD', index, now, id)
  redis.call('ZADD', channel_letters, now, id)
  added[#added + 1] = id
end
redis.call('HINCRBY', reasons, reason, #added - 1)
local cutoff = tonumber(now) - tonumber(ttl)
trim_letters(letters, index, reasons, cutoff)
redis.call('ZREMRANGEBYSCORE', channel_letters, '-inf', cutoff)
while redis.call('ZCARD', channel_letters) > tonumber(most_per_channel) do
  local oldest = redis.call('ZPOPMIN', channel_letters)[1]
  if remove_letter(letters, index, reasons, oldest) then added[1] = added[1] + 1 end
end
while redis.call('ZCARD', index) > tonumber(most) do
  local oldest = redis.call('ZPOPMIN', index)[1]
  if remove_letter(letters, index, reasons, oldest) then added[1] = added[1] + 1 end
end
local ms = math.ceil(tonumber(ttl) * 1000)
for _, key in ipairs({letters, index, channel_letters, reasons}) do redis.call('PEXPIRE', key, ms) end
return added
