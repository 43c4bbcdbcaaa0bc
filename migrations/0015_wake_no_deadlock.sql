-- +goose Up
-- returnpath_wake (0004) could deadlock two registrations. One that found a device's job queued
-- share-locks the device's row so that the job cannot begin before the registration commits.
-- When the job began (cleared the flag) while that SELECT ... FOR SHARE waited for it, the
-- SELECT locked the newer row version, found that it no longer matched (job_queued false) and
-- returned nothing, but kept the lock. The loop then updates the row to queue a new job; two
-- registrations in that state each waited for the other's share lock, and PostgreSQL's deadlock
-- detector failed one of them after deadlock_timeout (the host got a 500).
--
-- The share lock is now taken in a block of its own that raises when the row did not match:
-- leaving the block by an error rolls back its subtransaction, and with it any lock the SELECT
-- took (PostgreSQL documents this for PL/pgSQL exception blocks and savepoints). A registration
-- thus holds a share lock only on a row whose flag it saw set, and never upgrades one.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION returnpath_wake(devs text[]) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    d text;
    held boolean;
BEGIN
    FOR d IN SELECT DISTINCT u FROM unnest(devs) AS u ORDER BY 1 LOOP
        LOOP
            UPDATE device_schedule s SET job_queued = true, queued_at = now() WHERE s.device = d AND NOT s.job_queued;
            IF FOUND THEN
                RETURN NEXT d;
                EXIT;
            END IF;
            BEGIN
                PERFORM 1 FROM device_schedule s WHERE s.device = d AND s.job_queued FOR SHARE;
                held := FOUND;
                IF NOT held THEN
                    RAISE SQLSTATE 'RPW01'; -- gives back a lock the SELECT took on a row it did not return
                END IF;
            EXCEPTION WHEN SQLSTATE 'RPW01' THEN
                held := false;
            END;
            EXIT WHEN held;
            INSERT INTO device_schedule (device) VALUES (d) ON CONFLICT DO NOTHING;
        END LOOP;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
SELECT 1;
