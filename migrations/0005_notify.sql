-- +goose Up
-- Long-polls (GET /v1/hosts/{name}?wait=) sleep until the host they wait for may have changed:
-- these triggers NOTIFY returnpath_host with the host's name when its state changes or when its
-- change reaches a final status. Every service process LISTENs (internal/postgres/listen.go).
--
-- Only UPDATEs notify, never INSERTs: a NOTIFY takes a database-wide lock at commit that
-- serialises committing transactions, and registration (which inserts a host and its change)
-- is the hot path that must stay free of it. A waiter learns of a new host by reading it.

-- +goose StatementBegin
CREATE FUNCTION returnpath_notify_host_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('returnpath_host', NEW.name);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER hosts_notify_state
    AFTER UPDATE OF state ON hosts
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION returnpath_notify_host_state();

-- +goose StatementBegin
CREATE FUNCTION returnpath_notify_change_final() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    host_name text;
BEGIN
    SELECT name INTO host_name FROM hosts WHERE id = NEW.host_id;
    IF host_name IS NOT NULL THEN
        PERFORM pg_notify('returnpath_host', host_name);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- Remediate changes have no host (host_id IS NULL): nobody long-polls them.
CREATE TRIGGER changes_notify_final
    AFTER UPDATE OF status ON changes
    FOR EACH ROW WHEN (NEW.host_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status
        AND NEW.status IN ('applied', 'rejected', 'failed', 'rolled_back'))
    EXECUTE FUNCTION returnpath_notify_change_final();

-- +goose Down
-- Forward-only: returnpath never migrates down.
SELECT 1;
