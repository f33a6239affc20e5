-- Drop one dead letter (an operator's `chip.py admin dead-letters drop`).
-- KEYS: letters index reasons
-- ARGV: id
-- Returns: 1 dropped; 0 no such letter.
-- include: dead_letters
if remove_letter(letters, index, reasons, id) then return 1 end
return 0
