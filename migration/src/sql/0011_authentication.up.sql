-- What the authentication features need beyond the seed's columns: refresh-token
-- families (rotation and reuse detection), TOTP replay protection and key ids, growing
-- lockouts, single-use account tokens (password reset, email verification), and the
-- notification outbox.

-- A session is a family of refresh tokens: each use replaces the token with a new one
-- of the same family. The access token's `sid` is the family id.
alter table refresh_tokens
    add column family_id uuid,
    add column replaced_by uuid,
    add column last_used_at timestamptz;
update refresh_tokens set family_id = token_id where family_id is null;
alter table refresh_tokens alter column family_id set not null;
create index refresh_tokens_family_idx on refresh_tokens (tenant_id, family_id);

-- A token inserted without a family starts its own (the first token of a session).
create function refresh_tokens_default_family() returns trigger
language plpgsql as $$
begin
    new.family_id := coalesce(new.family_id, new.token_id);
    return new;
end
$$;
create trigger refresh_tokens_default_family before insert on refresh_tokens
    for each row execute function refresh_tokens_default_family();

alter table users
    -- The last TOTP time step accepted: a code, or an older step, is accepted once.
    add column totp_last_step bigint,
    -- Which data key encrypted mfa_secret (key rotation).
    add column mfa_secret_key_id varchar(64),
    -- Lockouts so far; each one lasts longer than the last.
    add column lockout_count integer not null default 0,
    add constraint users_lockout_count_nonneg check (lockout_count >= 0);

-- Single-use, short-lived tokens sent to a user: password reset and email
-- verification. Only the SHA-256 of the token is stored.
create table account_tokens (
    token_id   uuid primary key default ultracore_uuid_v7(),
    tenant_id  uuid not null,
    user_id    uuid not null,
    purpose    varchar(30) not null,
    token_hash varchar(255) not null,
    expires_at timestamptz not null,
    used_at    timestamptz,
    created_at timestamptz not null default now(),
    constraint account_tokens_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id) on delete cascade,
    constraint account_tokens_purpose_valid check (purpose in ('password_reset', 'email_verification')),
    constraint account_tokens_token_hash_key unique (tenant_id, token_hash)
);
create index account_tokens_user_idx on account_tokens (tenant_id, user_id, purpose, created_at desc);

-- Messages to users (reset links, verification links, security alerts), written in
-- the transaction that caused them and delivered afterwards by a sender, so a message
-- is sent if and only if its cause committed.
create table notification_outbox (
    notification_id uuid primary key default ultracore_uuid_v7(),
    tenant_id       uuid not null references tenants (tenant_id),
    user_id         uuid,
    channel         varchar(20) not null default 'email',
    recipient       varchar(255) not null,
    subject         varchar(500) not null,
    body            text not null,
    status          varchar(20) not null default 'pending',
    attempts        integer not null default 0,
    last_error      text,
    created_at      timestamptz not null default now(),
    sent_at         timestamptz,
    constraint notification_outbox_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id) on delete set null (user_id),
    constraint notification_outbox_channel_valid check (channel in ('email')),
    constraint notification_outbox_status_valid check (status in ('pending', 'sent', 'failed'))
);
create index notification_outbox_pending_idx on notification_outbox (created_at) where status = 'pending';
create index notification_outbox_tenant_idx on notification_outbox (tenant_id, created_at desc, notification_id desc);

do $$
declare
    t text;
begin
    foreach t in array array['account_tokens', 'notification_outbox'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format($p$create policy tenant_isolation on %I
                           using (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))
                           with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))$p$, t);
    end loop;
end
$$;

grant select, insert, update on account_tokens to ultracore_app;
grant select, insert, update on notification_outbox to ultracore_app;
