-- A person's answers to pending decisions, derived from `approval_resolved` entries,
-- mirroring the SQLite schema. The primary key is what makes a decision resolvable
-- once. Evidence: append-only by the same trigger, INSERT and SELECT for the service.
CREATE TABLE resolutions (
    decision_idx  bigint  PRIMARY KEY CHECK (decision_idx >= 0),
    idx           bigint  NOT NULL,
    approved      boolean NOT NULL,
    approver      text    NOT NULL,
    resolved_at   text    NOT NULL,
    seal_id       text,
    expires_at    text,
    -- Only an approval grants a seal, and a seal has an expiry.
    CHECK (approved OR seal_id IS NULL),
    CHECK ((seal_id IS NULL) = (expires_at IS NULL))
);

CREATE TRIGGER resolutions_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON resolutions
    FOR EACH STATEMENT EXECUTE FUNCTION sealgate_refuse_change();

GRANT SELECT, INSERT ON resolutions TO sealgate_service;
