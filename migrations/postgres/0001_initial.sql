-- Ferry's first schema. Ids are UUID text; instants are unix milliseconds.
create table users (
    id text primary key,
    name text not null unique,
    password_hash text not null,
    is_admin boolean not null default false,
    created_at bigint not null
);

create table sessions (
    token_hash text primary key,
    user_id text not null references users(id) on delete cascade,
    csrf_token text not null,
    created_at bigint not null,
    expires_at bigint not null
);
create index sessions_user on sessions(user_id);
create index sessions_expires on sessions(expires_at);

create table api_tokens (
    id text primary key,
    user_id text not null references users(id) on delete cascade,
    name text not null,
    token_hash text not null unique,
    created_at bigint not null,
    last_used_at bigint
);
create index api_tokens_user on api_tokens(user_id);

create table setup_tokens (
    token_hash text primary key,
    created_at bigint not null
);

create table items (
    id text primary key,
    author_id text references users(id) on delete set null,
    kind text not null check (kind in ('note', 'file')),
    name text,
    content_type text not null,
    size bigint not null,
    sha256 text not null,
    note text,
    created_at bigint not null,
    expires_at bigint
);
create index items_expires on items(expires_at) where expires_at is not null;

create table shares (
    id text primary key,
    item_id text not null references items(id) on delete cascade,
    token_hash text not null unique,
    created_by text references users(id) on delete set null,
    created_at bigint not null,
    expires_at bigint,
    max_downloads bigint,
    downloads bigint not null default 0,
    password_hash text,
    revoked_at bigint
);
create index shares_item on shares(item_id);

create table events (
    id bigserial primary key,
    kind text not null,
    item_id text not null,
    payload text not null,
    created_at bigint not null
);

create table leases (
    name text primary key,
    holder text not null,
    expires_at bigint not null
);
