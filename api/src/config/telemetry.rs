//! Settings of trace export: OpenTelemetry spans sent over OTLP/HTTP to a collector
//! (`crate::telemetry::otlp`, built only with the `otlp` cargo feature).
//!
//! A configured endpoint is never ignored: a build without the feature refuses to serve
//! rather than silently exporting nothing.

use serde::{Deserialize, Serialize};
use url::Url;

use super::ConfigError;

/// The path OTLP/HTTP receives traces on, appended to the configured base URL.
pub const TRACES_PATH: &str = "/v1/traces";

/// The refusal of a build without the `otlp` feature (one line, as operators see it).
pub const NO_OTLP_SUPPORT: &str = "telemetry.otlp_endpoint (ULTRACORE_TELEMETRY__OTLP_ENDPOINT) is set but this \
                                   build has no OTLP support; rebuild with --features otlp, or unset it";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`; spans are posted
    /// to `<base>/v1/traces` (a URL already ending in `/v1/traces` is used as it is).
    /// Unset or empty: no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of traces exported, from 0.0 (none) to 1.0 (all).
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "ultracore".into(),
            sample_ratio: 1.0,
        }
    }
}

/// Trace export as configured and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpExport {
    /// Where spans are posted (the collector's `/v1/traces`).
    pub traces_url: Url,
    pub service_name: String,
    pub sample_ratio: f64,
}

impl TelemetryConfig {
    /// The export to start: None when no endpoint is set. A build without the `otlp`
    /// feature refuses any endpoint ([`NO_OTLP_SUPPORT`]); otherwise the URL, the service
    /// name and the ratio are checked.
    pub fn otlp_export(&self) -> Result<Option<OtlpExport>, ConfigError> {
        let Some(endpoint) = self
            .otlp_endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        else {
            return Ok(None);
        };
        if !cfg!(feature = "otlp") {
            return Err(ConfigError::new(NO_OTLP_SUPPORT));
        }
        self.checked(endpoint).map(Some)
    }

    /// The checks of an export, whatever the build.
    fn checked(&self, endpoint: &str) -> Result<OtlpExport, ConfigError> {
        let traces_url = traces_url(endpoint)?;
        let service_name = self.service_name.trim();
        if service_name.is_empty() {
            return Err(ConfigError::new("telemetry.service_name must not be empty"));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError::new(&format!(
                "telemetry.sample_ratio must be between 0.0 and 1.0, not {}",
                self.sample_ratio
            )));
        }
        Ok(OtlpExport {
            traces_url,
            service_name: service_name.to_string(),
            sample_ratio: self.sample_ratio,
        })
    }
}

/// The collector's traces URL for a configured endpoint: an `http` or `https` URL with a
/// host, no credentials, query or fragment; `/v1/traces` appended unless already there.
pub fn traces_url(endpoint: &str) -> Result<Url, ConfigError> {
    let invalid = |why: &str| {
        ConfigError::new(&format!(
            "telemetry.otlp_endpoint {endpoint:?} {why} (expected the collector's OTLP/HTTP base URL, \
             e.g. http://127.0.0.1:4318)"
        ))
    };
    let mut url = Url::parse(endpoint).map_err(|e| invalid(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("is not an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    // Credentials in the URL would end up in logs and error messages; a collector that
    // wants them gets a header (OTEL_EXPORTER_OTLP_HEADERS).
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "carries credentials (send them as a header with OTEL_EXPORTER_OTLP_HEADERS)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("has a query or fragment"));
    }
    if !url.path().ends_with(TRACES_PATH) {
        let path = format!("{}{TRACES_PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_endpoint(endpoint: &str) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: Some(endpoint.into()),
            ..TelemetryConfig::default()
        }
    }

    #[test]
    fn no_endpoint_means_no_export_in_every_build() {
        assert_eq!(TelemetryConfig::default().otlp_export().unwrap(), None);
        assert_eq!(with_endpoint("  ").otlp_export().unwrap(), None);
    }

    #[test]
    fn an_endpoint_is_refused_without_the_feature_and_checked_with_it() {
        let result = with_endpoint("http://127.0.0.1:4318").otlp_export();
        if cfg!(feature = "otlp") {
            let export = result.unwrap().expect("an export");
            assert_eq!(export.traces_url.as_str(), "http://127.0.0.1:4318/v1/traces");
            assert_eq!(export.service_name, "ultracore");
        } else {
            let error = result.unwrap_err().to_string();
            assert!(error.contains(NO_OTLP_SUPPORT), "{error}");
            // Even a malformed one: the missing support is what the operator must hear.
            let error = with_endpoint("not a url").otlp_export().unwrap_err().to_string();
            assert!(error.contains("--features otlp"), "{error}");
        }
    }

    #[test]
    fn the_traces_path_is_appended_once() {
        for (endpoint, expected) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            ("https://otel.example/otlp", "https://otel.example/otlp/v1/traces"),
            (
                "https://otel.example/otlp/v1/traces",
                "https://otel.example/otlp/v1/traces",
            ),
        ] {
            assert_eq!(traces_url(endpoint).unwrap().as_str(), expected);
        }
    }

    #[test]
    fn bad_endpoints_ratios_and_names_are_refused() {
        for (endpoint, why) in [
            ("not a url", "is not a URL"),
            ("collector:4318", "is not an http:// or https:// URL"),
            ("grpc://collector:4317", "is not an http:// or https:// URL"),
            ("http://user:secret@collector:4318", "carries credentials"),
            ("http://collector:4318/?x=1", "has a query or fragment"),
        ] {
            let error = traces_url(endpoint).unwrap_err().to_string();
            assert!(
                error.contains("telemetry.otlp_endpoint") && error.contains(why),
                "{endpoint}: {error}"
            );
        }
        let config = TelemetryConfig {
            sample_ratio: 1.5,
            ..TelemetryConfig::default()
        };
        let error = config.checked("http://collector:4318").unwrap_err().to_string();
        assert!(error.contains("telemetry.sample_ratio"), "{error}");
        let config = TelemetryConfig {
            sample_ratio: f64::NAN,
            ..TelemetryConfig::default()
        };
        assert!(
            config.checked("http://collector:4318").is_err(),
            "NaN is no ratio"
        );
        let config = TelemetryConfig {
            service_name: " ".into(),
            ..TelemetryConfig::default()
        };
        let error = config.checked("http://collector:4318").unwrap_err().to_string();
        assert!(error.contains("telemetry.service_name"), "{error}");
    }
}
