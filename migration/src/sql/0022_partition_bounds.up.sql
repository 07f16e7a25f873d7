-- Range catch-alls instead of DEFAULT partitions (#6, measured in bench/micro/partitions.sh).
--
-- 0021 gave each log a DEFAULT partition so that no insert could fail for want of a
-- month. A DEFAULT partition may hold rows of any range, so PostgreSQL cannot read the
-- months in order: "the newest 20 events" became a MergeAppend that probes every month's
-- index and sorts, and keyset pages deep in history probe every month again. Two range
-- partitions do the same job without that cost:
--   <log>_before  FROM (MINVALUE) TO (<first month>)
--   <log>_after   FROM (<month after the last>) TO (MAXVALUE)
-- The months between them are always contiguous, so every timestamp still has exactly one
-- partition (an insert never fails), and the partitions are ordered, so PostgreSQL reads
-- the newest month first and stops (an ordered Append). On the micro benchmark the events
-- list goes from 10,522 to 12,299 tx/s.
--
-- The invariant "catch-all, contiguous months, catch-all" is kept by:
--   ultracore_ensure_partitions  extends the months at either end, moving any rows the
--                                catch-all held for those months into them;
--   ultracore_drop_expired_partitions  widens <log>_before over each month it drops.
-- Rows are moved by copying them into a standalone table and attaching it: an INSERT
-- through the log would fire the audit chain trigger, which rightly re-stamps every row.
--
-- Months that 0021 prepared far ahead and that are still empty are folded into the
-- catch-all: every partition costs each generic plan a lock and an executor node, and
-- `lifecycle run` now prepares one month ahead by default (a missed run no longer matters:
-- the catch-all holds the rows until the month is created).

create function ultracore_month_partition_name(parent text, month_start timestamptz) returns text
language sql immutable as $$
    select parent || '_p' || to_char(month_start at time zone 'UTC', 'YYYY_MM')
$$;

-- The span of the monthly partitions of `parent`: where <parent>_before ends and where
-- <parent>_after starts.
create function ultracore_month_span(parent text, out first_month timestamptz, out past_last_month timestamptz)
language plpgsql stable
set search_path = pg_catalog, public, pg_temp as $$
declare
    lower_text text;
    upper_text text;
begin
    upper_text := substring(pg_get_expr(c.relpartbound, c.oid) from 'TO \(''([^'']*)''\)')
                    from pg_class c where c.oid = format('ultracore_partitions.%I', parent || '_before')::regclass;
    lower_text := substring(pg_get_expr(c.relpartbound, c.oid) from 'FROM \(''([^'']*)''\)')
                    from pg_class c where c.oid = format('ultracore_partitions.%I', parent || '_after')::regclass;
    first_month := upper_text::timestamptz;
    past_last_month := lower_text::timestamptz;
end
$$;

-- Creates partition `part` of `parent` for [range_from, range_to) (NULL: MINVALUE or
-- MAXVALUE), taking the rows of that range from `source` (a detached partition), and
-- returns how many rows it took. With rows to take, the partition is filled as a
-- standalone table and then attached: no trigger of the log fires, so every row keeps
-- exactly what it had (the audit chain re-stamps rows inserted through the log).
create function ultracore_place_partition(parent text, part text, range_from timestamptz,
                                          range_to timestamptz, source regclass)
returns bigint
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    bounds  text := format('for values from (%s) to (%s)',
                           coalesce(quote_literal(range_from), 'minvalue'),
                           coalesce(quote_literal(range_to), 'maxvalue'));
    within  text := concat_ws(' and ', 'true',
                              case when range_from is not null then format('"timestamp" >= %L', range_from) end,
                              case when range_to is not null then format('"timestamp" < %L', range_to) end);
    columns text;
    taken   bigint := 0;
begin
    if source is not null then
        execute format('select count(*) from %s where %s', source, within) into taken;
    end if;
    if taken = 0 then
        execute format('create table ultracore_partitions.%I partition of public.%I %s', part, parent, bounds);
    else
        select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into columns
          from pg_attribute a
         where a.attrelid = format('public.%I', parent)::regclass and a.attnum > 0 and not a.attisdropped;
        execute format('create table ultracore_partitions.%I '
                       '(like public.%I including defaults including constraints including storage)', part, parent);
        execute format('insert into ultracore_partitions.%I (%s) select %s from %s where %s',
                       part, columns, columns, source, within);
        execute format('alter table public.%I attach partition ultracore_partitions.%I %s', parent, part, bounds);
    end if;
    perform ultracore_prepare_partition(parent, part);
    return taken;
end
$$;

-- Detaches partition `part` of `parent` and renames it out of the way; the caller places
-- its rows and drops it.
create function ultracore_detach_partition(parent text, part text) returns regclass
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
begin
    execute format('alter table public.%I detach partition ultracore_partitions.%I', parent, part);
    execute format('alter table ultracore_partitions.%I rename to %I', part, part || '_detached');
    return format('ultracore_partitions.%I', part || '_detached')::regclass;
end
$$;

------------------------------------------------------------------------------------------
-- Replace each DEFAULT partition
------------------------------------------------------------------------------------------
do $$
declare
    parent      text;
    old_default regclass;
    this_month  timestamptz := date_trunc('month', now() at time zone 'UTC') at time zone 'UTC';
    first_month timestamptz;
    past_last   timestamptz;
    keep_to     timestamptz;
    month_start timestamptz;
    part        text;
    has_rows    boolean;
    moved       bigint;
begin
    foreach parent in array array['security_events', 'audit_log'] loop
        select min(m.lower_bound), max(m.lower_bound) + interval '1 month' into first_month, past_last
          from (select to_date(substring(c.relname from '_p(\d{4}_\d{2})$'), 'YYYY_MM')::timestamp at time zone 'UTC'
                           as lower_bound
                  from pg_inherits i join pg_class c on c.oid = i.inhrelid
                 where i.inhparent = format('public.%I', parent)::regclass
                   and c.relname ~ '_p\d{4}_\d{2}$') m;
        first_month := coalesce(first_month, this_month);
        past_last := coalesce(past_last, first_month + interval '1 month');
        old_default := ultracore_detach_partition(parent, parent || '_default');

        -- Months are kept up to the last one that holds rows, and at least to next month.
        keep_to := greatest(this_month + interval '2 months', first_month + interval '1 month');
        month_start := first_month;
        while month_start < past_last loop
            part := ultracore_month_partition_name(parent, month_start);
            if to_regclass('ultracore_partitions.' || part) is not null then
                execute format('select exists (select 1 from ultracore_partitions.%I)', part) into has_rows;
                if has_rows then
                    keep_to := greatest(keep_to, month_start + interval '1 month');
                end if;
            end if;
            month_start := month_start + interval '1 month';
        end loop;

        -- Fill any hole between months (`lifecycle prepare` could make islands under 0021;
        -- their rows were in the default partition) and fold the empty months beyond.
        month_start := first_month;
        while month_start < greatest(past_last, keep_to) loop
            part := ultracore_month_partition_name(parent, month_start);
            if month_start >= keep_to then
                if to_regclass('ultracore_partitions.' || part) is not null then
                    execute format('drop table ultracore_partitions.%I', part);
                    insert into ultracore_lifecycle.data_lifecycle_log (operation, table_name, partition_name, details)
                    values ('partition_dropped', parent, part,
                            jsonb_build_object('from', month_start, 'to', month_start + interval '1 month', 'rows', 0,
                                               'reason', 'an empty month ahead, folded into ' || parent || '_after',
                                               'migration', '0022'));
                end if;
            elsif to_regclass('ultracore_partitions.' || part) is null then
                moved := ultracore_place_partition(parent, part, month_start, month_start + interval '1 month', old_default);
                insert into ultracore_lifecycle.data_lifecycle_log (operation, table_name, partition_name, details)
                values ('partition_created', parent, part,
                        jsonb_build_object('from', month_start, 'to', month_start + interval '1 month',
                                           'rows_moved', moved, 'migration', '0022'));
            end if;
            month_start := month_start + interval '1 month';
        end loop;
        perform ultracore_place_partition(parent, parent || '_before', null, first_month, old_default);
        perform ultracore_place_partition(parent, parent || '_after', keep_to, null, old_default);
        execute format('drop table %s', old_default);
    end loop;
end
$$;

------------------------------------------------------------------------------------------
-- Keeping the months contiguous
------------------------------------------------------------------------------------------
-- Creates the months of `parent` in [from_month, to_month), each taking its rows from
-- `source` (the catch-all detached for the purpose), records each and returns their names.
create function ultracore_create_months(parent text, from_month timestamptz, to_month timestamptz, source regclass)
returns setof text
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    month_start timestamptz := from_month;
    part        text;
    moved       bigint;
begin
    while month_start < to_month loop
        part := ultracore_month_partition_name(parent, month_start);
        moved := ultracore_place_partition(parent, part, month_start, month_start + interval '1 month', source);
        insert into ultracore_lifecycle.data_lifecycle_log (operation, table_name, partition_name, details)
        values ('partition_created', parent, part,
                jsonb_build_object('from', month_start, 'to', month_start + interval '1 month', 'rows_moved', moved));
        return next part;
        month_start := month_start + interval '1 month';
    end loop;
end
$$;

-- Creates the monthly partitions of both logs needed to cover [from_ts, to_ts] (whole UTC
-- months), extending the months at either end; returns the months it created. The months
-- stay contiguous (a month between the existing ones and the requested range is created
-- too), and rows the catch-all already held for a new month move into it. Run by
-- `ultracore lifecycle run` (the months ahead) and before loading history.
create or replace function ultracore_ensure_partitions(from_ts timestamptz, to_ts timestamptz)
returns setof text
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    want_from   timestamptz;
    want_to     timestamptz;
    parent      text;
    span        record;
    detached    regclass;
begin
    if from_ts is null or to_ts is null or to_ts < from_ts then
        raise exception 'ultracore_ensure_partitions needs from_ts <= to_ts'
            using errcode = 'invalid_parameter_value';
    end if;
    want_from := date_trunc('month', from_ts at time zone 'UTC') at time zone 'UTC';
    want_to := (date_trunc('month', to_ts at time zone 'UTC') at time zone 'UTC') + interval '1 month';
    foreach parent in array array['security_events', 'audit_log'] loop
        select * into span from ultracore_month_span(parent);
        if want_from >= span.first_month and want_to <= span.past_last_month then
            continue;
        end if;
        -- Re-read under the lock that detaching needs anyway, so that two runs at once
        -- cannot both extend from the same span.
        execute format('lock table public.%I in access exclusive mode', parent);
        select * into span from ultracore_month_span(parent);

        if want_from < span.first_month then
            detached := ultracore_detach_partition(parent, parent || '_before');
            return query select ultracore_create_months(parent, want_from, span.first_month, detached);
            perform ultracore_place_partition(parent, parent || '_before', null, want_from, detached);
            execute format('drop table %s', detached);
        end if;
        if want_to > span.past_last_month then
            detached := ultracore_detach_partition(parent, parent || '_after');
            return query select ultracore_create_months(parent, span.past_last_month, want_to, detached);
            perform ultracore_place_partition(parent, parent || '_after', want_to, null, detached);
            execute format('drop table %s', detached);
        end if;
    end loop;
end
$$;

-- Drops the monthly partitions of `parent` ('security_events' or 'audit_log') that end at
-- or before `older_than`, oldest first, and returns what it dropped (or, with dry_run,
-- what it would drop). Owner only. Each drop is recorded three times: in
-- data_lifecycle_log, in the audit chain of every tenant that had rows in the partition
-- (action 'retention.partition_dropped', with the row count), and, for audit_log, as the
-- new anchor of each such tenant's chain. (0022: the catch-all <parent>_before is widened
-- over the dropped months, so that every timestamp keeps a partition.)
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
    older_in_catch_all boolean;
    detached    regclass;
    widen_to    timestamptz;
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
            select exists (select 1 from ultracore_partitions.audit_log_before) into older_in_catch_all;
            if older_in_catch_all then
                raise exception 'cannot drop %: the catch-all audit_log_before holds audit rows older than any month', part.name
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
        widen_to := range_to;
        return next;
    end loop;
    if widen_to is not null and not dry_run then
        detached := ultracore_detach_partition(parent, parent || '_before');
        perform ultracore_place_partition(parent, parent || '_before', null, widen_to, detached);
        execute format('drop table %s', detached);
    end if;
    perform set_config('app.tenant_id', coalesce(caller_tenant, ''), true);
end
$$;

revoke all on function ultracore_month_partition_name(text, timestamptz) from public;
revoke all on function ultracore_month_span(text) from public;
revoke all on function ultracore_place_partition(text, text, timestamptz, timestamptz, regclass) from public;
revoke all on function ultracore_detach_partition(text, text) from public;
revoke all on function ultracore_create_months(text, timestamptz, timestamptz, regclass) from public;
