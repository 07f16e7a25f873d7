#!/usr/bin/env bash
# What monthly partitioning (migration 0021) costs the events list, on PostgreSQL alone.
# Starts a scratch cluster, loads 500,000 events of 100 tenants over 90 days into the same
# table three ways, and runs the list's statement (BEGIN, the tenant setting, newest 21
# under RLS, COMMIT) with pgbench -M prepared at 32 clients:
#   unpartitioned     one table (the schema before 0021)
#   monthly+default   4 months of history, 3 ahead and a DEFAULT partition (what 0021 makes)
#   monthly           the same months without the DEFAULT partition (PostgreSQL can then
#                     scan the months newest first and stop: an ordered Append)
#   monthly+bounds    4 months of history, 1 ahead, and two range catch-alls, MINVALUE to the
#                     first month and the month after the last to MAXVALUE (what 0022 makes:
#                     every row still has a partition, and the Append stays ordered)
# Usage: bench/micro/partitions.sh [seconds per run, default 8]. Needs PostgreSQL's server
# binaries (pg_config or /usr/lib/postgresql/*/bin); as root it runs them as `postgres`.
set -euo pipefail
SECONDS_PER_RUN=${1:-8}
source "$(dirname "$0")/scratch_cluster.sh"
start_scratch_cluster partitions "listen_addresses=''" shared_buffers=1GB
"${PSQL[@]}" <<'SQL'
create role app login nosuperuser nobypassrls;
create table tenants_x as select gen_random_uuid() as tenant_id, g from generate_series(1, 100) g;
create table source as
select gen_random_uuid() as event_id, (select tenant_id from tenants_x where g = 1 + s % 100) as tenant_id,
       null::uuid as user_id, 'login_success'::text as event_type, 'low'::text as severity,
       'signed in'::text as description, now() - (s * interval '90 days') / 500000 as "timestamp"
  from generate_series(1, 500000) s;
create table unpartitioned (like source, primary key (event_id));
create table monthly_default (like source) partition by range ("timestamp");
create table monthly (like source) partition by range ("timestamp");
create table monthly_bounds (like source) partition by range ("timestamp");
do $$
declare
    parent text;
    m timestamptz;
begin
    foreach parent in array array['monthly_default', 'monthly'] loop
        execute format('alter table %I add primary key (event_id, "timestamp")', parent);
        for m in select generate_series(date_trunc('month', now() - interval '92 days'),
                                        date_trunc('month', now() + interval '3 months'), interval '1 month') loop
            execute format('create table %I partition of %I for values from (%L) to (%L)',
                           parent || to_char(m, '_YYYY_MM'), parent, m, m + interval '1 month');
        end loop;
    end loop;
    create table monthly_default_default partition of monthly_default default;
    execute 'alter table monthly_bounds add primary key (event_id, "timestamp")';
    for m in select generate_series(date_trunc('month', now() - interval '92 days'),
                                    date_trunc('month', now() + interval '1 month'), interval '1 month') loop
        execute format('create table %I partition of monthly_bounds for values from (%L) to (%L)',
                       'monthly_bounds' || to_char(m, '_YYYY_MM'), m, m + interval '1 month');
    end loop;
    execute format('create table monthly_bounds_before partition of monthly_bounds for values from (minvalue) to (%L)',
                   date_trunc('month', now() - interval '92 days'));
    execute format('create table monthly_bounds_after partition of monthly_bounds for values from (%L) to (maxvalue)',
                   date_trunc('month', now() + interval '2 months'));
    foreach parent in array array['unpartitioned', 'monthly_default', 'monthly', 'monthly_bounds'] loop
        execute format('insert into %I select * from source', parent);
        execute format('create index on %I (tenant_id, "timestamp" desc, event_id desc)', parent);
        execute format('create index on %I (user_id)', parent);
        execute format('create index on %I (tenant_id, severity, "timestamp" desc)', parent);
        execute format('alter table %I enable row level security', parent);
        execute format('alter table %I force row level security', parent);
        execute format($p$create policy tenant_isolation on %I
                           using (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))$p$, parent);
        execute format('grant select on %I to app', parent);
    end loop;
end
$$;
vacuum analyze;
SQL
TENANT=$("${PSQL[@]}" -c "select tenant_id from tenants_x where g = 1")
printf '%-16s %10s %12s\n' table tps "latency ms"
for table in unpartitioned monthly_default monthly monthly_bounds; do
    cat > "$DIR/$table.sql" <<SQL
BEGIN;
select set_config('app.tenant_id', '$TENANT', true);
select event_id, tenant_id, event_type, severity, "timestamp" from $table order by "timestamp" desc, event_id desc limit 21;
COMMIT;
SQL
    chmod 644 "$DIR/$table.sql"
    out=$("${AS[@]}" "$BIN/pgbench" -h "$DIR" -p "$PORT" -U app -n -M prepared -c 32 -j 2 -T "$SECONDS_PER_RUN" -f "$DIR/$table.sql" postgres 2>&1)
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
    [ -n "$tps" ] || { echo "pgbench failed for $table: $out" >&2; exit 1; }
    label=${table/monthly_default/monthly+default}
    printf '%-16s %10.0f %12s\n' "${label/monthly_bounds/monthly+bounds}" "$tps" "$lat"
done
