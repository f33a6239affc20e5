-- Let a lock go, if it is still this holder's: a holder slower than its lock must never free one
-- that another process has taken since.
-- KEYS: lock
-- ARGV: token
-- Returns: 1 let go; 0 not this holder's (expired, or taken since).
-- include: lock
if holds_lock(lock, token) then return redis.call('DEL', lock) end
return 0
