#!/usr/bin/env bash
# What one audit-log append costs PostgreSQL, before and after migration 0023 (which
# changes how the chain's canonical text is computed, not what it is). Starts a scratch
# cluster, migrates it to 0022 with the gateway binary, and measures, as the owner with a
# tenant set:
#   bulk    one INSERT ... SELECT of 20,000 rows (how `bench/run` loads the dataset)
#   single  2,000 transactions of one row each (how a mutation writes its audit row),
#           committed from a PL/pgSQL loop, so no client round trip is in the figure
#   verify  audit_chain_verify over the whole chain
# then applies 0023 and measures again on the same chain, which must still verify.
# Usage: bench/micro/audit_append.sh [path to the ultracore binary, default
# target/release/ultracore, else target/debug/ultracore]. Needs PostgreSQL's server
# binaries (pg_config or /usr/lib/postgresql/*/bin); as root it runs them as `postgres`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ULTRACORE=${1:-target/release/ultracore}
[ -x "$ULTRACORE" ] || ULTRACORE=target/debug/ultracore
[ -x "$ULTRACORE" ] || { echo "error: build the gateway first (cargo build --release)" >&2; exit 1; }
source bench/micro/scratch_cluster.sh
start_scratch_cluster audit listen_addresses=127.0.0.1 synchronous_commit=off
export DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
TENANT=22222222-2222-2222-2222-222222222222

"$ULTRACORE" migrate up 22 >/dev/null
"${PSQL[@]}" -c "insert into tenants (tenant_id, slug, name) values ('$TENANT', 'audit-bench', 'Audit bench')"

measure() {
    "${PSQL[@]}" <<SQL
select set_config('app.tenant_id', '$TENANT', false);
do \$\$
declare
    t0 timestamptz;
    bulk_ms numeric;
    single_us numeric;
    verify_ms numeric;
    outcome record;
begin
    t0 := clock_timestamp();
    insert into audit_log (tenant_id, action, entity_type, new_values, ip_address, user_agent)
    select '$TENANT', 'bench.bulk', 'bench', jsonb_build_object('i', g), '203.0.113.7', 'audit bench'
      from generate_series(1, 20000) g;
    bulk_ms := extract(epoch from clock_timestamp() - t0) * 1000;
    commit;
    t0 := clock_timestamp();
    for i in 1..2000 loop
        perform set_config('app.tenant_id', '$TENANT', true);
        insert into audit_log (tenant_id, action, entity_type, new_values, ip_address, user_agent)
        values ('$TENANT', 'bench.single', 'bench', jsonb_build_object('i', i), '203.0.113.7', 'audit bench');
        commit;
    end loop;
    single_us := extract(epoch from clock_timestamp() - t0) * 1e6 / 2000;
    perform set_config('app.tenant_id', '$TENANT', false);
    t0 := clock_timestamp();
    select * into outcome from audit_chain_verify('$TENANT');
    verify_ms := extract(epoch from clock_timestamp() - t0) * 1000;
    if outcome.problem is not null then
        raise exception 'the chain does not verify: %', outcome.problem;
    end if;
    raise notice '% | bulk 20,000 rows % ms (% us/row) | one row per transaction % us | verify % rows % ms (% us/row)',
        '$1', round(bulk_ms), round(bulk_ms * 1000 / 20000), round(single_us),
        outcome.rows_checked, round(verify_ms), round(verify_ms * 1000 / outcome.rows_checked, 1);
end
\$\$;
SQL
}

measure "0022" 2>&1 | sed -n 's/.*NOTICE:  //p'
"$ULTRACORE" migrate up >/dev/null
measure "0023" 2>&1 | sed -n 's/.*NOTICE:  //p'
