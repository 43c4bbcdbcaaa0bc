-- +goose Up
-- Hosts of IPv6-only segments (hosts6 and pool6, no hosts or pool) have no IPv4 family: no
-- address, subnet or pool. Like the IPv6 family (hosts_family6), the IPv4 one is now all set
-- or all NULL, and a host holds at least one complete family, so that every live host still
-- has a subnet routed via an address of its own.
--
-- The constraints that keep hosts apart need no change: the unique index on address and the
-- exclusion constraint on subnet never match a NULL (NULL = NULL and NULL && x are not true),
-- so any number of IPv6-only hosts coexist while two live hosts still never share an IPv4
-- address or overlap an IPv4 subnet. Readers coalesce pool to '' as they do pool6.
ALTER TABLE hosts
    ALTER COLUMN address DROP NOT NULL,
    ALTER COLUMN subnet  DROP NOT NULL,
    ALTER COLUMN pool    DROP NOT NULL,
    ADD CONSTRAINT hosts_family4 CHECK (
        (address IS NULL) = (subnet IS NULL) AND (subnet IS NULL) = (pool IS NULL)),
    ADD CONSTRAINT hosts_some_family CHECK (address IS NOT NULL OR address6 IS NOT NULL);

-- +goose Down
-- Forward-only: returnpath never migrates down.
SELECT 1;
