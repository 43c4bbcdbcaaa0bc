-- +goose Up
-- The fabric inventory is configured in returnpath.yaml and synced here at start so that
-- hosts and changes can reference it.
CREATE TABLE pools (
    name          text PRIMARY KEY,
    prefix        cidr NOT NULL,
    subnet_length int  NOT NULL,
    -- next_index is the allocation cursor: the index of the next never-used subnet. It is
    -- bumped in its own short statement, outside the registering transaction, so that
    -- concurrent registrations never queue behind one row lock.
    next_index    bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Subnets handed back (a registration that lost a race, a removed host) wait here for reuse.
CREATE TABLE free_subnets (
    pool   text NOT NULL REFERENCES pools (name) ON DELETE CASCADE,
    subnet cidr NOT NULL,
    PRIMARY KEY (pool, subnet)
);

CREATE TABLE segments (
    name      text PRIMARY KEY,
    hosts     cidr NOT NULL,
    pool      text NOT NULL,
    route_via jsonb NOT NULL
);

CREATE TABLE devices (
    name      text PRIMARY KEY,
    platform  text NOT NULL,
    transport text NOT NULL,
    address   text NOT NULL,
    vrf       text NOT NULL
);

CREATE TABLE hosts (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    address    inet NOT NULL,
    segment    text NOT NULL,
    pool       text NOT NULL,
    subnet     cidr NOT NULL,
    state      text NOT NULL CHECK (state IN ('pending', 'active', 'removing', 'removed')),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- The database, not the service, guarantees that no two live hosts hold overlapping
-- subnets, share a name or share an address, however many service processes run.
ALTER TABLE hosts ADD CONSTRAINT hosts_subnet_excl
    EXCLUDE USING gist (subnet inet_ops WITH &&) WHERE (state <> 'removed');
CREATE UNIQUE INDEX hosts_name_live ON hosts (name) WHERE state <> 'removed';
CREATE UNIQUE INDEX hosts_address_live ON hosts (address) WHERE state <> 'removed';
CREATE INDEX hosts_state_name ON hosts (state, name) WHERE state <> 'removed';
CREATE INDEX hosts_segment_name ON hosts (segment, name) WHERE state <> 'removed';

CREATE TABLE tokens (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    role       text NOT NULL CHECK (role IN ('viewer', 'bootstrap', 'reviewer', 'admin')),
    hash       bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE TABLE audit (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL,
    actor   text NOT NULL,
    action  text NOT NULL,
    object  text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}'
);

-- +goose Down
-- Forward-only: returnpath never migrates down.
SELECT 1;
