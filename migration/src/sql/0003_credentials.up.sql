-- The credentials around a user: MFA backup codes, refresh tokens (sessions) and trusted
-- devices. The seed lists no tenant column for them; they get one (DESIGN.md) so RLS can
-- apply, and a composite foreign key keeps each row inside its user's tenant.

create table mfa_backup_codes (
    code_id    uuid primary key default ultracore_uuid_v7(),
    tenant_id  uuid not null,
    user_id    uuid not null,
    code_hash  varchar(255) not null,
    used_at    timestamptz,
    created_at timestamptz not null default now(),
    constraint mfa_backup_codes_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id) on delete cascade
);
create index idx_mfa_backup_codes_user on mfa_backup_codes (tenant_id, user_id);

create table refresh_tokens (
    token_id           uuid primary key default ultracore_uuid_v7(),
    tenant_id          uuid not null,
    user_id            uuid not null,
    token_hash         varchar(255) not null,
    expires_at         timestamptz not null,
    revoked_at         timestamptz,
    device_fingerprint varchar(255),
    ip_address         inet,
    user_agent         text,
    created_at         timestamptz not null default now(),
    constraint refresh_tokens_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id) on delete cascade,
    constraint refresh_tokens_token_hash_key unique (tenant_id, token_hash)
);
create index idx_refresh_tokens_user on refresh_tokens (tenant_id, user_id);
-- Expiry cleanup runs across tenants (an owner job), so no tenant prefix here.
create index idx_refresh_tokens_expires on refresh_tokens (expires_at);
create index idx_refresh_tokens_user_expires on refresh_tokens (tenant_id, user_id, expires_at desc);
-- Not in the seed: the orders of the sessions lists (the tenant's, and one user's).
create index refresh_tokens_tenant_created_idx on refresh_tokens (tenant_id, created_at desc, token_id desc);
create index refresh_tokens_user_created_idx on refresh_tokens (tenant_id, user_id, created_at desc, token_id desc);

create table trusted_devices (
    device_id          uuid primary key default ultracore_uuid_v7(),
    tenant_id          uuid not null,
    user_id            uuid not null,
    device_fingerprint varchar(255) not null,
    device_name        varchar(255),
    device_type        varchar(50),
    trust_score        numeric(5,2) not null default 50.00,
    is_trusted         boolean not null default false,
    first_seen_at      timestamptz not null default now(),
    last_seen_at       timestamptz not null default now(),
    last_ip_address    inet,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    constraint trusted_devices_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id) on delete cascade,
    constraint trusted_devices_device_type_valid
        check (device_type in ('mobile', 'desktop', 'tablet', 'other')),
    constraint trusted_devices_trust_score_range check (trust_score between 0 and 100)
);
create index idx_trusted_devices_user on trusted_devices (tenant_id, user_id, last_seen_at desc, device_id desc);
-- Not in the seed: the order of the tenant's devices list.
create index trusted_devices_tenant_seen_idx on trusted_devices (tenant_id, last_seen_at desc, device_id desc);
-- One row per device per user: the login path upserts on it.
create unique index idx_trusted_devices_fingerprint
    on trusted_devices (tenant_id, user_id, device_fingerprint);

create trigger trusted_devices_touch_updated_at before update on trusted_devices
    for each row execute function ultracore_touch_updated_at();
