-- The oldest note a group keeps. Retention deletes notes from the front only, so
-- the notes of a group are always first_seq..head_seq, with no holes, and a
-- cursor below first_seq - 1 means exactly those notes were lost.
ALTER TABLE groups ADD COLUMN first_seq BIGINT NOT NULL DEFAULT 1;
UPDATE groups SET first_seq = coalesce(
    (SELECT min(n.seq) FROM notes n WHERE n.group_name = groups.name), head_seq + 1
);

-- Notes the hard retention limit deleted before this member had read them.
ALTER TABLE memberships ADD COLUMN lost_to_retention BIGINT NOT NULL DEFAULT 0;
