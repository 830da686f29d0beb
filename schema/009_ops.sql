-- 009: operations (issue 15).
--
-- 1. A superseded e-RS worklist stub never stands for its referral: a form
--    that arrives on its own attaches to the version e-RS serves (the
--    newest row that is not 'superseded'), not to a newer worklist stub
--    that A005 never returned.
CREATE OR REPLACE FUNCTION ras_store_form(p_ubrn text, p_form jsonb, p_payload bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT id INTO v_id FROM referrals WHERE ubrn = p_ubrn
     ORDER BY (state = 'superseded'), version DESC LIMIT 1 FOR UPDATE;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'no stored referral with UBRN %', p_ubrn USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE referrals SET doc = jsonb_set(doc, '{form}', p_form), updated_at = now() WHERE id = v_id;
    PERFORM ras_store_referral_parts(v_id, jsonb_build_object('form', p_form));
    INSERT INTO events (referral_id, ubrn, payload_id, kind, actor)
    VALUES (v_id, p_ubrn, p_payload, 'form-received', 'rasd');
    RETURN v_id;
END $$;

-- 2. Liveness for `rasctl status`: the heartbeat interval each rasd runs
--    with (a process is "running" while its last heartbeat is younger than
--    two intervals) and the database backend of its connection (a rasd
--    killed with SIGKILL drops its connection at once, so its backend is
--    gone from pg_stat_activity long before the heartbeat goes stale).
ALTER TABLE daemon_instances ADD COLUMN heartbeat_seconds int, ADD COLUMN backend_pid int;

-- What `rasctl status` shows: running while not stopped, the last heartbeat
-- younger than two intervals (plus 5 s of slack; 90 s for a rasd that did
-- not record its interval), and its database backend alive.
CREATE VIEW daemon_instances_live AS
SELECT i.*,
       i.stopped_at IS NULL
       AND i.heartbeat_at > now() - make_interval(secs => 2 * coalesce(i.heartbeat_seconds, 90) + 5)
       AND (i.backend_pid IS NULL
            OR EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = i.backend_pid)) AS running
  FROM daemon_instances i;
