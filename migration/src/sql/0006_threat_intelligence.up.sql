-- Threat intelligence indicators. tenant_id NULL marks a global indicator: every tenant
-- reads it, only the platform (the owner, through the CLI) writes it.
create table threat_intelligence (
    intel_id        uuid primary key default ultracore_uuid_v7(),
    tenant_id       uuid references tenants (tenant_id),
    indicator_type  varchar(50)  not null,
    indicator_value varchar(500) not null,
    threat_type     varchar(100),
    severity        varchar(20)  not null default 'medium',
    confidence      numeric(5,2),
    source          varchar(100) not null default 'internal',
    source_url      text,
    description     text,
    metadata        jsonb not null default '{}'::jsonb,
    first_seen      timestamptz not null default now(),
    last_seen       timestamptz not null default now(),
    expires_at      timestamptz,
    is_active       boolean not null default true,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint threat_intelligence_type_valid check (indicator_type in ('ip', 'domain', 'email', 'hash')),
    constraint threat_intelligence_severity_valid check (severity in ('low', 'medium', 'high', 'critical')),
    constraint threat_intelligence_confidence_range check (confidence between 0 and 100),
    constraint threat_intelligence_value_not_blank check (length(btrim(indicator_value)) > 0),
    constraint threat_intelligence_metadata_object check (jsonb_typeof(metadata) = 'object'),
    -- One row per indicator per scope (a tenant, or global): imports upsert on it.
    constraint threat_intelligence_scope_indicator_key
        unique nulls not distinct (tenant_id, indicator_type, indicator_value)
);

create index idx_threat_intel_indicator_type on threat_intelligence (indicator_type);
create index idx_threat_intel_indicator_value on threat_intelligence (indicator_value);
create index idx_threat_intel_active on threat_intelligence (is_active);
create index idx_threat_intel_indicator on threat_intelligence (indicator_type, indicator_value);
create index idx_threat_intel_active_expires on threat_intelligence (is_active, expires_at);
-- Not in the seed: the tenant's own list of indicators, newest first.
create index threat_intelligence_tenant_idx on threat_intelligence (tenant_id, created_at desc, intel_id desc);

create trigger threat_intelligence_touch_updated_at before update on threat_intelligence
    for each row execute function ultracore_touch_updated_at();
