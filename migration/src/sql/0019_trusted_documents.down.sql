drop table ultracore_registry.trusted_documents;
drop schema ultracore_registry;
