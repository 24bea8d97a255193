-- Signing another device in with a one-time link (the "add a device" QR code), and
-- what the account page shows of each signed-in device. Instants are unix ms.
alter table sessions add column user_agent text;
alter table sessions add column last_seen_at bigint;

-- A link is stored only as its token's hash, lives a few minutes and is used once:
-- `used_at` is set in the same transaction that starts the new session.
create table device_links (
    token_hash text primary key,
    user_id text not null references users(id) on delete cascade,
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint
);
create index device_links_user on device_links(user_id);
create index device_links_expires on device_links(expires_at);
