-- Stored values stay canonical: that spelling was valid before 0015 too.
drop trigger threat_intelligence_canonical_value on threat_intelligence;
drop function ultracore_intel_canonical_value();
drop function ultracore_intel_canonical(text, text);
drop function ultracore_intel_ip_supernets(inet);
drop function ultracore_intel_canonical_ip(inet);
