-- Rate-limit counters (0050) as an UNLOGGED table: every request of a key bumps the key's one row,
-- and on a logged table each bump held that row's lock until its commit was flushed to disk, so a
-- key's requests went one per fsync. An update of an unlogged table writes no WAL, so its commit
-- does not wait for a flush. The price: a crash (not a clean restart) resets the counters, which
-- lets through at most one window's worth of extra requests.
ALTER TABLE partner_rate_windows SET UNLOGGED;
