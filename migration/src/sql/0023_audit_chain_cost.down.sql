-- Back to 0022: 0021's definitions of the same encoding.
alter function audit_pii_digest(bytea, text, text) immutable;
alter function audit_chain_genesis(uuid) immutable;

-- Encoding v2: the same fixed order and session-independent formats as v1 (0008), with
-- the four personal fields replaced by their digests. A missing digest (no salt and no
-- stored digest) encodes as NULL and so can never match the stored hash.
create or replace function audit_log_canonical(r audit_log) returns text
language sql stable parallel safe as $$
    select 'ultracore.audit.v2;'
        || audit_chain_field(r.audit_id::text)
        || audit_chain_field(r.tenant_id::text)
        || audit_chain_field(r.chain_seq::text)
        || audit_chain_field(r.user_id::text)
        || audit_chain_field(r.action)
        || audit_chain_field(r.entity_type)
        || audit_chain_field(r.entity_id::text)
        || audit_chain_field(d->>'old_values')
        || audit_chain_field(d->>'new_values')
        || audit_chain_field(d->>'ip_address')
        || audit_chain_field(d->>'user_agent')
        || audit_chain_field(to_char(r."timestamp" at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
      from (select audit_log_pii_digests(r) as d) digests
$$;
