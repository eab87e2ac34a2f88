-- Hashrate routing (issue 12): a route may take only a hashrate amount from its workers (sessions by the pool's
-- vardiff estimate, current members first). NULL: all of its workers. (020 is already applied where routing was
-- merged: a column added later is its own migration.)
ALTER TABLE routes ADD COLUMN hashrate double precision;
