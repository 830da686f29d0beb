-- e-RS client state (issue 4): budgets, outcome intents, attachment fetches
-- (reserved; filled in by that work)
SELECT 1;
