-- the daemon (issue 6): EPR events, pollers, metrics state
-- (reserved; filled in by that work)
SELECT 1;
