drop table tenants;
drop function ultracore_touch_updated_at();
drop function ultracore_uuid_v7();
