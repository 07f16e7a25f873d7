-- Trusted documents (persisted operations): hash -> document, shared by every gateway
-- copy (api/src/graphql/persisted.rs). They belong to the platform, not to a tenant, so
-- they live outside `public` (where every table is a tenant's, under RLS): the serving
-- role may read them, only the owner registers them (`ultracore documents register`).
create schema ultracore_registry;
revoke all on schema ultracore_registry from public;
grant usage on schema ultracore_registry to ultracore_app;

create table ultracore_registry.trusted_documents (
    sha256          char(64) primary key,
    document        text not null,
    operation_names text[] not null default '{}',
    registered_at   timestamptz not null default now(),
    registered_by   text not null default current_user,
    -- The key is the document's own hash (what clients send as persistedQuery.sha256Hash):
    -- a row can never map a hash to another document.
    constraint trusted_documents_hash_matches
        check (sha256 = encode(sha256(convert_to(document, 'UTF8')), 'hex')),
    constraint trusted_documents_size check (length(document) <= 262144)
);
grant select on ultracore_registry.trusted_documents to ultracore_app;
