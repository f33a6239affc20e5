-- Take a chat's Courier lock and read its first n events in one round trip.
-- KEYS: lock events
-- ARGV: token ms n
-- Returns: nil when another process holds the lock; else the first n events (none, maybe).
-- include: take_events
return take_events(lock, events, token, ms, n)
