-- The ledger and the tables derived from it. Every one of them is append-only:
-- the triggers at the end refuse UPDATE and DELETE with an error naming the table.

CREATE TABLE entries (
    idx        INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL,
    canonical  BLOB    NOT NULL,
    leaf_hash  BLOB    NOT NULL CHECK (length(leaf_hash) = 32)
);

CREATE TABLE decisions (
    idx          INTEGER PRIMARY KEY,
    decision_id  TEXT NOT NULL UNIQUE,
    manifest_id  TEXT NOT NULL,
    agent_id     TEXT NOT NULL,
    org_id       TEXT NOT NULL,
    method       TEXT NOT NULL,
    status       TEXT NOT NULL,
    server_time  TEXT NOT NULL
);
CREATE INDEX decisions_by_agent  ON decisions (agent_id, idx);
CREATE INDEX decisions_by_org    ON decisions (org_id, idx);
CREATE INDEX decisions_by_method ON decisions (method, idx);
CREATE INDEX decisions_by_status ON decisions (status, idx);
CREATE INDEX decisions_by_time   ON decisions (server_time);

CREATE TABLE seals (
    seal_id       TEXT    PRIMARY KEY,
    idx           INTEGER NOT NULL,
    decision_idx  INTEGER NOT NULL,
    expires_at    TEXT    NOT NULL
);
CREATE INDEX seals_by_decision ON seals (decision_idx);

CREATE TABLE redemptions (
    seal_id      TEXT    PRIMARY KEY,
    idx          INTEGER NOT NULL,
    redeemed_at  TEXT    NOT NULL
);

CREATE TABLE policies (
    version      TEXT PRIMARY KEY,
    bundle       BLOB NOT NULL,
    uploaded_at  TEXT NOT NULL,
    uploaded_by  TEXT NOT NULL
);

CREATE TABLE policy_activations (
    idx      INTEGER PRIMARY KEY,
    version  TEXT NOT NULL
);

-- Not evidence: keys can be revoked, so this one table takes UPDATEs.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    name        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'entries is immutable: the ledger is append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'entries is immutable: the ledger is append-only'); END;
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions is immutable: the ledger is append-only'); END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions is immutable: the ledger is append-only'); END;
CREATE TRIGGER seals_no_update BEFORE UPDATE ON seals
BEGIN SELECT RAISE(ABORT, 'seals is immutable: the ledger is append-only'); END;
CREATE TRIGGER seals_no_delete BEFORE DELETE ON seals
BEGIN SELECT RAISE(ABORT, 'seals is immutable: the ledger is append-only'); END;
CREATE TRIGGER redemptions_no_update BEFORE UPDATE ON redemptions
BEGIN SELECT RAISE(ABORT, 'redemptions is immutable: the ledger is append-only'); END;
CREATE TRIGGER redemptions_no_delete BEFORE DELETE ON redemptions
BEGIN SELECT RAISE(ABORT, 'redemptions is immutable: the ledger is append-only'); END;
CREATE TRIGGER policies_no_update BEFORE UPDATE ON policies
BEGIN SELECT RAISE(ABORT, 'policies is immutable: bundles are append-only'); END;
CREATE TRIGGER policies_no_delete BEFORE DELETE ON policies
BEGIN SELECT RAISE(ABORT, 'policies is immutable: bundles are append-only'); END;
CREATE TRIGGER policy_activations_no_update BEFORE UPDATE ON policy_activations
BEGIN SELECT RAISE(ABORT, 'policy_activations is immutable: the ledger is append-only'); END;
CREATE TRIGGER policy_activations_no_delete BEFORE DELETE ON policy_activations
BEGIN SELECT RAISE(ABORT, 'policy_activations is immutable: the ledger is append-only'); END;
