-- Back to 0020: unpartitioned security_events and audit_log, audit encoding v1.
-- The audit chains are checked under v2 and resealed under v1 (0008's encoding, personal
-- fields hashed as they are now). Refused once retention has anchored a chain: a v1
-- chain starts at the genesis hash and the dropped rows are gone.
do $$
begin
    if exists (select 1 from ultracore_lifecycle.audit_chain_anchors) then
        raise exception 'retention has dropped audit rows: the chains cannot be resealed from their genesis, so 0021 cannot be rolled back';
    end if;
end
$$;

drop function ultracore_erase_user(uuid);
drop function ultracore_forget_addresses(inet[]);
drop function ultracore_scrub_json(jsonb, text[]);
drop function ultracore_scrub_text(text, text[]);
drop function ultracore_drop_expired_partitions(text, timestamptz, boolean);
alter table users drop column erased_at;

------------------------------------------------------------------------------------------
-- security_events
------------------------------------------------------------------------------------------
create table security_events_unpartitioned (
    event_id           uuid primary key default ultracore_uuid_v7(),
    tenant_id          uuid not null references tenants (tenant_id),
    user_id            uuid,
    event_type         varchar(100) not null,
    event_category     varchar(50)  not null,
    severity           varchar(20)  not null default 'low',
    ip_address         inet,
    device_fingerprint varchar(255),
    user_agent         text,
    geolocation        jsonb,
    description        text,
    metadata           jsonb not null default '{}'::jsonb,
    risk_score         numeric(5,2),
    fraud_score        numeric(5,2),
    anomaly_score      numeric(5,2),
    action_taken       varchar(50),
    "timestamp"        timestamptz not null default now(),
    constraint security_events_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id) on delete set null (user_id),
    constraint security_events_category_valid check (event_category in
        ('authentication', 'authorization', 'account', 'session', 'threat', 'incident', 'rate_limit')),
    constraint security_events_severity_valid check (severity in ('low', 'medium', 'high', 'critical')),
    constraint security_events_action_valid check (action_taken in ('allow', 'deny', 'challenge', 'block', 'lock')),
    constraint security_events_risk_score_range check (risk_score between 0 and 100),
    constraint security_events_fraud_score_range check (fraud_score between 0 and 1),
    constraint security_events_anomaly_score_range check (anomaly_score between 0 and 1),
    constraint security_events_geolocation_object check (geolocation is null or jsonb_typeof(geolocation) = 'object'),
    constraint security_events_metadata_object check (jsonb_typeof(metadata) = 'object')
);
insert into security_events_unpartitioned select * from security_events;
drop table security_events;
drop function security_events_guard_change();
alter table security_events_unpartitioned rename to security_events;
alter table security_events rename constraint security_events_unpartitioned_pkey to security_events_pkey;

create index idx_security_events_tenant on security_events (tenant_id, "timestamp" desc, event_id desc)
    include (severity, event_category, event_type);
create index idx_security_events_user on security_events (user_id) where user_id is not null;
create index idx_security_events_type on security_events (event_type);
create index idx_security_events_category on security_events (tenant_id, event_category, "timestamp" desc, event_id desc);
create index idx_security_events_severity on security_events (severity);
create index idx_security_events_timestamp on security_events using brin ("timestamp");
create index idx_security_events_ip on security_events (tenant_id, ip_address);
create index idx_security_events_tenant_type on security_events (tenant_id, event_type, "timestamp" desc, event_id desc);
create index idx_security_events_user_timestamp on security_events (tenant_id, user_id, "timestamp" desc, event_id desc);
create index idx_security_events_severity_timestamp on security_events (tenant_id, severity, "timestamp" desc, event_id desc);
alter table security_events set (autovacuum_vacuum_insert_threshold = 10000,
                                 autovacuum_vacuum_insert_scale_factor = 0);
create trigger feed_security_events after insert on security_events
    for each row execute function feed_record_security_event();
alter table security_events enable row level security;
alter table security_events force row level security;
create policy tenant_isolation on security_events
    using (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))
    with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid));
grant select, insert on security_events to ultracore_app;

------------------------------------------------------------------------------------------
-- audit_log
------------------------------------------------------------------------------------------
create table audit_log_unpartitioned (
    audit_id    uuid primary key default ultracore_uuid_v7(),
    tenant_id   uuid not null references tenants (tenant_id),
    user_id     uuid,
    action      varchar(255) not null,
    entity_type varchar(100) not null,
    entity_id   uuid,
    old_values  jsonb,
    new_values  jsonb,
    ip_address  inet,
    user_agent  text,
    "timestamp" timestamptz not null default now(),
    chain_seq   bigint not null,
    prev_hash   bytea  not null,
    row_hash    bytea  not null,
    constraint audit_log_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id),
    constraint audit_log_chain_seq_positive check (chain_seq >= 1),
    constraint audit_log_hash_lengths check (octet_length(prev_hash) = 32 and octet_length(row_hash) = 32)
);

