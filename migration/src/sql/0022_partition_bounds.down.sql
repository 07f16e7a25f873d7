-- Back to 0021: a DEFAULT partition per log instead of the two range catch-alls. The rows
-- of both catch-alls move into it (copied into a standalone table that is then attached,
-- so that no trigger of the log fires), and 0021's functions come back as they were.
do $$
declare
    parent   text;
    before   regclass;
    after    regclass;
    columns  text;
    has_rows boolean;
begin
    foreach parent in array array['security_events', 'audit_log'] loop
        before := ultracore_detach_partition(parent, parent || '_before');
        after := ultracore_detach_partition(parent, parent || '_after');
        execute format('select exists (select 1 from %s) or exists (select 1 from %s)', before, after) into has_rows;
        if has_rows then
            select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into columns
              from pg_attribute a
             where a.attrelid = format('public.%I', parent)::regclass and a.attnum > 0 and not a.attisdropped;
            execute format('create table ultracore_partitions.%I '
                           '(like public.%I including defaults including constraints including storage)',
                           parent || '_default', parent);
            execute format('insert into ultracore_partitions.%I (%s) select %s from %s union all select %s from %s',
                           parent || '_default', columns, columns, before, columns, after);
            execute format('alter table public.%I attach partition ultracore_partitions.%I default',
                           parent, parent || '_default');
        else
            execute format('create table ultracore_partitions.%I partition of public.%I default',
                           parent || '_default', parent);
        end if;
        perform ultracore_prepare_partition(parent, parent || '_default');
        execute format('drop table %s, %s', before, after);
    end loop;
end
$$;

-- Creates the monthly partitions of both logs that cover [from_ts, to_ts] (whole UTC
-- months), skipping those that exist. Run by the migration, by `ultracore lifecycle run`
-- (which keeps months ahead ready) and by loaders of historical data. A DEFAULT partition
-- catches rows no month covers, so an insert never fails for want of a partition; a month
-- whose rows already sit in the default partition cannot be created (PostgreSQL refuses)
-- and the error says so.
create or replace function ultracore_ensure_partitions(from_ts timestamptz, to_ts timestamptz)
returns setof text
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    month_start timestamptz;
    last_month  timestamptz;
    parent      text;
    part        text;
begin
    if from_ts is null or to_ts is null or to_ts < from_ts then
        raise exception 'ultracore_ensure_partitions needs from_ts <= to_ts'
            using errcode = 'invalid_parameter_value';
    end if;
    month_start := date_trunc('month', from_ts at time zone 'UTC') at time zone 'UTC';
    last_month := date_trunc('month', to_ts at time zone 'UTC') at time zone 'UTC';
    while month_start <= last_month loop
        foreach parent in array array['security_events', 'audit_log'] loop
            part := parent || '_p' || to_char(month_start at time zone 'UTC', 'YYYY_MM');
            if to_regclass('ultracore_partitions.' || part) is null then
                begin
                    execute format('create table ultracore_partitions.%I partition of public.%I '
                                   'for values from (%L) to (%L)',
                                   part, parent, month_start, month_start + interval '1 month');
                exception when check_violation then
                    raise exception 'cannot create partition % of %: the default partition already holds rows of that month',
                                    part, parent
                        using errcode = 'check_violation',
                              hint = 'create partitions before loading historical rows';
                end;
                perform ultracore_prepare_partition(parent, part);
                insert into ultracore_lifecycle.data_lifecycle_log (operation, table_name, partition_name, details)
                values ('partition_created', parent, part,
                        jsonb_build_object('from', month_start, 'to', month_start + interval '1 month'));
                return next part;
            end if;
        end loop;
        month_start := month_start + interval '1 month';
    end loop;
end
$$;

-- Drops the monthly partitions of `parent` ('security_events' or 'audit_log') that end at
-- or before `older_than`, oldest first, and returns what it dropped (or, with dry_run,
-- what it would drop). Owner only. Each drop is recorded three times: in
-- data_lifecycle_log, in the audit chain of every tenant that had rows in the partition
-- (action 'retention.partition_dropped', with the row count), and, for audit_log, as the
-- new anchor of each such tenant's chain.
create or replace function ultracore_drop_expired_partitions(parent text, older_than timestamptz,
                                                  dry_run boolean default false)
returns table (partition_name text, range_from timestamptz, range_to timestamptz, rows_dropped bigint)
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    part        record;
    stat        record;
    caller_tenant text := current_setting('app.tenant_id', true);
    last_hash   bytea;
    anchor_seq  bigint;
    total       bigint;
    older_in_default boolean;
    -- What this call has dropped so far (or, in a dry run, would have): the checks of a
    -- later partition must see the chain as it will be by then.
    passed      oid[] := '{}';
    planned_anchors jsonb := '{}';
