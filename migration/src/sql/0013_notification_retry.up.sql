-- What delivering the notification outbox needs (api/src/notify/worker.rs).

-- Retry with backoff: a failed attempt moves next_attempt_at into the future, so a relay
-- outage of a few minutes does not use up a message's attempts in a few passes.
alter table notification_outbox
    add column next_attempt_at timestamptz not null default now();
create index notification_outbox_due_idx on notification_outbox (tenant_id, next_attempt_at)
    where status = 'pending';

-- The sender runs as ultracore_app, which RLS keeps to one tenant per transaction and
-- which cannot list tenants. This one SECURITY DEFINER function answers "which tenants
-- have a message due?" and nothing else; the sender then claims each tenant's messages in
-- that tenant's own transaction. Its owner can read three columns of the outbox (never a
-- recipient, subject or body) and do nothing else, as ultracore_tenant_resolver (0009).
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'ultracore_outbox_scanner') then
        create role ultracore_outbox_scanner nologin nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
    end if;
end
$$;
grant usage on schema public to ultracore_outbox_scanner;
grant select (tenant_id, status, next_attempt_at) on notification_outbox to ultracore_outbox_scanner;
create policy outbox_scanner_lookup on notification_outbox for select to ultracore_outbox_scanner
    using (true);

create function ultracore_tenants_with_due_notifications() returns setof uuid
language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
    select distinct o.tenant_id from public.notification_outbox o
     where o.status = 'pending' and o.next_attempt_at <= now()
$$;
alter function ultracore_tenants_with_due_notifications() owner to ultracore_outbox_scanner;
revoke all on function ultracore_tenants_with_due_notifications() from public;
grant execute on function ultracore_tenants_with_due_notifications() to ultracore_app;
