"""`make demo` (python -m demo): chip end to end on one machine, with embedded PostgreSQL and
Redis, a Courier simulator with a small bot, and a chat page served by chip in demo mode."""
