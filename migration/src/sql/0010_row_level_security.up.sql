-- Row-level security on every table, forced so that the owner obeys it too.
--
-- The tenant of a transaction is the transaction-local setting app.tenant_id. Never set:
-- current_setting(..., true) is NULL; after a transaction that set it has ended on the
-- same connection: ''. nullif turns both into NULL, and `tenant_id = NULL` is never true,
-- so a missing tenant means no rows, never all rows. A value that is not a UUID fails the
-- cast and the statement errors. The (select ...) makes PostgreSQL evaluate the setting
-- once per statement (an InitPlan) instead of once per row.
do $$
declare
    t text;
begin
    foreach t in array array['tenants', 'users', 'mfa_backup_codes', 'refresh_tokens',
                             'trusted_devices', 'security_events', 'threat_events',
                             'security_incidents', 'rate_limit_entries', 'audit_log'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format($p$create policy tenant_isolation on %I
                           using (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))
                           with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))$p$, t);
    end loop;
end
$$;

-- The tenant resolver (see ultracore_tenant_id_for_login) reads slugs of all tenants.
create policy tenant_resolver_lookup on tenants for select to ultracore_tenant_resolver using (true);

-- Threat intelligence: global indicators (tenant_id NULL) are readable by every tenant;
-- writes are limited to the tenant's own rows, so no tenant can create, change or delete
-- a global indicator through the gateway (the platform writes them as the owner).
alter table threat_intelligence enable row level security;
alter table threat_intelligence force row level security;
-- Global rows too are only visible inside a tenant transaction: with no tenant set, a
-- forgotten tenant scope reads nothing at all, as on every other table.
create policy intel_read on threat_intelligence for select
    using ((select nullif(current_setting('app.tenant_id', true), '')::uuid) is not null
           and (tenant_id is null
                or tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid)));
create policy intel_insert on threat_intelligence for insert
    with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid));
create policy intel_update on threat_intelligence for update
    using (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))
    with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid));
create policy intel_delete on threat_intelligence for delete
    using (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid));
