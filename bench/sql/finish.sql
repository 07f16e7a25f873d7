-- Dataset, step 3 (after the indexes are rebuilt): check what the loaders skipped, then
-- drop the generator's schema. Fails (ON_ERROR_STOP) when a reference is dangling.

\set ON_ERROR_STOP on

do $$
declare
    bad bigint;
begin
    select count(*) into bad from security_events e
     where e.user_id is not null
       and not exists (select 1 from users u where u.tenant_id = e.tenant_id and u.user_id = e.user_id);
    if bad > 0 then raise exception 'dataset: % security events name a missing user', bad; end if;

    select count(*) into bad from security_incidents i
     where i.assigned_to is not null
       and not exists (select 1 from users u where u.tenant_id = i.tenant_id and u.user_id = i.assigned_to);
    if bad > 0 then raise exception 'dataset: % incidents name a missing assignee', bad; end if;

    select count(*) into bad from trusted_devices d
     where not exists (select 1 from users u where u.tenant_id = d.tenant_id and u.user_id = d.user_id);
    if bad > 0 then raise exception 'dataset: % devices name a missing user', bad; end if;

    select count(*) into bad from (select t.tenant_id, unnest(t.affected_user_ids) as user_id from threat_events t) a
     where not exists (select 1 from users u where u.tenant_id = a.tenant_id and u.user_id = a.user_id);
    if bad > 0 then raise exception 'dataset: % affected users of threats are missing', bad; end if;

    select count(*) into bad from (select i.tenant_id, unnest(i.related_threat_ids) as threat_id
                                     from security_incidents i) r
     where not exists (select 1 from threat_events t where t.tenant_id = r.tenant_id and t.threat_id = r.threat_id);
    if bad > 0 then raise exception 'dataset: % related threats of incidents are missing', bad; end if;
end
$$;

drop schema bench cascade;
