drop trigger feed_security_events on security_events;
drop trigger feed_threat_events on threat_events;
drop trigger feed_security_incidents on security_incidents;
drop table feed_changes;
drop function feed_record_security_event();
drop function feed_record_threat();
drop function feed_record_incident();
drop function feed_notify();
