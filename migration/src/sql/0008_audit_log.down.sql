drop function audit_chain_verify(uuid, bigint, bytea);
drop trigger audit_log_chain_append on audit_log;
drop function audit_log_chain_append();
drop function audit_log_row_hash(audit_log);
drop function audit_log_canonical(audit_log);
drop table audit_log;
drop function audit_log_refuse_change();
drop function audit_chain_genesis(uuid);
drop function audit_chain_field(text);
