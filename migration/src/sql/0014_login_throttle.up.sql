-- One counting window per (tenant, IP, endpoint, start) for IP-wide limits (user_id is
-- null), so concurrent failures from one address upsert a single row
-- (api/src/auth/throttle.rs).
create unique index rate_limit_entries_ip_window_key
    on rate_limit_entries (tenant_id, ip_address, endpoint, window_start)
    where user_id is null;
