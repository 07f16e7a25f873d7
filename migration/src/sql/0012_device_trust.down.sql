alter table refresh_tokens drop column mfa_verified_at;
drop trigger trusted_devices_track_trust on trusted_devices;
drop function trusted_devices_track_trust();
alter table trusted_devices drop column trusted_at;
