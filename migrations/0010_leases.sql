-- +goose Up
-- Host leases (leases: in returnpath.yaml). Only the renewal time is stored: the expiry is
-- renewal + leases.ttl, so a reload that changes the ttl applies to every host at once.
-- Hosts registered before this migration count as renewed now, so that turning leases on
-- later never reaps a fleet whose renewal timer was running all along. (The default is the
-- migration's time for existing rows; the registry always sets the column from its clock.)
ALTER TABLE hosts ADD COLUMN lease_renewed_at timestamptz NOT NULL DEFAULT now();
-- "Live hosts past expiry" (the reaper, GET /v1/hosts?stale=true, returnpath_hosts_stale) is
-- a range scan of this index: renewed before now - ttl - grace, among pending and active
-- hosts only. Removed hosts, the bulk of the table over time, are not in it.
CREATE INDEX hosts_lease_renewed ON hosts (lease_renewed_at) WHERE state IN ('pending', 'active');

-- +goose Down
-- Forward-only: returnpath never migrates down.
SELECT 1;
