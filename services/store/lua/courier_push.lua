-- Append an event for Courier and make sure the chat is on its shard's due set, without moving a
-- backoff forward.
-- KEYS: events due attempts
-- ARGV: event score chat
-- Returns: the chat's failed posts in a row; nil when it is not backing off.
redis.call('RPUSH', events, event)
redis.call('ZADD', due, 'NX', score, chat)
return redis.call('GET', attempts)
