-- The live feed (subscriptions): every insert of a security event or threat, and every
-- insert or update of an incident, appends one row here in the same transaction, and a
-- NOTIFY at COMMIT wakes every gateway copy. Rows carry only ids; gateways re-read the
-- entities under each tenant's own transaction.
--
-- Order and resumption. `position` comes from a sequence at insert time, so a
-- transaction that inserts early and commits late would appear behind a cursor a reader
-- has already passed. Each row therefore also records its transaction id (`tx_id`), and
-- readers order by (tx_id, position) and only read rows whose transaction is older than
-- the oldest transaction still running (pg_snapshot_xmin of the reader's snapshot): every
-- such transaction has committed or aborted, so nothing can later appear before the
-- cursor. A reconnecting client resumes from its last cursor and loses nothing.
create table feed_changes (
    position   bigint generated always as identity primary key,
    tx_id      xid8 not null default pg_current_xact_id(),
    tenant_id  uuid not null references tenants (tenant_id),
    kind       varchar(20) not null,
    entity_id  uuid not null,
    operation  varchar(10) not null,
    created_at timestamptz not null default now(),
    constraint feed_changes_kind_valid check (kind in ('security_event', 'threat', 'incident')),
    constraint feed_changes_operation_valid check (operation in ('insert', 'update'))
);
-- The reader's query: one tenant, after a cursor, in (tx_id, position) order.
create index feed_changes_tenant_order_idx on feed_changes (tenant_id, tx_id, position);
-- Retention sweeps by age.
create index feed_changes_created_idx on feed_changes using brin (created_at);

alter table feed_changes enable row level security;
alter table feed_changes force row level security;
create policy tenant_isolation on feed_changes
    using (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))
    with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid));
grant select, insert on feed_changes to ultracore_app;

-- One function per table: PL/pgSQL resolves `new.<column>` when it runs, so one shared
-- function cannot name each table's id column.
create function feed_record_security_event() returns trigger
language plpgsql as $$
begin
    insert into feed_changes (tenant_id, kind, entity_id, operation)
    values (new.tenant_id, 'security_event', new.event_id, 'insert');
    return null;
end
$$;

create function feed_record_threat() returns trigger
language plpgsql as $$
begin
    insert into feed_changes (tenant_id, kind, entity_id, operation)
    values (new.tenant_id, 'threat', new.threat_id, 'insert');
    return null;
end
$$;

create function feed_record_incident() returns trigger
language plpgsql as $$
begin
    insert into feed_changes (tenant_id, kind, entity_id, operation)
    values (new.tenant_id, 'incident', new.incident_id, lower(tg_op));
    return null;
end
$$;

-- One NOTIFY per statement (PostgreSQL delivers it at COMMIT, and not at all after a
-- ROLLBACK), naming the tenants the statement touched.
create function feed_notify() returns trigger
language plpgsql as $$
declare
    tenants text;
begin
    select string_agg(distinct tenant_id::text, ',') into tenants from new_rows;
    if tenants is not null then
        if length(tenants) > 7000 then
            tenants := '*';
        end if;
        perform pg_notify('ultracore_feed', tenants);
    end if;
    return null;
end
$$;

create trigger feed_security_events after insert on security_events
    for each row execute function feed_record_security_event();
create trigger feed_threat_events after insert on threat_events
    for each row execute function feed_record_threat();
create trigger feed_security_incidents after insert or update on security_incidents
    for each row execute function feed_record_incident();
create trigger feed_changes_notify after insert on feed_changes
    referencing new table as new_rows
    for each statement execute function feed_notify();
