-- Writes to a 1-hour prompt cache are billed at their own rate; the call table
-- keeps them apart from 5-minute writes. Task totals fold both into cache_write_tokens.

ALTER TABLE calls ADD COLUMN IF NOT EXISTS cache_write_1h_tokens UInt64 DEFAULT 0 AFTER cache_write_tokens;
