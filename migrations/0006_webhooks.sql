-- +goose Up
-- One row per event per webhook (internal/events). The row and the River job that delivers it
-- are inserted in the transaction of the state change they tell of: a delivery exists if and
-- only if the change committed. Its id is the X-Returnpath-Delivery header receivers
-- deduplicate on; body is exactly what every attempt POSTs. The webhook's secret is never
-- stored: it is read from the environment at start.
CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    webhook         text NOT NULL,
    event           text NOT NULL,
    change_id       bigint REFERENCES changes (id) ON DELETE SET NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        int NOT NULL DEFAULT 0,
    -- the HTTP status of the last attempt; NULL: no answer (a timeout or a connection error)
    response_status int,
    last_error      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, id);

-- +goose Down
-- Forward-only: returnpath never migrates down.
SELECT 1;
