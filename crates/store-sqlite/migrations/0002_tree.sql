-- The Merkle tree's interior nodes (level >= 1; level 0 is entries.leaf_hash) and the
-- signed checkpoints. Both are evidence and append-only.

CREATE TABLE tree_nodes (
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    seq         INTEGER PRIMARY KEY,
    tree_size   INTEGER NOT NULL,
    note        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE TRIGGER tree_nodes_no_update BEFORE UPDATE ON tree_nodes
BEGIN SELECT RAISE(ABORT, 'tree_nodes is immutable: the ledger is append-only'); END;
CREATE TRIGGER tree_nodes_no_delete BEFORE DELETE ON tree_nodes
BEGIN SELECT RAISE(ABORT, 'tree_nodes is immutable: the ledger is append-only'); END;
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints is immutable: the ledger is append-only'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints is immutable: the ledger is append-only'); END;
