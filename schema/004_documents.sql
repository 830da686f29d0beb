-- outbound documents (issue 5): outbox, deliveries, MESH tracking
-- (reserved; filled in by that work)
SELECT 1;
