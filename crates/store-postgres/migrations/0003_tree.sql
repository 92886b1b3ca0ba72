-- The Merkle tree's interior nodes and the signed checkpoints, mirroring the SQLite
-- schema. Both are evidence: append-only by the same statement-level trigger as the
-- other evidence tables, and the service role gets INSERT and SELECT only.

-- Perfect-subtree hashes at level >= 1 (level 0 is entries.leaf_hash), written by the
-- append transaction that completes them, so a proof is servable as soon as an
-- append returns. A node is written once: the primary key refuses a second copy.
CREATE TABLE tree_nodes (
    level  smallint NOT NULL CHECK (level >= 1),
    idx    bigint   NOT NULL CHECK (idx >= 0),
    hash   bytea    NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (level, idx)
);

-- Signed checkpoints (C2SP signed notes), in the order they were written.
CREATE TABLE checkpoints (
    seq         bigserial PRIMARY KEY,
    tree_size   bigint    NOT NULL CHECK (tree_size >= 0),
    note        text      NOT NULL,
    created_at  text      NOT NULL
);
CREATE INDEX checkpoints_by_size ON checkpoints (tree_size, seq);

CREATE TRIGGER tree_nodes_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON tree_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION sealgate_refuse_change();
CREATE TRIGGER checkpoints_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION sealgate_refuse_change();

GRANT SELECT, INSERT ON tree_nodes, checkpoints TO sealgate_service;
-- INSERT into checkpoints draws seq from its sequence (nextval needs USAGE).
GRANT USAGE ON SEQUENCE checkpoints_seq_seq TO sealgate_service;
