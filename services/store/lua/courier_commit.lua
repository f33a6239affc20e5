-- Drop the first `handled` events once Courier has them, if this poster still holds the lock; let
-- the lock go when none are left (saving a round trip), else renew it for the next post, so that a
-- long drain never lets another process post the same events.
-- KEYS: events due attempts lock
-- ARGV: handled chat token ms
-- Returns: how many events are left; -1 when the lock was lost (nothing was dropped).
-- include: lock
if not holds_lock(lock, token) then return -1 end
redis.call('LTRIM', events, tonumber(handled), -1)
redis.call('DEL', attempts)
local left = redis.call('LLEN', events)
if left == 0 then
  redis.call('ZREM', due, chat)
  redis.call('DEL', lock)
else
  redis.call('PEXPIRE', lock, ms)
end
return left
