-- A cheaper audit chain (#6): the same encoding, computed without re-parsing.
--
-- Measured on a scratch cluster (one audit row per transaction, as a mutation writes it,
-- and a bulk INSERT ... SELECT of 20,000 rows): 0021's functions cost ~0.5 ms per
-- single-row statement and ~0.65 ms per row in bulk. Two causes, neither changing a byte
-- of what is hashed:
--   * audit_log_canonical read its four digests from a sub-select that the planner
--     pulled up, so audit_log_pii_digests was inlined once per reference: sixteen
--     SHA-256s per row instead of four (pg_stat_user_functions counted 80,000
--     audit_pii_digest calls for 5,000 rows);
--   * audit_pii_digest and audit_chain_genesis were declared IMMUTABLE around
--     convert_to(), which is STABLE, so PostgreSQL refused to inline them and ran them as
--     SQL functions, parsing and planning their bodies again in every statement (perf:
--     27 % of a single-row insert in fmgr_sql, most of it in the parser). audit_chain_field
--     is inlined only when its argument is cheap, so the canonical text is now built in
--     PL/pgSQL from variables (plans cached for the session) rather than from nested
--     function calls.
-- After: ~0.14 ms per row in bulk, ~0.34 ms per single-row statement
-- (bench/micro/audit_append.sh measures both sides). The test that chains written before
-- and after this migration verify is in tests/audit_chain.rs.

alter function audit_pii_digest(bytea, text, text) stable;
alter function audit_chain_genesis(uuid) stable;

create or replace function audit_log_canonical(r audit_log) returns text
language plpgsql stable parallel safe as $$
declare
    old_digest   text;
    new_digest   text;
    ip_digest    text;
    agent_digest text;
begin
    -- The stored digests once the row is erased, else computed from the salt (a row
    -- with neither encodes NULLs and so can never match its hash).
    if r.pii_digests is not null then
        old_digest := r.pii_digests->>'old_values';
        new_digest := r.pii_digests->>'new_values';
        ip_digest := r.pii_digests->>'ip_address';
        agent_digest := r.pii_digests->>'user_agent';
    else
        old_digest := audit_pii_digest(r.pii_salt, 'old_values', r.old_values::text);
        new_digest := audit_pii_digest(r.pii_salt, 'new_values', r.new_values::text);
        ip_digest := audit_pii_digest(r.pii_salt, 'ip_address', r.ip_address::text);
        agent_digest := audit_pii_digest(r.pii_salt, 'user_agent', r.user_agent);
    end if;
    return 'ultracore.audit.v2;'
        || audit_chain_field(r.audit_id::text)
        || audit_chain_field(r.tenant_id::text)
        || audit_chain_field(r.chain_seq::text)
        || audit_chain_field(r.user_id::text)
        || audit_chain_field(r.action)
        || audit_chain_field(r.entity_type)
        || audit_chain_field(r.entity_id::text)
        || audit_chain_field(old_digest)
        || audit_chain_field(new_digest)
        || audit_chain_field(ip_digest)
        || audit_chain_field(agent_digest)
        || audit_chain_field(to_char(r."timestamp" at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
end
$$;
