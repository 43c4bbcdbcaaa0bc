-- +goose Up
-- One row per device: the apply engine's retry schedule and its "a job is queued" flag, shared
-- by every service process, so that a device is retried on one backoff however many changes
-- and processes want it, and never has more than one apply job waiting.
CREATE TABLE device_schedule (
    device          text PRIMARY KEY,
    -- true while an apply job for the device is queued and has not started its work yet;
    -- whoever sets it inserts that job, in the same transaction.
    job_queued      boolean NOT NULL DEFAULT false,
    -- when the flag was last set, or confirmed by a job that waits out the device's backoff:
    -- the kicker repairs only a flag older than a grace period (see WakeDevicesWithWork)
    queued_at       timestamptz,
    -- consecutive sessions that could not reach the device, and when the next may try
    failures        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text,
    -- a session sent lines whose outcome is unknown (it timed out or lost the connection):
    -- the device may still be working through them, so the next session reads it twice and
    -- sends nothing until two readings agree
    unsettled       boolean NOT NULL DEFAULT false
);

-- +goose StatementBegin
-- returnpath_wake returns the devices of devs for which the caller must queue an apply job
-- (it set their job_queued flag). For the others
-- a job is already queued and has not started: the function holds a share lock on their row
-- until the caller commits, so that this job cannot start (it clears the flag first) before
-- the caller's ops are committed and visible to it. Share locks do not block each other:
-- concurrent registrations never queue behind one another here.
CREATE FUNCTION returnpath_wake(devs text[]) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    FOR d IN SELECT DISTINCT u FROM unnest(devs) AS u ORDER BY 1 LOOP
        LOOP
            UPDATE device_schedule s SET job_queued = true, queued_at = now() WHERE s.device = d AND NOT s.job_queued;
            IF FOUND THEN
                RETURN NEXT d;
                EXIT;
            END IF;
            PERFORM 1 FROM device_schedule s WHERE s.device = d AND s.job_queued FOR SHARE;
            EXIT WHEN FOUND;
            INSERT INTO device_schedule (device) VALUES (d) ON CONFLICT DO NOTHING;
        END LOOP;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
SELECT 1;
