drop policy intel_delete on threat_intelligence;
drop policy intel_update on threat_intelligence;
drop policy intel_insert on threat_intelligence;
drop policy intel_read on threat_intelligence;
alter table threat_intelligence no force row level security;
alter table threat_intelligence disable row level security;
drop policy tenant_resolver_lookup on tenants;
do $$
declare
    t text;
begin
    foreach t in array array['tenants', 'users', 'mfa_backup_codes', 'refresh_tokens',
                             'trusted_devices', 'security_events', 'threat_events',
                             'security_incidents', 'rate_limit_entries', 'audit_log'] loop
        execute format('drop policy tenant_isolation on %I', t);
        execute format('alter table %I no force row level security', t);
        execute format('alter table %I disable row level security', t);
    end loop;
end
$$;
