-- Back to 0004's definition of idx_security_events_tenant (without INCLUDE columns) and
-- the default autovacuum thresholds.
alter table security_events reset (autovacuum_vacuum_insert_threshold,
                                   autovacuum_vacuum_insert_scale_factor);
create index security_events_tenant_0017 on security_events (tenant_id, "timestamp" desc, event_id desc);
drop index idx_security_events_tenant;
alter index security_events_tenant_0017 rename to idx_security_events_tenant;
