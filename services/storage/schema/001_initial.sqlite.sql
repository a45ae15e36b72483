-- Members exist on their own (a person with no group yet holds a token too).
CREATE TABLE members (
    name        TEXT PRIMARY KEY,
    token_hash  BLOB NOT NULL,
    created_us  INTEGER NOT NULL
) WITHOUT ROWID;

-- A deleted group keeps its row, so a group created again under the same name
-- continues after the old head and no client ever sees its seq go backwards.
CREATE TABLE groups (
    name        TEXT PRIMARY KEY,
    head_seq    INTEGER NOT NULL,
    deleted     INTEGER NOT NULL,
    created_us  INTEGER NOT NULL
) WITHOUT ROWID;

-- The cursor: every note with seq <= last_acked_seq was handed to the member.
-- Unread counts are derived from it and never stored.
CREATE TABLE memberships (
    group_name      TEXT NOT NULL REFERENCES groups (name),
    member          TEXT NOT NULL REFERENCES members (name),
    last_acked_seq  INTEGER NOT NULL,
    last_seen_us    INTEGER,
    PRIMARY KEY (group_name, member)
) WITHOUT ROWID;

-- Reads are ranges of seq within one group: the primary key is that range.
CREATE TABLE notes (
    group_name     TEXT NOT NULL REFERENCES groups (name),
    seq            INTEGER NOT NULL,
    sender         TEXT NOT NULL,
    text           TEXT NOT NULL,
    sent_at_us     INTEGER NOT NULL,
    client_msg_id  TEXT NOT NULL,
    PRIMARY KEY (group_name, seq)
);

-- A retried send finds its original note here.
CREATE UNIQUE INDEX notes_by_client_msg_id
    ON notes (group_name, sender, client_msg_id) WHERE client_msg_id != '';
