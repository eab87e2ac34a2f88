-- The block state machine (src/shares/block-state.ts): submitted → unconfirmed → pending → confirmed, or
-- orphaned / rejected. Every node answer is kept in block_answers. `settled` marks a status nothing can change
-- any more (the block tracker stops checking it).

ALTER TABLE blocks DROP CONSTRAINT IF EXISTS blocks_status_check;

-- Rows written before this migration: 'accepted' meant "the node answered null": the tracker re-checks the chain.
UPDATE blocks SET status = 'unconfirmed' WHERE status = 'accepted';
-- 'rejected' also held answers that are not verdicts: transport errors (the block may have won) and
-- duplicate/inconclusive. Neither is a rejection: resubmit the first, re-check the second.
UPDATE blocks SET status = 'submitted'
  WHERE status = 'rejected' AND (result IS NULL OR result LIKE 'error:%' OR result ~ '(prev-blk-not-found|time-too-new)$');
UPDATE blocks SET status = 'unconfirmed'
  WHERE status = 'rejected' AND result ~ '^(rejected: )?(duplicate|duplicate-inconclusive|inconclusive.*)$';

ALTER TABLE blocks ADD CONSTRAINT blocks_status_check
  CHECK (status IN ('submitted', 'unconfirmed', 'pending', 'confirmed', 'orphaned', 'rejected'));

ALTER TABLE blocks
  ADD COLUMN settled boolean NOT NULL DEFAULT false,
  -- When the tracker last observed the block (a status update older than this is stale and skipped).
  ADD COLUMN checked_at timestamptz,
  ADD COLUMN status_changed_at timestamptz;

UPDATE blocks SET settled = true WHERE status IN ('confirmed', 'rejected');

CREATE INDEX blocks_unsettled_idx ON blocks (height) WHERE NOT settled;

-- Every answer of every node to every submission of a block: null = accepted, a reason, or "error: …".
CREATE TABLE block_answers (
  hash      text NOT NULL,
  time      timestamptz NOT NULL,
  endpoint  text NOT NULL,
  answer    text,
  PRIMARY KEY (hash, time, endpoint)
);
