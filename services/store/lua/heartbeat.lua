-- A process's heartbeat: its state under its name, and when it beat. Processes silent for `keep`
-- seconds go, and both keys expire `keep` seconds after the last beat of any process.
-- KEYS: states seen
-- ARGV: process state now keep
-- Returns: how many processes beat within `keep` seconds.
redis.call('HSET', states, process, state)
redis.call('ZADD', seen, now, process)
local cutoff = tonumber(now) - tonumber(keep)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', seen, '-inf', cutoff)) do redis.call('HDEL', states, gone) end
redis.call('ZREMRANGEBYSCORE', seen, '-inf', cutoff)
local ms = math.ceil(tonumber(keep) * 1000)
redis.call('PEXPIRE', states, ms)
redis.call('PEXPIRE', seen, ms)
return redis.call('ZCARD', seen)
