drop table trusted_devices;
drop table refresh_tokens;
drop table mfa_backup_codes;
