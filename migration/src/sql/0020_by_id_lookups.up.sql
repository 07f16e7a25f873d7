-- Relations load rows by id under RLS: `tenant_id = <the transaction's tenant> and
-- threat_id = any($1)`. The tenant comes from the policy's sub-select (an InitPlan), so
-- the planner cannot tell how selective it is, and at full scale it combined a
-- tenant-leading index (every threat of a big tenant) with the primary key in a
-- BitmapAnd: ~5 ms of a nested query's ~6 ms in PostgreSQL (bench/README.md). One index
-- on (tenant_id, id) serves both conditions in a single scan, as idx_users_tenant does
-- for users.
create unique index threat_events_tenant_id_key on threat_events (tenant_id, threat_id);
create unique index security_incidents_tenant_id_key on security_incidents (tenant_id, incident_id);
