# Sourced by the micro-benchmarks: starts a throwaway PostgreSQL cluster and stops and
# removes it when the script exits.
#   start_scratch_cluster NAME [SETTING ...]   each SETTING is passed as `-c SETTING`
# Sets BIN (PostgreSQL's server binaries: the newest /usr/lib/postgresql/*/bin, else
# pg_config's), DIR (the cluster's directory, also its socket directory), PORT, AS (the
# command prefix that runs a binary as `postgres` when we are root; initdb refuses root)
# and PSQL (psql as the superuser `postgres`, quiet, unaligned, stopping at the first error).
start_scratch_cluster() {
    local name=$1
    shift
    BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)")
    [ -x "$BIN/initdb" ] || BIN=$(pg_config --bindir)
    DIR=$(mktemp -d "/tmp/ultracore-$name.XXXXXX")
    AS=()
    if [ "$(id -u)" = 0 ]; then chown postgres "$DIR"; AS=(runuser -u postgres --); fi
    PORT=$((20000 + RANDOM % 20000))
    trap stop_scratch_cluster EXIT
    local options="-p $PORT -k $DIR" setting
    for setting in "$@"; do options+=" -c $setting"; done
    "${AS[@]}" "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
    "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -o "$options" start >/dev/null
    PSQL=("${AS[@]}" "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1)
}

stop_scratch_cluster() {
    "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" stop -m fast >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
