-- Put a dead letter back where it was given up from, and drop it, in one step: a letter is replayed
-- once however many operators replay it at once. An event goes back to the end of its chat's Courier
-- list, due now; a message to the end of its chat's outbox, and the process holding the chat's
-- sockets is woken with it, as outbox_queue does.
-- KEYS: letters index reasons events due order frames seq outboxes
-- ARGV: id kind payload msg_key chat now wake publish
-- (kind: 'courier' or 'outbox'; payload: the event as the Courier list stores it, or the chat_out
-- frame; msg_key: the message's key in the outbox, '' for an event)
-- Returns: 0 no such letter (replayed or dropped since); 1 queued again; 2 dropped, as its message
-- was in the outbox already.
-- include: dead_letters
if not remove_letter(letters, index, reasons, id) then return 0 end
if kind == 'courier' then
  redis.call('RPUSH', events, payload)
  redis.call('ZADD', due, 'NX', now, chat)
  return 1
end
if redis.call('HEXISTS', frames, msg_key) == 1 then return 2 end
redis.call('HSET', frames, msg_key, payload)
redis.call('ZADD', order, redis.call('INCR', seq), msg_key)
redis.call('ZADD', outboxes, 'NX', now, chat)
redis.call(publish, wake, msg_key .. '\n' .. payload)
return 1
