-- 010: constant cost as the tables grow (issue 14).  Every query a stage
-- runs per request, file or batch has an index that serves it; without
-- these, each lookup is a sequential scan whose cost grows with the table.

-- the UBRN a payload created, looked up for every HTTP request and spool
-- file answered (daemon/receive.c, daemon/stages.c): was a sequential scan
-- of referrals, half of all database time at 20,000 referrals.  With id in
-- the key, "WHERE payload_id = x ORDER BY id LIMIT 1" is one index probe
-- (not a walk of the primary key in id order until a match).
CREATE INDEX referrals_payload ON referrals (payload_id, id) WHERE payload_id IS NOT NULL;

-- the render stage's claim (outbox state 'pending', oldest first):
-- outbox_work is ordered by next_attempt_at and also holds every letter
-- ready or waiting to be delivered
CREATE INDEX outbox_pending ON outbox (id) WHERE state = 'pending';
