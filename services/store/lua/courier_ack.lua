-- A message leaves its chat's outbox and its status is queued for Courier in the same step, so an
-- ack is never half done. With a token, also take the chat's Courier lock and read its first n
-- events, saving the poster a round trip.
-- KEYS: order frames outboxes events due lock
-- ARGV: msg_key chat status score token ms n
-- (status: the msg_status event as stored; score: when the chat falls due; token: '' for no lock)
-- Returns: {0} the outbox had no such message; {1} removed (no lock asked, or another process
-- holds it); {1, event, ...} removed, and the lock taken with the chat's first n events.
-- include: remove_entry take_events
if not remove_entry(order, frames, outboxes, msg_key, chat) then return {0} end
redis.call('RPUSH', events, status)
redis.call('ZADD', due, 'NX', score, chat)
local taken = token ~= '' and take_events(lock, events, token, ms, n)
if not taken then return {1} end
table.insert(taken, 1, 1)
return taken
