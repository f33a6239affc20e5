-- Take a lock unless another holder has it.
-- KEYS: lock
-- ARGV: token ms
-- Returns: 1 taken; 0 another holder has it.
-- include: lock
if take_lock(lock, token, ms) then return 1 end
return 0
