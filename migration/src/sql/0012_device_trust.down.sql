alter table refresh_tokens drop column mfa_verified_at;
alter table trusted_devices drop constraint trusted_devices_trusted_at_set;
alter table trusted_devices drop column trusted_at;
