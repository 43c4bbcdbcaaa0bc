-- +goose Up
-- Tokens carry who answers for them and which segments they may change hosts in.
-- owner: the person behind the token (required for reviewer and admin tokens by the service;
-- NULL for tokens made before owners existed, whose name then stands in for it).
ALTER TABLE tokens ADD COLUMN owner text;
-- segments: the segments whose hosts a bootstrap token may register and remove; NULL means
-- every segment. An empty list would lock the token out of everything: say NULL instead.
ALTER TABLE tokens ADD COLUMN segments text[];
ALTER TABLE tokens ADD CONSTRAINT tokens_segments_not_empty CHECK (segments IS NULL OR cardinality(segments) > 0);

-- The four-eyes rule compares who answers for the requesting and the approving token, not
-- their names: the requester's owner (or its token name, without one) is recorded with the
-- change. Changes filed before it are attributed to their token's name.
ALTER TABLE changes ADD COLUMN requested_owner text;
UPDATE changes SET requested_owner = requested_by;
ALTER TABLE changes ALTER COLUMN requested_owner SET NOT NULL;

-- limits.pending_per_segment counts a segment's pending hosts at each registration.
CREATE INDEX hosts_segment_pending ON hosts (segment) WHERE state = 'pending';

-- +goose Down
-- Forward-only: returnpath never migrates down.
SELECT 1;