begin
    if parent not in ('security_events', 'audit_log') then
        raise exception 'only security_events and audit_log are partitioned, not %', parent
            using errcode = 'invalid_parameter_value';
    end if;
    for part in
        select c.oid, c.relname::text as name,
               to_date(substring(c.relname from '_p(\d{4}_\d{2})$'), 'YYYY_MM')::timestamp at time zone 'UTC' as lower_bound
          from pg_inherits i
          join pg_class c on c.oid = i.inhrelid
          join pg_namespace n on n.oid = c.relnamespace
         where i.inhparent = ('public.' || parent)::regclass
           and n.nspname = 'ultracore_partitions'
           and c.relname ~ '_p\d{4}_\d{2}$'
         order by 3
    loop
        exit when part.lower_bound + interval '1 month' > older_than;
        execute format('select count(*) from ultracore_partitions.%I', part.name) into total;
        partition_name := part.name;
        range_from := part.lower_bound;
        range_to := part.lower_bound + interval '1 month';
        rows_dropped := total;

        if parent = 'audit_log' then
            -- The partition must hold the oldest stretch of every chain it touches, so that
            -- the chain left behind starts right after the new anchor.
            select exists (select 1 from ultracore_partitions.audit_log_default d where d."timestamp" < range_to)
              into older_in_default;
            if older_in_default then
                raise exception 'cannot drop %: the default partition holds audit rows older than %', part.name, range_to
                    using hint = 'those rows were written while no monthly partition covered them; keep them until they can be archived';
            end if;
            for stat in execute format(
                    'select tenant_id, min(chain_seq) as first_seq, max(chain_seq) as last_seq '
                    '  from ultracore_partitions.%I group by tenant_id', part.name) loop
                select a.chain_seq into anchor_seq
                  from ultracore_lifecycle.audit_chain_anchors a where a.tenant_id = stat.tenant_id;
                anchor_seq := coalesce((planned_anchors->>stat.tenant_id::text)::bigint, anchor_seq);
                if stat.first_seq <> coalesce(anchor_seq, 0) + 1 then
                    raise exception 'cannot drop %: it does not start the remaining audit chain of tenant % (first position %, anchor %)',
                                    part.name, stat.tenant_id, stat.first_seq, coalesce(anchor_seq, 0);
                end if;
                perform set_config('app.tenant_id', stat.tenant_id::text, true);
                if exists (select 1 from audit_log a
                            where a.tenant_id = stat.tenant_id and a.chain_seq <= stat.last_seq
                              and a.tableoid <> all(passed || part.oid)) then
                    raise exception 'cannot drop %: tenant % has older audit rows in another partition', part.name, stat.tenant_id;
                end if;
                planned_anchors := planned_anchors || jsonb_build_object(stat.tenant_id::text, stat.last_seq);
                if not dry_run then
                    execute format('select row_hash from ultracore_partitions.%I where tenant_id = $1 and chain_seq = $2',
                                   part.name) into last_hash using stat.tenant_id, stat.last_seq;
                    insert into ultracore_lifecycle.audit_chain_anchors (tenant_id, chain_seq, row_hash)
                    values (stat.tenant_id, stat.last_seq, last_hash)
                    on conflict (tenant_id) do update
                        set chain_seq = excluded.chain_seq, row_hash = excluded.row_hash, anchored_at = clock_timestamp();
                end if;
            end loop;
        end if;

        if not dry_run then
            create temporary table if not exists ultracore_dropped_counts (tenant_id uuid, rows_dropped bigint)
                on commit drop;
            truncate ultracore_dropped_counts;
            execute format('insert into ultracore_dropped_counts select tenant_id, count(*) '
                           '  from ultracore_partitions.%I group by tenant_id', part.name);
            execute format('drop table ultracore_partitions.%I', part.name);
            insert into ultracore_lifecycle.data_lifecycle_log (operation, table_name, partition_name, details)
            values ('partition_dropped', parent, part.name,
                    jsonb_build_object('from', range_from, 'to', range_to, 'rows', total, 'older_than', older_than));
            for stat in select * from ultracore_dropped_counts loop
                perform set_config('app.tenant_id', stat.tenant_id::text, true);
                insert into audit_log (tenant_id, action, entity_type, new_values)
                values (stat.tenant_id, 'retention.partition_dropped', parent,
                        jsonb_build_object('partition', part.name, 'from', range_from, 'to', range_to,
                                           'rows', stat.rows_dropped));
            end loop;
        end if;
        passed := passed || part.oid;
        return next;
    end loop;
    perform set_config('app.tenant_id', coalesce(caller_tenant, ''), true);
end
$$;
revoke all on function ultracore_drop_expired_partitions(text, timestamptz, boolean) from public;
revoke all on function ultracore_ensure_partitions(timestamptz, timestamptz) from public;

drop function ultracore_create_months(text, timestamptz, timestamptz, regclass);
drop function ultracore_detach_partition(text, text);
drop function ultracore_place_partition(text, text, timestamptz, timestamptz, regclass);
drop function ultracore_month_span(text);
drop function ultracore_month_partition_name(text, timestamptz);
