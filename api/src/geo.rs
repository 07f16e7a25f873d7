//! Where a client is, when the operator has said how to tell: from a GeoIP database in
//! MaxMind's format (GeoLite2-City, GeoIP2-City, DB-IP's city lite), or from headers a
//! configured trusted proxy sets (a CDN's visitor-location headers). Without either the
//! gateway works the same, and impossible travel stays silent.
//!
//! A location is stored with the sign-in's security event (`geolocation`) and compared
//! with the previous successful sign-in's by the risk engine.

use std::net::IpAddr;
use std::path::PathBuf;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

/// Operator settings (`[geo]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GeoConfig {
    /// A MaxMind-format city database, read once at start.
    pub database: Option<PathBuf>,
    /// Headers set by a trusted proxy, read only when the request came through one
    /// (`http.trusted_proxies`). Latitude and longitude are both needed.
    pub latitude_header: Option<String>,
    pub longitude_header: Option<String>,
    pub country_header: Option<String>,
    pub city_header: Option<String>,
}

/// A located client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// `database` or `proxy`.
    pub source: String,
}

/// Mean Earth radius for the haversine distance.
const EARTH_RADIUS_KM: f64 = 6371.0;

impl GeoPoint {
    /// Great-circle distance in kilometres.
    pub fn distance_km(&self, other: &GeoPoint) -> f64 {
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let d_lat = lat2 - lat1;
        let d_lon = (other.longitude - self.longitude).to_radians();
        let a = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
    }

    /// The stored form (security_events.geolocation).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub fn from_json(value: &serde_json::Value) -> Option<GeoPoint> {
        let point: GeoPoint = serde_json::from_value(value.clone()).ok()?;
        valid_coordinates(point.latitude, point.longitude).then_some(point)
    }

    /// A short label for descriptions and indicators ("Frankfurt, DE").
    pub fn label(&self) -> String {
        match (&self.city, &self.country) {
            (Some(city), Some(country)) => format!("{city}, {country}"),
            (None, Some(country)) => country.clone(),
            (Some(city), None) => city.clone(),
            (None, None) => format!("{:.2},{:.2}", self.latitude, self.longitude),
        }
    }
}

fn valid_coordinates(latitude: f64, longitude: f64) -> bool {
    latitude.is_finite() && longitude.is_finite() && latitude.abs() <= 90.0 && longitude.abs() <= 180.0
}

/// Header text as a short printable label (header values come from the proxy, but are
/// still bounded and stripped of control characters before they reach a row or a log).
fn header_text(headers: &HeaderMap, name: &Option<String>) -> Option<String> {
    let value = headers.get(name.as_deref()?)?.to_str().ok()?;
    let text: String = value.chars().filter(|c| !c.is_control()).take(64).collect();
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Locates clients; built once at start.
pub struct GeoLocator {
    config: GeoConfig,
    database: Option<maxminddb::Reader<Vec<u8>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open the GeoIP database {path}: {reason}")]
pub struct GeoError {
    path: String,
    reason: String,
}

impl GeoLocator {
    /// Opens the configured database (an unreadable one is an error at start, not a
    /// silently blind risk engine).
    pub fn open(config: &GeoConfig) -> Result<GeoLocator, GeoError> {
        let database = match &config.database {
            Some(path) => Some(maxminddb::Reader::open_readfile(path).map_err(|e| GeoError {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        Ok(GeoLocator {
            config: config.clone(),
            database,
        })
    }

    /// A locator that knows nothing.
    pub fn disabled() -> GeoLocator {
        GeoLocator {
            config: GeoConfig::default(),
            database: None,
        }
    }

    /// Where `client` is: the trusted proxy's headers when the request came through one
    /// and they carry coordinates, else the database's record of the address.
    pub fn locate(&self, client: IpAddr, headers: &HeaderMap, via_trusted_proxy: bool) -> Option<GeoPoint> {
        if via_trusted_proxy && let Some(point) = self.located_by_proxy(headers) {
            return Some(point);
        }
        self.located_by_database(client)
    }

    fn located_by_proxy(&self, headers: &HeaderMap) -> Option<GeoPoint> {
        let latitude: f64 = header_text(headers, &self.config.latitude_header)?.parse().ok()?;
        let longitude: f64 = header_text(headers, &self.config.longitude_header)?
            .parse()
            .ok()?;
        valid_coordinates(latitude, longitude).then(|| GeoPoint {
            latitude,
            longitude,
            country: header_text(headers, &self.config.country_header),
            city: header_text(headers, &self.config.city_header),
            source: "proxy".into(),
        })
    }

    fn located_by_database(&self, client: IpAddr) -> Option<GeoPoint> {
        use maxminddb::path;
        let result = self.database.as_ref()?.lookup(client).ok()?;
        if !result.has_data() {
            return None;
        }
        let latitude: f64 = result.decode_path(&path!["location", "latitude"]).ok()??;
        let longitude: f64 = result.decode_path(&path!["location", "longitude"]).ok()??;
        let country: Option<String> = result.decode_path(&path!["country", "iso_code"]).ok().flatten();
        let city: Option<String> = result.decode_path(&path!["city", "names", "en"]).ok().flatten();
        valid_coordinates(latitude, longitude).then_some(GeoPoint {
            latitude,
            longitude,
            country,
            city,
            source: "database".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(latitude: f64, longitude: f64) -> GeoPoint {
        GeoPoint {
            latitude,
            longitude,
            country: None,
            city: None,
            source: "test".into(),
        }
    }

    #[test]
    fn haversine_distance_matches_known_city_pairs() {
        let frankfurt = point(50.1109, 8.6821);
        let singapore = point(1.3521, 103.8198);
        let paris = point(48.8566, 2.3522);
        // Published great-circle distances: about 10,260 km and 479 km.
        assert!((frankfurt.distance_km(&singapore) - 10_260.0).abs() < 60.0);
        assert!((frankfurt.distance_km(&paris) - 479.0).abs() < 5.0);
        assert_eq!(paris.distance_km(&paris), 0.0);
    }

    #[test]
    fn proxy_headers_count_only_through_a_trusted_proxy_and_only_when_valid() {
        let locator = GeoLocator {
            config: GeoConfig {
                latitude_header: Some("x-geo-lat".into()),
                longitude_header: Some("x-geo-lon".into()),
                country_header: Some("x-geo-country".into()),
                ..Default::default()
            },
            database: None,
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-geo-lat", "50.11".parse().expect("header"));
        headers.insert("x-geo-lon", "8.68".parse().expect("header"));
        headers.insert("x-geo-country", "DE".parse().expect("header"));
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        assert_eq!(locator.locate(ip, &headers, false), None);
        let located = locator.locate(ip, &headers, true).expect("located");
        assert_eq!(located.country.as_deref(), Some("DE"));
        headers.insert("x-geo-lat", "123.0".parse().expect("header"));
        assert_eq!(locator.locate(ip, &headers, true), None, "latitude out of range");
    }
}
