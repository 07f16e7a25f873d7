-- Security events: the append-only stream of everything security-relevant. This table
-- grows to hundreds of millions of rows, so every list index leads with tenant_id (RLS
-- adds `tenant_id = $current` to every query) and ends with the sort key, and the pure
-- time index is BRIN: tiny, and cheap to maintain on an append-mostly table. README
-- ("Growth") explains how it would be range-partitioned by "timestamp".
create table security_events (
    event_id           uuid primary key default ultracore_uuid_v7(),
    tenant_id          uuid not null references tenants (tenant_id),
    user_id            uuid,
    event_type         varchar(100) not null,
    event_category     varchar(50)  not null,
    severity           varchar(20)  not null default 'low',
    ip_address         inet,
    device_fingerprint varchar(255),
    user_agent         text,
    geolocation        jsonb,
    description        text,
    metadata           jsonb not null default '{}'::jsonb,
    risk_score         numeric(5,2),
    fraud_score        numeric(5,2),
    anomaly_score      numeric(5,2),
    action_taken       varchar(50),
    "timestamp"        timestamptz not null default now(),
    constraint security_events_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id) on delete set null (user_id),
    constraint security_events_category_valid check (event_category in
        ('authentication', 'authorization', 'account', 'session', 'threat', 'incident', 'rate_limit')),
    constraint security_events_severity_valid check (severity in ('low', 'medium', 'high', 'critical')),
    constraint security_events_action_valid check (action_taken in ('allow', 'deny', 'challenge', 'block', 'lock')),
    constraint security_events_risk_score_range check (risk_score between 0 and 100),
    constraint security_events_fraud_score_range check (fraud_score between 0 and 1),
    constraint security_events_anomaly_score_range check (anomaly_score between 0 and 1),
    constraint security_events_geolocation_object check (geolocation is null or jsonb_typeof(geolocation) = 'object'),
    constraint security_events_metadata_object check (jsonb_typeof(metadata) = 'object')
);

create index idx_security_events_tenant on security_events (tenant_id, "timestamp" desc, event_id desc);
create index idx_security_events_user on security_events (user_id) where user_id is not null;
create index idx_security_events_type on security_events (event_type);
create index idx_security_events_category on security_events (tenant_id, event_category, "timestamp" desc, event_id desc);
create index idx_security_events_severity on security_events (severity);
create index idx_security_events_timestamp on security_events using brin ("timestamp");
create index idx_security_events_ip on security_events (tenant_id, ip_address);
create index idx_security_events_tenant_type on security_events (tenant_id, event_type, "timestamp" desc, event_id desc);
create index idx_security_events_user_timestamp on security_events (tenant_id, user_id, "timestamp" desc, event_id desc);
create index idx_security_events_severity_timestamp on security_events (tenant_id, severity, "timestamp" desc, event_id desc);
