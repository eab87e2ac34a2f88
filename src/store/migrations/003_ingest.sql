-- 1. A block candidate is recorded from its share alone. The pool appends the share (block = true, with the
--    block hash) before the miner is answered, but the block event only after the node answers submitblock;
--    a crash in between used to leave no block row at all. Now the share batch inserts the row as 'submitted'
--    and the block event completes it (reward, raw block, the node's answer). Until then what only the block
--    event carries is NULL.
ALTER TABLE blocks
  ALTER COLUMN prev_hash DROP NOT NULL,
  ALTER COLUMN reward DROP NOT NULL,
  ALTER COLUMN block_hex DROP NOT NULL;

-- 2. No secondary index on shares for now: every index costs ingest throughput on the hottest table (measured:
--    the index insert is a large part of a batch). Accounting adds the index its own queries need, with them.
DROP INDEX IF EXISTS shares_account_time_idx;
