-- The audit log: append-only for everyone (the owner included) and tamper-evident.
--
-- Each tenant has one hash chain. A row stores its position (chain_seq), the hash of the
-- previous row of its tenant (prev_hash; the first row uses a genesis hash bound to the
-- tenant) and its own hash:
--     row_hash = sha256(prev_hash || utf8(audit_log_canonical(row)))
-- Editing, deleting or reordering rows breaks the chain at the first touched row;
-- deleting the tail is caught against a chain head exported to another system
-- (audit_chain_verify with the exported head; `ultracore audit head`).
create table audit_log (
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
    -- No ON DELETE action: an audited user is never deleted (erasure pseudonymises).
    constraint audit_log_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id),
    constraint audit_log_chain_seq_positive check (chain_seq >= 1),
    constraint audit_log_hash_lengths check (octet_length(prev_hash) = 32 and octet_length(row_hash) = 32)
);

-- One position per tenant chain: besides ordering the chain, this makes a forked chain
-- (two rows claiming the same position) impossible to store.
create unique index idx_audit_log_tenant on audit_log (tenant_id, chain_seq);
create index idx_audit_log_user on audit_log (user_id) where user_id is not null;
create index idx_audit_log_action on audit_log (tenant_id, action, "timestamp" desc);
create index idx_audit_log_entity_type on audit_log (entity_type);
create index idx_audit_log_entity_id on audit_log (entity_id) where entity_id is not null;
create index idx_audit_log_timestamp on audit_log using brin ("timestamp");
create index idx_audit_log_tenant_timestamp on audit_log (tenant_id, "timestamp" desc, audit_id desc);
create index idx_audit_log_user_timestamp on audit_log (tenant_id, user_id, "timestamp" desc, audit_id desc);
create index idx_audit_log_entity on audit_log (tenant_id, entity_type, entity_id);

-- One field of the canonical encoding: length-prefixed so that no two different rows can
-- encode to the same text, with '~' for NULL.
create function audit_chain_field(value text) returns text
language sql immutable parallel safe as $$
    select case when value is null then '~;' else char_length(value)::text || ':' || value || ';' end
$$;

-- The canonical encoding of a row: fixed field order and formats that do not depend on
-- session settings (TimeZone, DateStyle, bytea_output, extra_float_digits): timestamps in
-- UTC with microseconds, uuid/inet/bigint in their only text forms, jsonb in its
-- normalised text form. This is the one place the encoding is defined.
create function audit_log_canonical(r audit_log) returns text
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

create function audit_log_row_hash(r audit_log) returns bytea
language sql stable parallel safe as $$
    select sha256(r.prev_hash || convert_to(audit_log_canonical(r), 'UTF8'))
$$;

-- The prev_hash of a tenant's first row: bound to the tenant, so a chain cannot be
-- transplanted into another tenant.
create function audit_chain_genesis(tenant uuid) returns bytea
language sql immutable parallel safe as $$
    select sha256(convert_to('ultracore.audit.genesis;' || tenant::text, 'UTF8'))
$$;

-- BEFORE INSERT: place the row at the end of its tenant's chain.
-- Every function that names audit_log pins its search_path: otherwise a session could
-- shadow the table with a temporary one (pg_temp is searched first by default) and make
-- the trigger read a forged chain head, or the verifier walk an empty table.
create function audit_log_chain_append() returns trigger
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    last_seq  bigint;
    last_hash bytea;
begin
    -- The lookup below must see rows committed while we waited for the lock. Only READ
    -- COMMITTED takes a fresh snapshot per statement; under a stricter level a waiter
    -- would read a stale head and fork the chain, so refuse instead.
    if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'audit_log rows must be written in a READ COMMITTED transaction'
            using errcode = 'invalid_transaction_state';
    end if;
    -- Serialise appends per tenant until commit; other tenants are not blocked.
    perform pg_advisory_xact_lock(hashtextextended('ultracore.audit_chain;' || new.tenant_id::text, 0));

    select a.chain_seq, a.row_hash into last_seq, last_hash
      from audit_log a
     where a.tenant_id = new.tenant_id
     order by a.chain_seq desc
     limit 1;

    new.chain_seq := coalesce(last_seq, 0) + 1;
    new.prev_hash := coalesce(last_hash, audit_chain_genesis(new.tenant_id));
    -- The database stamps the time: a client cannot back-date an entry.
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

-- Walks a tenant's chain in order and returns the first broken row, or one row with
-- problem NULL when the chain is intact. Given an exported head (its chain_seq and
-- row_hash), it also proves that the chain still reaches that head unchanged, which is
-- what catches a deleted tail.
create function audit_chain_verify(tenant uuid, exported_head_seq bigint default null,
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
