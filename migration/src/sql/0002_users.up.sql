-- User accounts. Usernames and emails are unique per tenant and case-insensitively, so a
-- uniqueness error can never reveal that another bank has a user of that name.
create table users (
    user_id               uuid primary key default ultracore_uuid_v7(),
    tenant_id             uuid not null references tenants (tenant_id),
    username              varchar(255) not null,
    email                 varchar(255) not null,
    password_hash         varchar(255) not null,
    first_name            varchar(100),
    last_name             varchar(100),
    phone_number          varchar(50),
    role                  varchar(50)  not null default 'customer',
    permissions           text[]       not null default '{}',
    is_active             boolean      not null default true,
    is_locked             boolean      not null default false,
    is_verified           boolean      not null default false,
    mfa_enabled           boolean      not null default false,
    mfa_secret            varchar(255),
    password_changed_at   timestamptz  not null default now(),
    password_expires_at   timestamptz,
    failed_login_attempts integer      not null default 0,
    locked_until          timestamptz,
    trust_score           numeric(5,2) not null default 50.00,
    created_at            timestamptz  not null default now(),
    updated_at            timestamptz  not null default now(),
    last_login_at         timestamptz,
    last_login_ip         inet,
    constraint users_role_valid check (role in ('super_admin', 'admin', 'manager', 'officer', 'customer')),
    constraint users_username_not_blank check (length(btrim(username)) > 0),
    constraint users_email_shape check (email ~ '^[^@\s]+@[^@\s]+$'),
    -- Argon2id PHC strings only: bcrypt hashes are not accepted (DESIGN.md).
    constraint users_password_hash_argon2id check (password_hash like '$argon2id$%'),
    constraint users_failed_login_attempts_nonneg check (failed_login_attempts >= 0),
    constraint users_trust_score_range check (trust_score between 0 and 100)
);

-- The target of every composite foreign key (tenant_id, user_id): a child row can only
-- point at a user of its own tenant. Leading tenant_id also serves RLS-filtered lists.
create unique index idx_users_tenant on users (tenant_id, user_id);
alter table users add constraint idx_users_tenant unique using index idx_users_tenant;
-- Login lookup and per-tenant, case-insensitive uniqueness in one index each.
create unique index idx_users_username on users (tenant_id, lower(username));
create unique index idx_users_email on users (tenant_id, lower(email));
-- Platform-wide (owner) queries across tenants, e.g. counting super admins.
create index idx_users_role on users (role);
create index idx_users_active on users (tenant_id, is_active);
create index idx_users_tenant_role on users (tenant_id, role, user_id);
create index idx_users_email_active on users (tenant_id, lower(email), is_active);
-- Not in the seed: the order of the users list (newest first, keyset by id).
create index users_tenant_created_idx on users (tenant_id, created_at desc, user_id desc);

create trigger users_touch_updated_at before update on users
    for each row execute function ultracore_touch_updated_at();
