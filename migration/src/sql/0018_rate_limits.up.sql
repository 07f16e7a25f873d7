-- Adaptive rate limiting shared by every gateway copy (api/src/security/rate_limit.rs).
--
-- Two kinds of windows:
-- 1. Tenant windows in rate_limit_entries, for authenticated mutations: one row per
--    (user, endpoint, window) and one per (IP, endpoint, window) inside the tenant, under
--    the tenant's RLS like every other row.
-- 2. Address windows across tenants, for the public endpoints (login, refreshSession,
--    register, password reset, email verification) and anonymous calls: a sign-in
--    throttle that a client can dodge by naming another tenant's slug is no throttle.
--    These rows name no tenant and no user; they live in a private schema the serving
--    role cannot even see, and one SECURITY DEFINER function counts and answers.

-- (1) One counting row per user window, so concurrent hits upsert a single row.
create unique index rate_limit_entries_user_window_key
    on rate_limit_entries (tenant_id, user_id, endpoint, window_start)
    where user_id is not null;

-- Counts `hits` requests of the caller (the user, and the user's address when known) on
-- `endpoint` in the current fixed window and answers how long the caller must wait, or
-- null when the requests are admitted. Runs as the caller (SECURITY INVOKER), so RLS keeps
-- it inside the transaction's tenant. The user's limit is `base_limit` scaled by a trust
-- multiplier fixed when the window opens: 0.5 at trust 0, 1.0 at 50, 1.5 at 100 (the
-- product rounded, so a step or two of trust does not change a small limit). Every
-- hit counts, refused ones too; past `offender_factor` times the limit the subject is
-- blocked for `offender_block_secs` instead of the rest of the window. The subject's
-- windows older than `retention_secs` are deleted as it goes.
create function ultracore_count_requests(
    p_tenant uuid, p_user uuid, p_ip inet, p_endpoint text, p_hits integer,
    p_window_secs integer, p_base_limit integer, p_ip_limit integer,
    p_offender_factor integer, p_offender_block_secs integer, p_retention_secs integer
) returns integer
language plpgsql volatile security invoker
set search_path = pg_catalog, public, pg_temp as $$
declare
    v_start timestamptz := to_timestamp(floor(extract(epoch from now()) / p_window_secs) * p_window_secs);
    v_end timestamptz := v_start + make_interval(secs => p_window_secs);
    v_multiplier numeric(5,2);
    v_row rate_limit_entries;
    v_wait timestamptz;
begin
    select round(least(1.5, greatest(0.5, 0.5 + u.trust_score / 100)), 2) into v_multiplier
      from users u where u.user_id = p_user;
    v_multiplier := coalesce(v_multiplier, 1.00);

    insert into rate_limit_entries as e
           (tenant_id, user_id, ip_address, endpoint, request_count, window_start, window_end,
            base_limit, adaptive_limit, trust_multiplier)
    values (p_tenant, p_user, p_ip, p_endpoint, p_hits, v_start, v_end,
            p_base_limit, greatest(1, round(p_base_limit * v_multiplier))::integer, v_multiplier)
    on conflict (tenant_id, user_id, endpoint, window_start) where user_id is not null
    do update set request_count = e.request_count + excluded.request_count,
                  ip_address = coalesce(excluded.ip_address, e.ip_address)
    returning * into v_row;
    if v_row.request_count > v_row.adaptive_limit then
        update rate_limit_entries
           set is_blocked = true,
               blocked_until = greatest(blocked_until, case
                   when v_row.request_count > v_row.adaptive_limit * p_offender_factor
                   then now() + make_interval(secs => p_offender_block_secs)
                   else v_end end)
         where entry_id = v_row.entry_id;
    end if;

    if p_ip is not null then
        insert into rate_limit_entries as e
               (tenant_id, ip_address, endpoint, request_count, window_start, window_end,
                base_limit, adaptive_limit)
        values (p_tenant, p_ip, p_endpoint, p_hits, v_start, v_end, p_ip_limit, p_ip_limit)
        on conflict (tenant_id, ip_address, endpoint, window_start) where user_id is null
        do update set request_count = e.request_count + excluded.request_count
        returning * into v_row;
        if v_row.request_count > v_row.adaptive_limit then
            update rate_limit_entries
               set is_blocked = true,
                   blocked_until = greatest(blocked_until, case
                       when v_row.request_count > v_row.adaptive_limit * p_offender_factor
                       then now() + make_interval(secs => p_offender_block_secs)
                       else v_end end)
             where entry_id = v_row.entry_id;
        end if;
    end if;

    delete from rate_limit_entries
     where tenant_id = p_tenant and endpoint = p_endpoint
       and (user_id = p_user or (p_ip is not null and user_id is null and ip_address = p_ip))
       and window_end < now() - make_interval(secs => p_retention_secs)
       and (blocked_until is null or blocked_until < now());

    select max(blocked_until) into v_wait
      from rate_limit_entries
     where tenant_id = p_tenant and endpoint = p_endpoint and is_blocked and blocked_until > now()
       and (user_id = p_user or (p_ip is not null and user_id is null and ip_address = p_ip));
    return case when v_wait is null then null
                else greatest(1, ceil(extract(epoch from v_wait - now())))::integer end;
end
$$;
revoke all on function ultracore_count_requests(uuid, uuid, inet, text, integer, integer, integer, integer, integer, integer, integer) from public;
grant execute on function ultracore_count_requests(uuid, uuid, inet, text, integer, integer, integer, integer, integer, integer, integer) to ultracore_app;

-- (2) Address windows across tenants.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'ultracore_address_limiter') then
        create role ultracore_address_limiter nologin nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
    end if;
