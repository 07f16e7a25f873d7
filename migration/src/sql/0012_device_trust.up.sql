-- Device trust and second-factor strength of sessions.
--
-- A device becomes trusted only from a session that passed MFA; the tenant may then let
-- that device skip the second factor for a number of days counted from `trusted_at`.
alter table trusted_devices add column trusted_at timestamptz;
update trusted_devices set trusted_at = updated_at where is_trusted;
alter table trusted_devices add constraint trusted_devices_trusted_at_set
    check (not is_trusted or trusted_at is not null);

-- When the session's sign-in passed a second factor (null: password only). Rotation
-- copies it to the family's next token.
alter table refresh_tokens add column mfa_verified_at timestamptz;
