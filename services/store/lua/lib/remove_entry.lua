-- Remove a message from a chat's outbox, and the chat from its shard's index once the outbox is
-- empty; false when the outbox had no such message (acked already, or unknown).
local function remove_entry(order, frames, outboxes, msg_key, chat)
  if redis.call('HDEL', frames, msg_key) == 0 then return false end
  redis.call('ZREM', order, msg_key)
  if redis.call('ZCARD', order) == 0 then redis.call('ZREM', outboxes, chat) end
  return true
end
