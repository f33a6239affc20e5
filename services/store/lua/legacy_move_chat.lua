-- Move one chat from the earlier key layout (one server, global indexes; services/store/legacy.py)
-- to today's. Its waiting messages keep their order and go after any the new layout queued for it
-- meanwhile; its Courier events go before the new layout's, since they are older. The earlier
-- layout's keys carry no hash tag: it never ran on a cluster, and neither does this script.
-- KEYS: order frames email events lock outboxes due attempts n_order n_frames n_seq n_outboxes n_email n_events n_due n_attempts
-- ARGV: chat now
-- Returns: 1 all of the chat moved; 0 its Courier events wait for an old process's post to end.
local ids = redis.call('ZRANGE', order, 0, -1)
if #ids > 0 then
  local oldest = redis.call('ZSCORE', outboxes, chat) or now
  for _, id in ipairs(ids) do
    local frame = redis.call('HGET', frames, id)
    if frame and redis.call('HEXISTS', n_frames, id) == 0 then
      redis.call('HSET', n_frames, id, frame)
      redis.call('ZADD', n_order, redis.call('INCR', n_seq), id)
    end
  end
  redis.call('ZADD', n_outboxes, 'NX', oldest, chat)
end
redis.call('DEL', order, frames)
redis.call('ZREM', outboxes, chat)
if redis.call('EXISTS', email) == 1 then
  local ttl = redis.call('PTTL', email)
  if redis.call('EXISTS', n_email) == 0 then
    if ttl > 0 then
      redis.call('SET', n_email, redis.call('GET', email), 'PX', ttl)
    else
      redis.call('SET', n_email, redis.call('GET', email))
    end
  end
  redis.call('DEL', email)
end
if redis.call('LLEN', events) == 0 then
  redis.call('ZREM', due, chat)
  redis.call('HDEL', attempts, chat)
  return 1
end
if redis.call('EXISTS', lock) == 1 then return 0 end
local queued = redis.call('LRANGE', events, 0, -1)
for i = #queued, 1, -1 do redis.call('LPUSH', n_events, queued[i]) end
redis.call('ZADD', n_due, 'NX', now, chat)
local failed = redis.call('HGET', attempts, chat)
if failed then redis.call('SET', n_attempts, failed) end
redis.call('DEL', events)
redis.call('ZREM', due, chat)
redis.call('HDEL', attempts, chat)
return 1
