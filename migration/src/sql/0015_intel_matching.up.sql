-- Threat-intelligence matching that stays fast under row-level security
-- (api/src/intel/matching.rs).
--
-- The gateway matches as ultracore_app, under forced RLS. PostgreSQL then lets a query's
-- condition drive an index only if every function in it is LEAKPROOF (a condition run
-- before the policy could otherwise reveal rows the policy hides), and neither inet
-- containment (>>=), the cast of varchar to inet, nor lower() is; text equality is. A
-- GiST index on (indicator_value::inet) would therefore serve the owner and never the
-- gateway. Instead every stored value gets one canonical spelling, and matching looks up
-- exact values: an address by the list of its 33 (IPv4) or 129 (IPv6) enclosing networks,
-- a domain by itself and its parent domains, an email by itself. The scope key
-- threat_intelligence_scope_indicator_key (tenant_id, indicator_type, indicator_value)
-- answers each lookup with a few index probes per scope (the tenant's own rows, then the
-- global ones), however many indicators there are.

-- The one spelling of a network: host bits cleared, a single address without its prefix
-- length, an IPv4-mapped IPv6 network as IPv4. api/src/intel/parse.rs canonical_network
-- writes the same; this one is the rule, for every writer. One expression, and neither
-- STRICT nor with a FROM: PostgreSQL then inlines it (and ultracore_intel_canonical) into
-- the trigger's expression instead of calling it per row, which makes a bulk import's
-- trigger about ten times cheaper.
create function ultracore_intel_canonical_ip(ip inet) returns text
language sql immutable parallel safe
as $$
    select case
        when family(ip) = 6 and masklen(ip) >= 96 and ip <<= inet '::ffff:0.0.0.0/96'
            then case when masklen(ip) = 128
                      then substr(host(ip), 8)
                      else network(set_masklen(substr(host(ip), 8)::inet, masklen(ip) - 96))::text end
        when masklen(ip) = case family(ip) when 4 then 32 else 128 end then host(ip)
        else network(ip)::text
    end
$$;

-- The canonical spellings of every network that contains ip, the address itself first.
create function ultracore_intel_ip_supernets(ip inet) returns text[]
language sql immutable strict parallel safe
as $$
    select array_agg(ultracore_intel_canonical_ip(set_masklen(a, n)) order by n desc)
      from (select ultracore_intel_canonical_ip(host(ip)::inet)::inet as a) as address,
           generate_series(0, case family(a) when 4 then 32 else 128 end) as n
$$;

-- A value as matching looks it up: ip as above (an invalid address fails the cast, so
-- no ip row is ever unreadable as inet), a domain lowercase without a trailing dot,
-- emails and hashes lowercase.
create function ultracore_intel_canonical(kind text, value text) returns text
language sql immutable parallel safe
as $$
    select case kind
               when 'ip' then ultracore_intel_canonical_ip(btrim(value)::inet)
               when 'domain' then lower(rtrim(btrim(value), '.'))
               else lower(btrim(value))
           end
$$;

-- Whoever writes (the import, the addThreatIndicator mutation, an operator's SQL), the
-- stored value is canonical: a row matching cannot find would be a silent false negative.
-- Before the unique check, so two spellings of one indicator are one row.
create function ultracore_intel_canonical_value() returns trigger
language plpgsql
as $$
begin
    new.indicator_value := ultracore_intel_canonical(new.indicator_type, new.indicator_value);
    return new;
end
$$;

create trigger threat_intelligence_canonical_value
    before insert or update of indicator_type, indicator_value on threat_intelligence
    for each row execute function ultracore_intel_canonical_value();

-- Rows written before this migration. Of several spellings of one indicator in one scope
-- only one can be canonical (the key is unique): the one already canonical, else the
-- oldest; the others stay as they are, found through that twin. Run as a superuser owner
-- (as the embedded and compose setups do): an owner bound by RLS sees no rows here.
with wanted as (
    select intel_id, canonical, indicator_value = canonical as already,
           row_number() over (partition by tenant_id, indicator_type, canonical
                              order by indicator_value = canonical desc, created_at, intel_id) as rank
      from (select intel_id, tenant_id, indicator_type, indicator_value, created_at,
                   ultracore_intel_canonical(indicator_type, indicator_value) as canonical
              from threat_intelligence) as spelled
)
update threat_intelligence t
   set indicator_value = w.canonical
  from wanted w
 where w.intel_id = t.intel_id and w.rank = 1 and not w.already;