-- 0008's encoding, for the unpartitioned row type (renamed to audit_log below).
create function audit_log_canonical(r audit_log_unpartitioned) returns text
language sql stable parallel safe as $$
    select 'ultracore.audit.v1;'
        || audit_chain_field(r.audit_id::text)
        || audit_chain_field(r.tenant_id::text)
        || audit_chain_field(r.chain_seq::text)
        || audit_chain_field(r.user_id::text)
        || audit_chain_field(r.action)
        || audit_chain_field(r.entity_type)
        || audit_chain_field(r.entity_id::text)
        || audit_chain_field(r.old_values::text)
        || audit_chain_field(r.new_values::text)
        || audit_chain_field(r.ip_address::text)
        || audit_chain_field(r.user_agent)
        || audit_chain_field(to_char(r."timestamp" at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;
create function audit_log_row_hash(r audit_log_unpartitioned) returns bytea
language sql stable parallel safe as $$
    select sha256(r.prev_hash || convert_to(audit_log_canonical(r), 'UTF8'))
$$;

do $$
declare
    cur         audit_log;
    v1          audit_log_unpartitioned;
    cur_tenant  uuid;
    expect_seq  bigint;
    expect_prev bytea;
    v1_prev     bytea;
begin
    for cur in select * from audit_log order by tenant_id, chain_seq loop
        if cur_tenant is distinct from cur.tenant_id then
            cur_tenant := cur.tenant_id;
            expect_seq := 1;
            expect_prev := audit_chain_genesis(cur_tenant);
            v1_prev := expect_prev;
        end if;
        if cur.chain_seq <> expect_seq or cur.prev_hash <> expect_prev or cur.row_hash <> audit_log_row_hash(cur) then
            raise exception 'the audit chain of tenant % is broken at chain_seq %; rolling back 0021 reseals intact chains only',
                            cur_tenant, cur.chain_seq;
        end if;
        v1 := null;
        v1.audit_id := cur.audit_id;
        v1.tenant_id := cur.tenant_id;
        v1.user_id := cur.user_id;
        v1.action := cur.action;
        v1.entity_type := cur.entity_type;
        v1.entity_id := cur.entity_id;
        v1.old_values := cur.old_values;
        v1.new_values := cur.new_values;
        v1.ip_address := cur.ip_address;
        v1.user_agent := cur.user_agent;
        v1."timestamp" := cur."timestamp";
        v1.chain_seq := cur.chain_seq;
        v1.prev_hash := v1_prev;
        v1.row_hash := audit_log_row_hash(v1);
        insert into audit_log_unpartitioned select v1.*;
        expect_seq := expect_seq + 1;
        expect_prev := cur.row_hash;
        v1_prev := v1.row_hash;
    end loop;
end
$$;

drop function audit_log_row_hash(audit_log);
drop function audit_log_canonical(audit_log);
drop function audit_log_pii_digests(audit_log);
drop table audit_log;
drop function audit_pii_digest(bytea, text, text);
drop function audit_log_chain_append();
drop function audit_log_advance_heads();
drop function audit_log_guard_change();
drop function audit_chain_stamp();
drop function audit_chain_lock_head(uuid);
alter table audit_log_unpartitioned rename to audit_log;
alter table audit_log rename constraint audit_log_unpartitioned_pkey to audit_log_pkey;

create unique index idx_audit_log_tenant on audit_log (tenant_id, chain_seq);
create index idx_audit_log_user on audit_log (user_id) where user_id is not null;
create index idx_audit_log_action on audit_log (tenant_id, action, "timestamp" desc);
create index idx_audit_log_entity_type on audit_log (entity_type);
create index idx_audit_log_entity_id on audit_log (entity_id) where entity_id is not null;
create index idx_audit_log_timestamp on audit_log using brin ("timestamp");
create index idx_audit_log_tenant_timestamp on audit_log (tenant_id, "timestamp" desc, audit_id desc);
create index idx_audit_log_user_timestamp on audit_log (tenant_id, user_id, "timestamp" desc, audit_id desc);
create index idx_audit_log_entity on audit_log (tenant_id, entity_type, entity_id);

create function audit_log_chain_append() returns trigger
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    last_seq  bigint;
    last_hash bytea;
begin
    if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'audit_log rows must be written in a READ COMMITTED transaction'
            using errcode = 'invalid_transaction_state';
    end if;
    perform pg_advisory_xact_lock(hashtextextended('ultracore.audit_chain;' || new.tenant_id::text, 0));
    select a.chain_seq, a.row_hash into last_seq, last_hash
      from audit_log a
     where a.tenant_id = new.tenant_id
     order by a.chain_seq desc
     limit 1;
    new.chain_seq := coalesce(last_seq, 0) + 1;
    new.prev_hash := coalesce(last_hash, audit_chain_genesis(new.tenant_id));
    new."timestamp" := clock_timestamp();
    new.row_hash := audit_log_row_hash(new);
    return new;
end
$$;
create trigger audit_log_chain_append before insert on audit_log
    for each row execute function audit_log_chain_append();

create function audit_log_refuse_change() returns trigger
language plpgsql as $$
begin
    raise exception 'audit_log is append-only: % is refused', tg_op
        using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_log_refuse_update_delete before update or delete on audit_log
    for each row execute function audit_log_refuse_change();
create trigger audit_log_refuse_truncate before truncate on audit_log
    for each statement execute function audit_log_refuse_change();

alter table audit_log enable row level security;
alter table audit_log force row level security;
create policy tenant_isolation on audit_log
    using (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))
    with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid));
