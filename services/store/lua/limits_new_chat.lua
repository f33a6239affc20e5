-- Count a new chat from one address on one channel, in a window that starts with the first.
-- KEYS: counter
-- ARGV: window
-- Returns: {count in the window, seconds left of it}.
local count = redis.call('INCR', counter)
if count == 1 then redis.call('EXPIRE', counter, window) end
return {count, redis.call('TTL', counter)}
