-- Drop the shard's dead letters given up at or before `cutoff` (their time to live has passed).
-- KEYS: letters index reasons
-- ARGV: cutoff
-- Returns: how many went.
-- include: dead_letters
return trim_letters(letters, index, reasons, cutoff)
