drop function ultracore_count_address_requests(inet, text, integer, integer, integer, integer, integer, integer);
drop table ultracore_private.address_windows;
drop schema ultracore_private;
-- The cluster-wide role ultracore_address_limiter stays (another database may use it);
-- its only grants went with the schema.
drop function ultracore_count_requests(uuid, uuid, inet, text, integer, integer, integer, integer, integer, integer, integer);
drop index rate_limit_entries_user_window_key;
