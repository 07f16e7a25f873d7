-- Revoke, never drop: the roles are cluster-wide.
drop function ultracore_tenant_id_for_login(text);
revoke all on tenants from ultracore_tenant_resolver;
revoke usage on schema public from ultracore_tenant_resolver;
revoke all on tenants, users, mfa_backup_codes, refresh_tokens, trusted_devices,
              security_events, audit_log, threat_events, security_incidents,
              threat_intelligence, rate_limit_entries from ultracore_app;
revoke all on seaql_migrations from ultracore_app;
revoke usage on schema public from ultracore_app;
do $$
begin
    execute format('revoke connect on database %I from ultracore_app', current_database());
end
$$;
