drop table security_incidents;
drop table threat_events;
