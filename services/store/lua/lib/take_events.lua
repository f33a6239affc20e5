-- Take a chat's Courier lock and read its first n events in the same step; nil if another
-- process holds the lock.
-- include: lock
local function take_events(lock, events, token, ms, n)
  if not take_lock(lock, token, ms) then return nil end
  return redis.call('LRANGE', events, 0, tonumber(n) - 1)
end
