-- Device trust and second-factor strength of sessions.
--
-- A device becomes trusted only from a session that passed MFA; the tenant may then let
-- that device skip the second factor for a number of days counted from `trusted_at`.
alter table trusted_devices add column trusted_at timestamptz;
update trusted_devices set trusted_at = updated_at where is_trusted;

-- trusted_at follows is_trusted whoever writes the row (the API, an import, an
-- operator's SQL): set when trust starts, cleared when it ends.
create function trusted_devices_track_trust() returns trigger
language plpgsql as $$
begin
    if not new.is_trusted then
        new.trusted_at := null;
    elsif new.trusted_at is null then
        new.trusted_at := now();
    end if;
    return new;
end
$$;
create trigger trusted_devices_track_trust before insert or update on trusted_devices
    for each row execute function trusted_devices_track_trust();

-- When the session's sign-in passed a second factor (null: password only). Rotation
-- copies it to the family's next token.
alter table refresh_tokens add column mfa_verified_at timestamptz;
