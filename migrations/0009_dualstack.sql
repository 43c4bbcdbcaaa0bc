-- +goose Up
-- Dual-stack hosts: besides its IPv4 docker0 subnet (bip) a host may hold an IPv6 one
-- (fixed-cidr-v6) from its segment's pool6, routed via its IPv6 address. The three columns
-- are all set or all NULL (an IPv4-only host). Both subnets are written by the one INSERT that
-- records the host, so one family failing (its pool exhausted, its subnet taken) records
-- neither. As for IPv4, the database guarantees that no two live hosts hold overlapping IPv6
-- subnets or share an IPv6 address. The IPv6 allocation uses the same pools cursor and
-- free_subnets as IPv4: pool6 is just another pool.
ALTER TABLE hosts
    ADD COLUMN address6 inet,
    ADD COLUMN pool6    text,
    ADD COLUMN subnet6  cidr,
    ADD CONSTRAINT hosts_family6 CHECK (
        (address6 IS NULL) = (subnet6 IS NULL) AND (subnet6 IS NULL) = (pool6 IS NULL)
        AND (address6 IS NULL OR (family(address6) = 6 AND masklen(address6) = 128))
        AND (subnet6 IS NULL OR family(subnet6) = 6));
ALTER TABLE hosts ADD CONSTRAINT hosts_subnet6_excl
    EXCLUDE USING gist (subnet6 inet_ops WITH &&) WHERE (state <> 'removed' AND subnet6 IS NOT NULL);
CREATE UNIQUE INDEX hosts_address6_live ON hosts (address6) WHERE state <> 'removed' AND address6 IS NOT NULL;

-- A segment's IPv6 family: the network of its hosts' IPv6 addresses and its pool6. An
-- IPv6-only segment has no IPv4 hosts network (pool is then '').
ALTER TABLE segments
    ADD COLUMN hosts6 cidr,
    ADD COLUMN pool6  text NOT NULL DEFAULT '',
    ALTER COLUMN hosts DROP NOT NULL;
