-- A person's answers to pending decisions, derived from `approval_resolved` entries.
-- The primary key is what makes a decision resolvable once. Append-only like the rest.

CREATE TABLE resolutions (
    decision_idx  INTEGER PRIMARY KEY,
    idx           INTEGER NOT NULL,
    approved      INTEGER NOT NULL CHECK (approved IN (0, 1)),
    approver      TEXT    NOT NULL,
    resolved_at   TEXT    NOT NULL,
    seal_id       TEXT,
    expires_at    TEXT,
    -- Only an approval grants a seal, and a seal has an expiry.
    CHECK (approved = 1 OR seal_id IS NULL),
    CHECK ((seal_id IS NULL) = (expires_at IS NULL))
);

CREATE TRIGGER resolutions_no_update BEFORE UPDATE ON resolutions
BEGIN SELECT RAISE(ABORT, 'resolutions is immutable: the ledger is append-only'); END;
CREATE TRIGGER resolutions_no_delete BEFORE DELETE ON resolutions
BEGIN SELECT RAISE(ABORT, 'resolutions is immutable: the ledger is append-only'); END;
