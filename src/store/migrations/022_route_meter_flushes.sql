-- Each flush of a stratum process's route meter, by its id. A flush is retried after an error, and an error can
-- hide a commit (a reply lost, a timeout after COMMIT): the retry finds its id here and adds nothing again, so no
-- routed work is billed twice. Rows older than a week are pruned by the flushes themselves.
CREATE TABLE route_meter_flushes (
  node      text NOT NULL,
  flush_id  text NOT NULL,
  at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node, flush_id)
);
CREATE INDEX route_meter_flushes_age ON route_meter_flushes (node, at);
