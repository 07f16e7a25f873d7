drop table rate_limit_entries;
