-- Rate-limit windows shared by every gateway copy.
create table rate_limit_entries (
    entry_id         uuid primary key default ultracore_uuid_v7(),
    tenant_id        uuid not null references tenants (tenant_id),
    user_id          uuid,
    ip_address       inet,
    endpoint         varchar(255) not null,
    request_count    integer not null default 0,
    window_start     timestamptz not null,
    window_end       timestamptz not null,
    base_limit       integer not null,
    adaptive_limit   integer not null,
    trust_multiplier numeric(5,2) not null default 1.00,
    is_blocked       boolean not null default false,
    blocked_until    timestamptz,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint rate_limit_entries_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id) on delete cascade,
    constraint rate_limit_entries_subject check (user_id is not null or ip_address is not null),
    constraint rate_limit_entries_window_order check (window_end > window_start),
    constraint rate_limit_entries_counts_nonneg
        check (request_count >= 0 and base_limit >= 0 and adaptive_limit >= 0),
    constraint rate_limit_entries_trust_multiplier_range check (trust_multiplier between 0 and 100)
);

create index idx_rate_limit_user on rate_limit_entries (tenant_id, user_id);
create index idx_rate_limit_ip on rate_limit_entries (ip_address);
create index idx_rate_limit_endpoint on rate_limit_entries (endpoint);
create index idx_rate_limit_user_endpoint on rate_limit_entries (tenant_id, user_id, endpoint, window_start desc);
create index idx_rate_limit_ip_endpoint on rate_limit_entries (tenant_id, ip_address, endpoint, window_start desc);
-- Expired windows are swept across tenants by end time.
create index idx_rate_limit_window on rate_limit_entries (window_end);
-- Not in the seed: the order of the rate-limit list.
create index rate_limit_entries_tenant_window_idx on rate_limit_entries (tenant_id, window_start desc, entry_id desc);

create trigger rate_limit_entries_touch_updated_at before update on rate_limit_entries
    for each row execute function ultracore_touch_updated_at();
