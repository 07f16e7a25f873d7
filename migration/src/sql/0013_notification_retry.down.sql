-- Revoke, never drop: the role is cluster-wide.
drop function ultracore_tenants_with_due_notifications();
drop policy outbox_scanner_lookup on notification_outbox;
revoke all on notification_outbox from ultracore_outbox_scanner;
revoke usage on schema public from ultracore_outbox_scanner;
drop index notification_outbox_due_idx;
alter table notification_outbox drop column next_attempt_at;
