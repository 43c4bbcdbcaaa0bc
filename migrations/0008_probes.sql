-- +goose Up
-- Return-path probes the Docker hosts report (POST /v1/hosts/{name}/probes): packets sent
-- from the host's docker0 gateway address to a target outside the fabric, and whether any
-- reply came back. The newest per host is shown with it and judged by verify with probes;
-- older ones stay as history, trimmed by the service to the newest few per host.
CREATE TABLE host_probes (
    id          bigserial PRIMARY KEY,
    host_id     bigint NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    target      inet NOT NULL,
    port        int NOT NULL CHECK (port BETWEEN 0 AND 65535), -- 0: ICMP echo
    source      inet NOT NULL,
    result      text NOT NULL CHECK (result IN ('ok', 'failed')),
    sent        int NOT NULL CHECK (sent > 0),
    received    int NOT NULL CHECK (received BETWEEN 0 AND sent),
    rtt_us      bigint NOT NULL CHECK (rtt_us >= 0),
    probed_at   timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    recorded_by text NOT NULL
);
CREATE INDEX host_probes_host_newest ON host_probes (host_id, id DESC);

-- +goose Down
-- Forward-only: returnpath never migrates down.
SELECT 1;
