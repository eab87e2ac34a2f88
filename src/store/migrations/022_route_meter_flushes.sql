-- Each flush of a stratum process's route meter, by its id (a UUID; `node` is the process that wrote it, for
-- reading). A flush is retried after an error, and an error can hide a commit (a reply lost, a timeout after
-- COMMIT); a process also sends again, at its next start, the flushes its journal holds past its checkpoint. The
-- retry finds its id here and adds nothing again, so no routed work is billed twice. Rows older than a week are
-- pruned by each node's flushes; the journal does not send a flush that old again.
CREATE TABLE route_meter_flushes (
  flush_id  text PRIMARY KEY,
  node      text NOT NULL,
  at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX route_meter_flushes_age ON route_meter_flushes (node, at);
