revoke all on notification_outbox, account_tokens from ultracore_app;
drop table notification_outbox;
drop table account_tokens;
alter table users
    drop constraint users_lockout_count_nonneg,
    drop column lockout_count,
    drop column mfa_secret_key_id,
    drop column totp_last_step;
drop trigger refresh_tokens_default_family on refresh_tokens;
drop function refresh_tokens_default_family();
drop index refresh_tokens_family_idx;
alter table refresh_tokens
    drop column last_used_at,
    drop column replaced_by,
    drop column family_id;
