-- Several files per item. An item of kind 'file' holds one or more files, in
-- order; `id` is the file's blob key (a UUID). The first file's blob key is the
-- item's id, so every item from before this migration keeps its blob and gets one
-- row here. `crc32` is the file's CRC-32 for "Download all" archives: computed
-- while a file is received; NULL for files from before, computed (by reading the
-- file) and stored the first time an archive that holds one is requested.
create table item_files (
    item_id text not null references items(id) on delete cascade,
    position bigint not null,
    id text not null unique,
    name text not null,
    content_type text not null,
    size bigint not null,
    sha256 text not null,
    crc32 bigint,
    primary key (item_id, position)
);

insert into item_files (item_id, position, id, name, content_type, size, sha256, crc32)
select id, 0, id, coalesce(name, 'file'), content_type, size, sha256, null
from items where kind = 'file';