grant select, insert on audit_log to ultracore_app;

-- 0008's verifier (no anchors, no recorded heads).
create or replace function audit_chain_verify(tenant uuid, exported_head_seq bigint default null,
                                              exported_head_hash bytea default null)
returns table (problem text, broken_audit_id uuid, broken_seq bigint,
               rows_checked bigint, head_seq bigint, head_audit_id uuid, head_hash bytea)
language plpgsql stable
set search_path = pg_catalog, public, pg_temp as $$
declare
    r audit_log;
    expected_seq  bigint := 1;
    expected_prev bytea := audit_chain_genesis(tenant);
    checked bigint := 0;
    last_id uuid;
begin
    for r in select * from audit_log a where a.tenant_id = tenant order by a.chain_seq loop
        if r.chain_seq <> expected_seq then
            return query select format('chain_seq is %s where %s was expected: rows before it were deleted or reordered',
                                       r.chain_seq, expected_seq),
                                r.audit_id, r.chain_seq, checked, expected_seq - 1, last_id, expected_prev;
            return;
        elsif r.prev_hash <> expected_prev then
            return query select 'prev_hash does not match the previous row: rows were deleted, inserted or reordered'::text,
                                r.audit_id, r.chain_seq, checked, expected_seq - 1, last_id, expected_prev;
            return;
        elsif r.row_hash <> audit_log_row_hash(r) then
            return query select 'row_hash does not match the row: its contents were changed'::text,
                                r.audit_id, r.chain_seq, checked, expected_seq - 1, last_id, expected_prev;
            return;
        end if;
        checked := checked + 1;
        expected_seq := r.chain_seq + 1;
        expected_prev := r.row_hash;
        last_id := r.audit_id;
    end loop;

    if exported_head_seq is not null then
        if exported_head_seq > expected_seq - 1 then
            return query select format('the chain ends at chain_seq %s but the exported head is at %s: the tail was deleted',
                                       expected_seq - 1, exported_head_seq),
                                null::uuid, expected_seq, checked, expected_seq - 1, last_id, expected_prev;
            return;
        elsif exported_head_hash is not null and not exists (
                select 1 from audit_log a
                 where a.tenant_id = tenant and a.chain_seq = exported_head_seq
                   and a.row_hash = exported_head_hash) then
            return query select 'the row at the exported head has another hash: the chain was rewritten'::text,
                                (select a.audit_id from audit_log a
                                  where a.tenant_id = tenant and a.chain_seq = exported_head_seq),
                                exported_head_seq, checked, expected_seq - 1, last_id, expected_prev;
            return;
        end if;
    end if;

    return query select null::text, null::uuid, null::bigint, checked, expected_seq - 1, last_id, expected_prev;
end
$$;

------------------------------------------------------------------------------------------
-- Bookkeeping
------------------------------------------------------------------------------------------
drop function audit_chain_bounds(uuid);
drop function ultracore_ensure_partitions(timestamptz, timestamptz);
drop function ultracore_prepare_partition(text, text);
drop schema ultracore_partitions cascade;
drop schema ultracore_lifecycle cascade;
drop function ultracore_refuse_change();
-- Revoke, never drop: the role is cluster-wide.
revoke usage on schema public from ultracore_audit_chain;
