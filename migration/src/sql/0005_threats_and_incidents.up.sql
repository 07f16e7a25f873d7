-- Detected threats and the incidents analysts investigate.
create table threat_events (
    threat_id                uuid primary key default ultracore_uuid_v7(),
    tenant_id                uuid not null references tenants (tenant_id),
    threat_type              varchar(100) not null,
    severity                 varchar(20)  not null,
    status                   varchar(50)  not null default 'detected',
    description              text,
    indicators               text[] not null default '{}',
    affected_user_ids        uuid[] not null default '{}',
    affected_account_ids     uuid[] not null default '{}',
    affected_transaction_ids uuid[] not null default '{}',
    detection_method         varchar(100) not null default 'rule_based',
    confidence               numeric(5,2),
    response_action          varchar(100),
    response_status          varchar(50),
    detected_at              timestamptz not null default now(),
    mitigated_at             timestamptz,
    resolved_at              timestamptz,
    constraint threat_events_severity_valid check (severity in ('low', 'medium', 'high', 'critical')),
    constraint threat_events_status_valid check (status in ('detected', 'investigating', 'mitigated', 'resolved')),
    constraint threat_events_detection_method_valid check (detection_method in ('ml_model', 'rule_based', 'manual')),
    constraint threat_events_response_status_valid check (response_status in ('pending', 'executed', 'failed')),
    constraint threat_events_confidence_range check (confidence between 0 and 100)
);

create index idx_threat_events_tenant on threat_events (tenant_id, detected_at desc, threat_id desc);
create index idx_threat_events_type on threat_events (threat_type);
create index idx_threat_events_severity on threat_events (tenant_id, severity, detected_at desc, threat_id desc);
create index idx_threat_events_status on threat_events (tenant_id, status, detected_at desc, threat_id desc);
create index idx_threat_events_detected on threat_events (detected_at);
create index idx_threat_events_tenant_type on threat_events (tenant_id, threat_type, detected_at desc, threat_id desc);
create index idx_threat_events_severity_status on threat_events (tenant_id, severity, status);

create table security_incidents (
    incident_id        uuid primary key default ultracore_uuid_v7(),
    tenant_id          uuid not null references tenants (tenant_id),
    incident_type      varchar(100) not null,
    severity           varchar(20)  not null,
    status             varchar(50)  not null default 'open',
    priority           varchar(20)  not null default 'medium',
    title              varchar(500) not null,
    description        text,
    assigned_to        uuid,
    related_threat_ids uuid[] not null default '{}',
    related_event_ids  uuid[] not null default '{}',
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    resolved_at        timestamptz,
    closed_at          timestamptz,
    constraint security_incidents_assignee_fkey foreign key (tenant_id, assigned_to)
        references users (tenant_id, user_id) on delete set null (assigned_to),
    constraint security_incidents_severity_valid check (severity in ('low', 'medium', 'high', 'critical')),
    constraint security_incidents_priority_valid check (priority in ('low', 'medium', 'high', 'critical')),
    constraint security_incidents_status_valid check (status in ('open', 'investigating', 'resolved', 'closed')),
    constraint security_incidents_title_not_blank check (length(btrim(title)) > 0)
);

create index idx_security_incidents_tenant on security_incidents (tenant_id, created_at desc, incident_id desc);
create index idx_security_incidents_type on security_incidents (tenant_id, incident_type, created_at desc, incident_id desc);
create index idx_security_incidents_severity on security_incidents (tenant_id, severity, created_at desc, incident_id desc);
create index idx_security_incidents_status on security_incidents (status);
create index idx_security_incidents_priority on security_incidents (tenant_id, priority, created_at desc, incident_id desc);
create index idx_security_incidents_tenant_status on security_incidents (tenant_id, status, created_at desc, incident_id desc);
create index idx_security_incidents_severity_priority on security_incidents (tenant_id, severity, priority);
-- Not in the seed: supports the composite foreign key and "incidents assigned to me".
create index security_incidents_assignee_idx on security_incidents (tenant_id, assigned_to)
    where assigned_to is not null;

create trigger security_incidents_touch_updated_at before update on security_incidents
    for each row execute function ultracore_touch_updated_at();
