-- Members exist on their own (a person with no group yet holds a token too).
CREATE TABLE members (
    name        TEXT PRIMARY KEY,
    token_hash  BYTEA NOT NULL,
    created_us  BIGINT NOT NULL
);

-- A deleted group keeps its row, so a group created again under the same name
-- continues after the old head. head_seq is also the lock that makes seqs
-- gapless: a writer increments it in its transaction, so writers of one group
-- commit one after the other and a rolled-back write gives its seq back.
CREATE TABLE groups (
    name        TEXT PRIMARY KEY,
    head_seq    BIGINT NOT NULL,
    deleted     BOOLEAN NOT NULL,
    created_us  BIGINT NOT NULL
);

-- The cursor: every note with seq <= last_acked_seq was handed to the member.
CREATE TABLE memberships (
    group_name      TEXT NOT NULL REFERENCES groups (name),
    member          TEXT NOT NULL REFERENCES members (name),
    last_acked_seq  BIGINT NOT NULL,
    last_seen_us    BIGINT,
    PRIMARY KEY (group_name, member)
);

CREATE TABLE notes (
    group_name     TEXT NOT NULL REFERENCES groups (name),
    seq            BIGINT NOT NULL,
    sender         TEXT NOT NULL,
    text           TEXT NOT NULL,
    sent_at_us     BIGINT NOT NULL,
    client_msg_id  TEXT NOT NULL,
    PRIMARY KEY (group_name, seq)
);

CREATE UNIQUE INDEX notes_by_client_msg_id
    ON notes (group_name, sender, client_msg_id) WHERE client_msg_id <> '';

-- Presence across replicas: each replica reports its open sessions and a
-- heartbeat; a replica whose heartbeat is stale no longer counts.
CREATE TABLE replicas (
    id            TEXT PRIMARY KEY,
    heartbeat_us  BIGINT NOT NULL
);

CREATE TABLE presence (
    replica_id  TEXT NOT NULL REFERENCES replicas (id) ON DELETE CASCADE,
    group_name  TEXT NOT NULL,
    member      TEXT NOT NULL,
    sessions    INTEGER NOT NULL,
    PRIMARY KEY (replica_id, group_name, member)
);

-- Stores a batch of sends in the caller's transaction, in one round trip.
-- Per send: rejected (not a member), the original note of a retried
-- client_msg_id, or a new note with the next seq. Replicas hear of new notes
-- through NOTIFY chatroom_notes '<replica> <group> <head_seq>' at commit.
CREATE FUNCTION chatroom_append(
    replica TEXT, groups_ TEXT[], senders TEXT[], texts TEXT[], sent_ats BIGINT[], msg_ids TEXT[]
) RETURNS TABLE (seq BIGINT, text TEXT, sent_at_us BIGINT, outcome TEXT)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i INTEGER;
    heads JSONB := '{}';
    g TEXT;
BEGIN
    FOR i IN 1 .. coalesce(array_length(groups_, 1), 0) LOOP
        IF NOT EXISTS (
            SELECT 1 FROM memberships m WHERE m.group_name = groups_[i] AND m.member = senders[i]
        ) THEN
            RETURN QUERY SELECT NULL::BIGINT, NULL::TEXT, NULL::BIGINT, 'rejected';
            CONTINUE;
        END IF;
        IF msg_ids[i] <> '' THEN
            RETURN QUERY
                SELECT n.seq, n.text, n.sent_at_us, 'duplicate' FROM notes n
                WHERE n.group_name = groups_[i] AND n.sender = senders[i] AND n.client_msg_id = msg_ids[i]
                    AND n.client_msg_id <> '';  -- so that the partial index applies
            IF FOUND THEN
                CONTINUE;
            END IF;
        END IF;
        UPDATE groups SET head_seq = head_seq + 1 WHERE name = groups_[i] RETURNING head_seq INTO seq;
        INSERT INTO notes (group_name, seq, sender, text, sent_at_us, client_msg_id)
            VALUES (groups_[i], seq, senders[i], texts[i], sent_ats[i], msg_ids[i]);
        heads := heads || jsonb_build_object(groups_[i], seq);
        RETURN QUERY SELECT seq, texts[i], sent_ats[i], 'created';
    END LOOP;
    FOR g IN SELECT jsonb_object_keys(heads) LOOP
        PERFORM pg_notify('chatroom_notes', replica || ' ' || g || ' ' || (heads ->> g));
    END LOOP;
END;
$$;
