-- chatroom_append as in 001, and besides: a send is stored only if the sender's
-- token is still the one it authenticated with (a token replaced on another
-- replica a moment ago stores nothing), and a client_msg_id stored by another
-- replica while this batch waited for the group's row is answered with that note
-- instead of failing the whole batch on the unique index.
DROP FUNCTION chatroom_append(TEXT, TEXT[], TEXT[], TEXT[], BIGINT[], TEXT[]);

CREATE FUNCTION chatroom_append(
    replica TEXT, groups_ TEXT[], senders TEXT[], token_hashes BYTEA[], texts TEXT[], sent_ats BIGINT[],
    msg_ids TEXT[]
) RETURNS TABLE (seq BIGINT, text TEXT, sent_at_us BIGINT, outcome TEXT)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i INTEGER;
    heads JSONB := '{}';
    g TEXT;
    current_hash BYTEA;
BEGIN
    FOR i IN 1 .. coalesce(array_length(groups_, 1), 0) LOOP
        SELECT u.token_hash INTO current_hash FROM memberships m JOIN members u ON u.name = m.member
            WHERE m.group_name = groups_[i] AND m.member = senders[i];
        IF NOT FOUND THEN
            RETURN QUERY SELECT NULL::BIGINT, NULL::TEXT, NULL::BIGINT, 'not a member';
            CONTINUE;
        END IF;
        IF current_hash <> token_hashes[i] THEN
            RETURN QUERY SELECT NULL::BIGINT, NULL::TEXT, NULL::BIGINT, 'token replaced';
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
            VALUES (groups_[i], seq, senders[i], texts[i], sent_ats[i], msg_ids[i])
            ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            -- Stored meanwhile by another replica: give the seq back, answer with its note.
            UPDATE groups SET head_seq = head_seq - 1 WHERE name = groups_[i];
            RETURN QUERY
                SELECT n.seq, n.text, n.sent_at_us, 'duplicate' FROM notes n
                WHERE n.group_name = groups_[i] AND n.sender = senders[i] AND n.client_msg_id = msg_ids[i]
                    AND n.client_msg_id <> '';
            CONTINUE;
        END IF;
        heads := heads || jsonb_build_object(groups_[i], seq);
        RETURN QUERY SELECT seq, texts[i], sent_ats[i], 'created';
    END LOOP;
    FOR g IN SELECT jsonb_object_keys(heads) LOOP
        PERFORM pg_notify('chatroom_notes', replica || ' ' || g || ' ' || (heads ->> g));
    END LOOP;
END;
$$;
