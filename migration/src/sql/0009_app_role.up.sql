-- The serving role. Roles are cluster-wide: create it only when missing, and never drop
-- it in `down` (another database of the cluster may use it). It owns nothing, cannot
-- bypass RLS, and gets the least privileges each table needs. Its password is set by
-- `ultracore migrate up` from ULTRACORE_APP_DB_PASSWORD, never written in a migration.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'ultracore_app') then
        create role ultracore_app login nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
    end if;
    -- Only a superuser may change these two attributes; when we are one, make sure a
    -- pre-existing role has not been given them.
    if (select rolsuper from pg_roles where rolname = current_user) then
        alter role ultracore_app nosuperuser nobypassrls;
    end if;
end
$$;

do $$
begin
    execute format('grant connect on database %I to ultracore_app', current_database());
end
$$;
grant usage on schema public to ultracore_app;

grant select                         on tenants             to ultracore_app;
grant select, insert, update         on users               to ultracore_app;
grant select, insert, update, delete on mfa_backup_codes    to ultracore_app;
grant select, insert, update         on refresh_tokens      to ultracore_app;
grant select, insert, update, delete on trusted_devices     to ultracore_app;
-- The two logs are append-only for the gateway: it may read them and add to them.
grant select, insert                 on security_events     to ultracore_app;
grant select, insert                 on audit_log           to ultracore_app;
grant select, insert, update         on threat_events       to ultracore_app;
grant select, insert, update         on security_incidents  to ultracore_app;
grant select, insert, update         on threat_intelligence to ultracore_app;
grant select, insert, update, delete on rate_limit_entries  to ultracore_app;
-- /readyz compares the applied migrations with the binary's: read access only.
grant select on seaql_migrations to ultracore_app;

-- Login names a tenant by slug before any tenant is set, and RLS rightly hides the
-- registry then. This one SECURITY DEFINER function answers exactly that question and
-- nothing else. It belongs to a role that can do nothing but read the slug column, so
-- even a flaw in it cannot reach further than "which active tenant has this slug".
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'ultracore_tenant_resolver') then
        create role ultracore_tenant_resolver nologin nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
    end if;
end
$$;
grant usage on schema public to ultracore_tenant_resolver;
grant select (tenant_id, slug, status) on tenants to ultracore_tenant_resolver;

create function ultracore_tenant_id_for_login(tenant_slug text) returns uuid
language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
    select t.tenant_id from public.tenants t where t.slug = lower(tenant_slug) and t.status = 'active'
$$;
alter function ultracore_tenant_id_for_login(text) owner to ultracore_tenant_resolver;
revoke all on function ultracore_tenant_id_for_login(text) from public;
grant execute on function ultracore_tenant_id_for_login(text) to ultracore_app;
-- The migrating owner resolves slugs the same way (admin commands), RLS forced or not.
grant execute on function ultracore_tenant_id_for_login(text) to current_user;
