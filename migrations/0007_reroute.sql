-- +goose Up
-- A reroute change moves the routes of a segment's live hosts from the segment's old return
-- path to its new one after the inventory changed (a reload, or a start with an edited file).
-- It has no host but a segment.
ALTER TABLE changes DROP CONSTRAINT changes_kind_check;
ALTER TABLE changes ADD CONSTRAINT changes_kind_check CHECK (kind IN ('add', 'remove', 'remediate', 'reroute'));
ALTER TABLE changes ADD COLUMN segment text;
-- Set right after the insert, in the same transaction (the insert is shared with other kinds).
ALTER TABLE changes ADD CONSTRAINT changes_segment_reroute CHECK (segment IS NULL OR kind = 'reroute');
-- At most one unfinished reroute per segment: a second would be planned from a path the
-- devices do not hold yet. The service checks this under the inventory lock and refuses the
-- reload; the index makes a duplicate impossible even if two processes raced past the lock,
-- so that two processes reloading the same file file the change once.
CREATE UNIQUE INDEX changes_reroute_open ON changes (segment)
    WHERE kind = 'reroute' AND status IN ('pending', 'approved', 'applying');

-- +goose Down
-- Forward-only: returnpath never migrates down.
SELECT 1;
