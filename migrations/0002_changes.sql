-- +goose Up
-- A change is a reviewed set of route ops for the devices on a host's return path.
CREATE TABLE changes (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('add', 'remove', 'remediate')),
    status       text NOT NULL CHECK (status IN ('pending', 'approved', 'applying', 'applied', 'rejected', 'failed', 'rolled_back')),
    host_id      bigint REFERENCES hosts (id),
    requested_by text NOT NULL,
    approved_by  text,
    reason       text,
    plan_hash    text NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX changes_status_id ON changes (status, id);
CREATE INDEX changes_host_id ON changes (host_id, id);

CREATE TABLE change_ops (
    id        bigserial PRIMARY KEY,
    change_id bigint NOT NULL REFERENCES changes (id) ON DELETE CASCADE,
    seq       int NOT NULL,
    stage     int NOT NULL,
    rollback  boolean NOT NULL DEFAULT false,
    device    text NOT NULL,
    action    text NOT NULL CHECK (action IN ('add', 'delete')),
    prefix    cidr NOT NULL,
    next_hop  inet NOT NULL,
    vrf       text NOT NULL,
    preview   text NOT NULL,
    status    text NOT NULL CHECK (status IN ('pending', 'applied', 'failed', 'rolled_back', 'skipped')),
    attempts  int NOT NULL DEFAULT 0,
    -- when the device first could not be reached for this op: the retry deadline counts from here
    first_error_at timestamptz,
    error     text,
    output    text,
    updated_at timestamptz NOT NULL
);
CREATE INDEX change_ops_change ON change_ops (change_id, seq);
-- The apply engine's work queue per device: pending ops only.
CREATE INDEX change_ops_pending ON change_ops (device, change_id) WHERE status = 'pending';

CREATE TABLE change_events (
    id        bigserial PRIMARY KEY,
    change_id bigint NOT NULL REFERENCES changes (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL,
    what      text NOT NULL,
    detail    text NOT NULL DEFAULT ''
);
CREATE INDEX change_events_change ON change_events (change_id, id);

-- +goose Down
SELECT 1;
