drop table threat_intelligence;
