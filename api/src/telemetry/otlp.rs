//! OpenTelemetry trace export over OTLP/HTTP (protobuf), built with the `otlp` feature.
//!
//! The log subscriber is installed before the configuration is read (`cli::main`), so it
//! is built here with an empty slot for the OpenTelemetry layer; `serve` fills the slot
//! once it has checked `telemetry.*` ([`start`]) and flushes the spans still queued when
//! it stops ([`OtlpExporter::shutdown`]). Admin commands never export.
//!
//! What is exported: the `request` span of every HTTP request (request id, method,
//! route) with the events logged inside it as span events (`request finished`: status
//! and milliseconds), so the same fields as the log and never more. Health checks and
//! metric scrapes (`/healthz`, `/readyz`, `/metrics`) are not exported.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample};
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, Registry, reload};

use crate::config::telemetry::OtlpExport;

/// Bound on one export request (connect, send, answer).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on the final flush when the gateway stops.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Routes whose requests are not exported: probes and scrapes, every few seconds.
const UNTRACED_ROUTES: &[&str] = &["/healthz", "/readyz", "/metrics"];

type OtelLayer = tracing_opentelemetry::OpenTelemetryLayer<Registry, opentelemetry_sdk::trace::Tracer>;

/// The empty slot the OpenTelemetry layer goes into, set when the subscriber is installed.
static SLOT: OnceLock<reload::Handle<Option<OtelLayer>, Registry>> = OnceLock::new();

/// Installs the process's subscriber: the log format of `cli::init_tracing` (JSON or
/// text on stderr, filtered by `filter`) and the empty OpenTelemetry slot.
pub fn init_subscriber(filter: EnvFilter, json: bool) {
    let (slot, handle) = reload::Layer::new(None::<OtelLayer>);
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log = if json {
        log.json().flatten_event(true).with_current_span(true).boxed()
    } else {
        log.with_ansi(false).boxed()
    };
    if tracing_subscriber::registry()
        .with(slot)
        .with(log)
        .with(filter)
        .try_init()
        .is_ok()
    {
        let _ = SLOT.set(handle);
    }
}

/// The running export; [`OtlpExporter::shutdown`] sends what is still queued.
pub struct OtlpExporter {
    provider: SdkTracerProvider,
}

/// Starts exporting spans as `export` says. Called from inside the gateway's runtime:
/// export requests run on it.
pub fn start(export: &OtlpExport) -> anyhow::Result<OtlpExporter> {
    let slot = SLOT
        .get()
        .context("trace export needs the gateway's own log subscriber (cli::main)")?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .context("TLS client for the OTLP collector")?
        .https_or_http()
        .enable_http1()
        .build();
    let client = OnRuntime {
        runtime: tokio::runtime::Handle::current(),
        client: HyperClient::new(connector, EXPORT_TIMEOUT, None),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(client)
        .with_endpoint(export.traces_url.as_str())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("OTLP span exporter")?;
    let resource = Resource::builder()
        .with_service_name(export.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(SkipUntracedRoutes(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(export.sample_ratio),
        ))))
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("ultracore"));
    slot.reload(Some(layer))
        .context("cannot add the OpenTelemetry layer")?;
    tracing::info!(
        endpoint = %export.traces_url,
        service = %export.service_name,
        sample_ratio = export.sample_ratio,
        "exporting traces over OTLP"
    );
    Ok(OtlpExporter { provider })
}

impl OtlpExporter {
    /// Stops recording spans and sends the ones still queued (bounded by
    /// [`SHUTDOWN_TIMEOUT`]). Blocking work, moved off the runtime's workers so that the
    /// export requests it waits for can run on them.
    pub async fn shutdown(self) {
        if let Some(slot) = SLOT.get() {
            let _ = slot.reload(None);
        }
        let provider = self.provider;
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT)).await;
        match flushed {
            Ok(Ok(())) => tracing::debug!("trace export flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "trace export: final flush failed"),
            Err(e) => tracing::warn!(error = %e, "trace export: final flush failed"),
        }
    }
}

/// The hyper client, driven by the gateway's runtime: the batch processor exports from
/// its own thread, where no Tokio runtime runs.
#[derive(Debug)]
struct OnRuntime {
    runtime: tokio::runtime::Handle,
    client: HyperClient<HttpsConnector<HttpConnector>>,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}

/// Drops the `request` spans of probes and scrapes, then samples as `0` does.
#[derive(Debug, Clone)]
struct SkipUntracedRoutes(Sampler);

impl ShouldSample for SkipUntracedRoutes {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        let untraced = name == "request"
            && attributes.iter().any(|kv| {
                kv.key.as_str() == "route"
                    && matches!(&kv.value, Value::String(route) if UNTRACED_ROUTES.contains(&route.as_str()))
            });
        if untraced {
            return SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: parent_context
                    .map(|cx| cx.span().span_context().trace_state().clone())
                    .unwrap_or_default(),
            };
        }
        self.0
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}
