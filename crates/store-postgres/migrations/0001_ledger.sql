-- The ledger and the tables derived from it, mirroring the SQLite schema, plus the
-- one-row log head that hands out indices. Evidence tables are append-only: a
-- statement-level trigger refuses UPDATE, DELETE and TRUNCATE (it fires even when no
-- row matches, so an empty table refuses too) with an error naming immutability.

CREATE TABLE entries (
    idx        bigint PRIMARY KEY CHECK (idx >= 0),
    kind       text   NOT NULL,
    canonical  bytea  NOT NULL,
    leaf_hash  bytea  NOT NULL CHECK (octet_length(leaf_hash) = 32)
);

CREATE TABLE decisions (
    idx          bigint PRIMARY KEY,
    decision_id  text NOT NULL UNIQUE,
    manifest_id  text NOT NULL,
    agent_id     text NOT NULL,
    org_id       text NOT NULL,
    method       text NOT NULL,
    status       text NOT NULL,
    server_time  text NOT NULL
);
CREATE INDEX decisions_by_agent  ON decisions (agent_id, idx);
CREATE INDEX decisions_by_org    ON decisions (org_id, idx);
CREATE INDEX decisions_by_method ON decisions (method, idx);
CREATE INDEX decisions_by_status ON decisions (status, idx);
CREATE INDEX decisions_by_time   ON decisions (server_time);

CREATE TABLE seals (
    seal_id       text   PRIMARY KEY,
    idx           bigint NOT NULL,
    decision_idx  bigint NOT NULL,
    expires_at    text   NOT NULL
);
CREATE INDEX seals_by_decision ON seals (decision_idx);

-- The primary key is the last guard of single use: even a writer that skipped the
-- check under the log-head lock cannot record a second redemption.
CREATE TABLE redemptions (
    seal_id      text   PRIMARY KEY,
    idx          bigint NOT NULL,
    redeemed_at  text   NOT NULL
);

CREATE TABLE policies (
    version      text  PRIMARY KEY,
    bundle       bytea NOT NULL,
    uploaded_at  text  NOT NULL,
    uploaded_by  text  NOT NULL
);

CREATE TABLE policy_activations (
    idx      bigint PRIMARY KEY,
    version  text   NOT NULL
);

-- Not evidence: keys can be revoked, so this table takes one kind of UPDATE
-- (setting revoked_at once), enforced by api_keys_revoke_only below.
CREATE TABLE api_keys (
    id          text  PRIMARY KEY,
    role        text  NOT NULL,
    name        text  NOT NULL,
    token_hash  bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at  text  NOT NULL,
    revoked_at  text
);

-- The next index. One row; every append locks it (SELECT ... FOR UPDATE) inside its
-- transaction, so batches from several replicas are serialised and their indices are
-- contiguous and in commit order. It is the one mutable counter of the ledger, and it
-- only moves forward (log_head_forward_only below).
CREATE TABLE log_head (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    next_index  bigint  NOT NULL CHECK (next_index >= 0)
);
INSERT INTO log_head (singleton, next_index) VALUES (true, 0);

CREATE FUNCTION sealgate_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is immutable: the ledger is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'object_not_in_prerequisite_state';
END;
$$;

CREATE TRIGGER entries_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION sealgate_refuse_change();
CREATE TRIGGER decisions_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION sealgate_refuse_change();
CREATE TRIGGER seals_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON seals
    FOR EACH STATEMENT EXECUTE FUNCTION sealgate_refuse_change();
CREATE TRIGGER redemptions_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON redemptions
    FOR EACH STATEMENT EXECUTE FUNCTION sealgate_refuse_change();
CREATE TRIGGER policies_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON policies
    FOR EACH STATEMENT EXECUTE FUNCTION sealgate_refuse_change();
CREATE TRIGGER policy_activations_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON policy_activations
    FOR EACH STATEMENT EXECUTE FUNCTION sealgate_refuse_change();
-- The head may move forward, never be removed.
CREATE TRIGGER log_head_immutable BEFORE DELETE OR TRUNCATE ON log_head
    FOR EACH STATEMENT EXECUTE FUNCTION sealgate_refuse_change();

CREATE FUNCTION sealgate_log_head_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.next_index < OLD.next_index OR NEW.singleton IS DISTINCT FROM OLD.singleton THEN
        RAISE EXCEPTION 'log_head is immutable backwards: next_index % -> % refused',
            OLD.next_index, NEW.next_index
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER log_head_forward_only BEFORE UPDATE ON log_head
    FOR EACH ROW EXECUTE FUNCTION sealgate_log_head_forward_only();

CREATE FUNCTION sealgate_api_keys_revoke_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL
       OR NEW.id IS DISTINCT FROM OLD.id
       OR NEW.role IS DISTINCT FROM OLD.role
       OR NEW.name IS DISTINCT FROM OLD.name
       OR NEW.token_hash IS DISTINCT FROM OLD.token_hash
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'api_keys is immutable except for revoking a live key once'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER api_keys_revoke_only BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION sealgate_api_keys_revoke_only();