end
$$;

create schema ultracore_private;
-- The serving role gets no USAGE here: it cannot name these rows, only call the function.
revoke all on schema ultracore_private from public;
grant usage on schema ultracore_private to ultracore_address_limiter;

create table ultracore_private.address_windows (
    ip_address    inet not null,
    endpoint      varchar(255) not null,
    window_start  timestamptz not null,
    window_end    timestamptz not null,
    request_count integer not null,
    base_limit    integer not null,
    is_blocked    boolean not null default false,
    blocked_until timestamptz,
    primary key (ip_address, endpoint, window_start),
    constraint address_windows_order check (window_end > window_start),
    constraint address_windows_counts_nonneg check (request_count >= 0 and base_limit >= 0)
);
alter table ultracore_private.address_windows enable row level security;
alter table ultracore_private.address_windows force row level security;
create policy address_limiter_only on ultracore_private.address_windows
    to ultracore_address_limiter using (true) with check (true);
grant select, insert, update, delete on ultracore_private.address_windows to ultracore_address_limiter;

-- Counts `hits` requests from `p_ip` on `p_endpoint` across every tenant and answers the
-- seconds to wait, or null when admitted (same window, blocking and sweeping rules as
-- ultracore_count_requests).
create function ultracore_count_address_requests(
    p_ip inet, p_endpoint text, p_hits integer, p_window_secs integer, p_limit integer,
    p_offender_factor integer, p_offender_block_secs integer, p_retention_secs integer
) returns integer
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp as $$
declare
    v_start timestamptz := to_timestamp(floor(extract(epoch from now()) / p_window_secs) * p_window_secs);
    v_end timestamptz := v_start + make_interval(secs => p_window_secs);
    v_count integer;
    v_wait timestamptz;
begin
    insert into ultracore_private.address_windows as w
           (ip_address, endpoint, window_start, window_end, request_count, base_limit)
    values (p_ip, p_endpoint, v_start, v_end, p_hits, p_limit)
    on conflict (ip_address, endpoint, window_start)
    do update set request_count = w.request_count + excluded.request_count,
                  base_limit = excluded.base_limit
    returning w.request_count into v_count;
    if v_count > p_limit then
        update ultracore_private.address_windows
           set is_blocked = true,
               blocked_until = greatest(blocked_until, case
                   when v_count > p_limit * p_offender_factor
                   then now() + make_interval(secs => p_offender_block_secs)
                   else v_end end)
         where ip_address = p_ip and endpoint = p_endpoint and window_start = v_start;
    end if;
    delete from ultracore_private.address_windows
     where ip_address = p_ip and endpoint = p_endpoint
       and window_end < now() - make_interval(secs => p_retention_secs)
       and (blocked_until is null or blocked_until < now());
    select max(blocked_until) into v_wait
      from ultracore_private.address_windows
     where ip_address = p_ip and endpoint = p_endpoint and is_blocked and blocked_until > now();
    return case when v_wait is null then null
                else greatest(1, ceil(extract(epoch from v_wait - now())))::integer end;
end
$$;
alter function ultracore_count_address_requests(inet, text, integer, integer, integer, integer, integer, integer)
    owner to ultracore_address_limiter;
revoke all on function ultracore_count_address_requests(inet, text, integer, integer, integer, integer, integer, integer) from public;
grant execute on function ultracore_count_address_requests(inet, text, integer, integer, integer, integer, integer, integer) to ultracore_app;
