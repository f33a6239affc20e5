-- A dead letter leaves its shard's hash, its shard's index and its reason's count
-- (services/store/deadletters.py); false if there was no such letter. Its channel's index keeps the
-- ID (a key the caller need not name): readers skip it, and the channel's next letters trim it.
local function remove_letter(letters, index, reasons, id)
  redis.call('ZREM', index, id)
  local letter = redis.call('HGET', letters, id)
  if not letter then return false end
  redis.call('HDEL', letters, id)
  local reason = cjson.decode(letter).reason
  if redis.call('HINCRBY', reasons, reason, -1) <= 0 then redis.call('HDEL', reasons, reason) end
  return true
end

-- The shard's letters given up at or before `cutoff` go; how many did.
local function trim_letters(letters, index, reasons, cutoff)
  local gone = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', cutoff)) do
    if remove_letter(letters, index, reasons, id) then gone = gone + 1 end
  end
  return gone
end
