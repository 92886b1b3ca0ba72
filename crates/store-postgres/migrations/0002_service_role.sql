-- The role sealgate runs as in production. It cannot log in by itself: an operator
-- creates a login role that is a member of it, e.g.
--
--     CREATE ROLE sealgate_app LOGIN PASSWORD '...' IN ROLE sealgate_service;
--
-- and gives replicas that role's URL, while migrations run as the schema owner.
-- Roles are cluster-wide, so several sealgate databases in one cluster share it;
-- the grants below are per database.
--
-- The role gets INSERT and SELECT on the evidence tables and nothing else: no
-- UPDATE, DELETE or TRUNCATE (the triggers refuse those even to the owner), and,
-- not owning the tables, it cannot disable triggers or alter them. Two narrow
-- exceptions, both column-level:
--   * log_head.next_index: the ledger's one mutable counter. Appending moves it
--     forward in the same transaction as the entries, and `SELECT ... FOR UPDATE`
--     (the lock that serialises replicas) needs UPDATE privilege. A trigger refuses
--     moving it backwards, and DELETE/TRUNCATE of it.
--   * api_keys.revoked_at: revocation. A trigger allows only setting it once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sealgate_service') THEN
        CREATE ROLE sealgate_service NOLOGIN;
    END IF;
EXCEPTION
    -- Another database of the same cluster created it at the same moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END;
$$;

GRANT SELECT, INSERT ON entries, decisions, seals, redemptions, policies, policy_activations
    TO sealgate_service;
GRANT SELECT, INSERT ON api_keys TO sealgate_service;
GRANT UPDATE (revoked_at) ON api_keys TO sealgate_service;
GRANT SELECT ON log_head TO sealgate_service;
GRANT UPDATE (next_index) ON log_head TO sealgate_service;
-- So a replica connected as the service role can see that migrations are applied.
GRANT SELECT ON schema_migrations TO sealgate_service;
