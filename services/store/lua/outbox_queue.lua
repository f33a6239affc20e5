-- Queue a chat_out frame for a chat, and wake whichever process holds the chat's sockets with the
-- message itself ("<msg_key>\n<frame>"), so that it can push it without reading the outbox back.
-- The chat enters its shard's outbox index (by when its oldest message was queued) if new there.
-- KEYS: order frames seq outboxes
-- ARGV: msg_key frame wake now chat most publish
-- (wake: the chat's wake channel; most: the outbox limit; publish: PUBLISH, or SPUBLISH where the
-- server has sharded pub/sub)
-- Returns: 1 queued; 0 already queued (Courier may post a message twice); -1 the outbox holds `most`.
if redis.call('ZCARD', order) >= tonumber(most) then
  if redis.call('HEXISTS', frames, msg_key) == 1 then return 0 end
  return -1
end
if redis.call('HSETNX', frames, msg_key, frame) == 0 then return 0 end
redis.call('ZADD', order, redis.call('INCR', seq), msg_key)
redis.call('ZADD', outboxes, 'NX', now, chat)
redis.call(publish, wake, msg_key .. '\n' .. frame)
return 1
