-- Resumable (tus) uploads in progress. The bytes received so far live in
-- FERRY_DATA_DIR/uploads/<id>/; `received` counts only bytes already fsynced there.
-- A completed upload keeps its row (completed_at set) until it expires, so a client
-- that lost the final answer still learns that the upload is done; its item has the
-- upload's id.
create table uploads (
    id text primary key,
    user_id text not null references users(id) on delete cascade,
    name text not null,
    item_expiry text not null,
    length bigint not null,
    received bigint not null default 0,
    metadata text not null,
    created_at bigint not null,
    expires_at bigint not null,
    completed_at bigint
);
create index uploads_user on uploads(user_id);
create index uploads_expires on uploads(expires_at);
