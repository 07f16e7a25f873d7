-- Shared helpers and the tenant registry.

-- Time-ordered UUIDs (RFC 9562 version 7) for rows inserted by SQL alone (the CLI, bulk
-- loaders, tests). The gateway generates v7 ids itself; both keep B-tree inserts local.
create function ultracore_uuid_v7() returns uuid
language plpgsql volatile parallel safe as $$
declare
    unix_ms bigint := floor(extract(epoch from clock_timestamp()) * 1000);
    bytes bytea := uuid_send(gen_random_uuid());
begin
    -- The first 48 bits carry the Unix time in milliseconds, big-endian.
    bytes := overlay(bytes placing substring(int8send(unix_ms) from 3 for 6) from 1 for 6);
    -- gen_random_uuid() set version 4 (0100); setting two more bits makes it 7 (0111).
    -- The variant bits (10) are already right.
    bytes := set_bit(set_bit(bytes, 52, 1), 53, 1);
    return encode(bytes, 'hex')::uuid;
end
$$;

-- Keeps updated_at honest whatever client writes the row.
create function ultracore_touch_updated_at() returns trigger
language plpgsql as $$
begin
    new.updated_at := now();
    return new;
end
$$;

create table tenants (
    tenant_id  uuid primary key default ultracore_uuid_v7(),
    slug       varchar(63)  not null,
    name       varchar(255) not null,
    status     varchar(20)  not null default 'active',
    settings   jsonb        not null default '{}'::jsonb,
    created_at timestamptz  not null default now(),
    updated_at timestamptz  not null default now(),
    constraint tenants_slug_key unique (slug),
    constraint tenants_slug_format check (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    constraint tenants_name_not_blank check (length(btrim(name)) > 0),
    constraint tenants_status_valid check (status in ('active', 'suspended')),
    constraint tenants_settings_object check (jsonb_typeof(settings) = 'object')
);

create trigger tenants_touch_updated_at before update on tenants
    for each row execute function ultracore_touch_updated_at();
