-- A lock is a key set NX PX to a token only its holder knows (services/store/lock.py): it expires
-- if the holder crashes, and only its holder lets it go or renews it.
local function take_lock(lock, token, ms)
  return redis.call('SET', lock, token, 'NX', 'PX', ms)
end

local function holds_lock(lock, token)
  return redis.call('GET', lock) == token
end
