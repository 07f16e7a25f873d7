//! Where a notification goes once the worker has claimed and decrypted it: a directory
//! of `.eml` files in development ([`FileSender`]), an SMTP relay in production
//! ([`SmtpSender`]).
//!
//! A body can hold a secret (a reset link), so no sender logs it, puts it in an error,
//! or shows it through `Debug`.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::config::{Config, ConfigError, NotificationConfig, Profile, SenderKind, SmtpConfig, SmtpTls};

/// One decrypted message, ready to send.
#[derive(Clone)]
pub struct OutgoingMessage {
    pub notification_id: Uuid,
    pub tenant_id: Uuid,
    pub recipient: String,
    pub subject: String,
    /// Plain text; may hold a secret.
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// Everything but the body, so a stray `{:?}` cannot leak a reset token.
impl fmt::Debug for OutgoingMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMessage")
            .field("notification_id", &self.notification_id)
            .field("tenant_id", &self.tenant_id)
            .field("recipient", &self.recipient)
            .field("subject", &self.subject)
            .field("body", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Why a message was not delivered. The text is stored in `notification_outbox.last_error`
/// and logged, so it never contains the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt later: network trouble, a 4xx reply, a timeout.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help: a 5xx reply, an address that does not parse.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent(_))
    }
}

/// Delivers one message. A boxed future rather than `async fn` so that the worker can hold
/// any sender as `Arc<dyn Sender>` (an `async fn` in a trait is not object safe).
pub trait Sender: Send + Sync {
    fn send<'a>(&'a self, message: &'a OutgoingMessage) -> BoxFuture<'a, Result<(), SendError>>;
}

/// The sender the configuration asks for. Fails, so that `serve` refuses to start, when
/// the production profile has no SMTP relay and was not told to use files.
pub fn from_config(config: &Config) -> Result<Arc<dyn Sender>, ConfigError> {
    let settings = &config.notifications;
    let kind = settings.sender.unwrap_or(match config.profile {
        Profile::Development => SenderKind::File,
        Profile::Production => SenderKind::Smtp,
    });
    match kind {
        SenderKind::File => {
            let dir = file_dir(config);
            let sender = FileSender::new(&dir).map_err(|e| {
                ConfigError::new(&format!(
                    "cannot prepare the outbox directory {}: {e}",
                    dir.display()
                ))
            })?;
            Ok(Arc::new(sender))
        }
        SenderKind::Smtp => Ok(Arc::new(SmtpSender::new(&settings.smtp, send_timeout(settings))?)),
    }
}

/// `notifications.file_dir`, else `<data_dir>/outbox`.
pub fn file_dir(config: &Config) -> PathBuf {
    config
        .notifications
        .file_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("outbox"))
}

fn send_timeout(settings: &NotificationConfig) -> Duration {
    Duration::from_millis(settings.send_timeout_ms.max(1))
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

/// Development sender: one `<notification id>.eml` per message in a private directory,
/// so a developer can open the reset link without a mail server. A message sent again
/// (after a crash between sending and recording it) replaces its file.
#[derive(Debug, Clone)]
pub struct FileSender {
    dir: PathBuf,
}

impl FileSender {
    /// Creates `dir` if needed and makes it private (0700): the files hold live tokens.
    pub fn new(dir: &Path) -> std::io::Result<FileSender> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(FileSender {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a message is written to.
    pub fn path_of(&self, notification_id: Uuid) -> PathBuf {
        self.dir.join(format!("{notification_id}.eml"))
    }

    async fn write(&self, message: &OutgoingMessage) -> std::io::Result<PathBuf> {
        let path = self.path_of(message.notification_id);
        // Written whole under a temporary name, then renamed: a reader never sees half a
        // message, and a rewrite after a crash replaces the file in one step.
        let partial = self.dir.join(format!(".{}.eml.partial", message.notification_id));
        let text = format!(
            "Date: {}\r\nTo: {}\r\nSubject: {}\r\nX-UltraCore-Notification-Id: {}\r\n\
             X-UltraCore-Tenant-Id: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
            Utc::now().to_rfc2822(),
            header_value(&message.recipient),
            header_value(&message.subject),
            message.notification_id,
            message.tenant_id,
            message.body,
        );
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .await?;
        // `mode` applies only when the file is created; a leftover file keeps its own.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .await?;
        file.write_all(text.as_bytes()).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&partial, &path).await?;
        Ok(path)
    }
}

/// A header value on one line: a recipient or subject with a line break must not add
/// headers (or start the body) of the file.
fn header_value(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Sender for FileSender {
    fn send<'a>(&'a self, message: &'a OutgoingMessage) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let path = self
                .write(message)
                .await
                .map_err(|e| SendError::Transient(format!("cannot write to {}: {e}", self.dir.display())))?;
            // Recipient, subject and where to find it; the body stays in the file.
            tracing::info!(
                notification_id = %message.notification_id,
                recipient = %message.recipient,
                subject = %message.subject,
                path = %path.display(),
                "notification written to the outbox directory"
            );
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------
// SMTP
// ---------------------------------------------------------------------------------------

/// Production sender: an SMTP relay, through lettre (rustls with ring for TLS, the
/// webpki roots for trust). Connections are pooled across messages.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl fmt::Debug for SmtpSender {
    // The transport's own Debug would print the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// Checks the settings and builds the transport (no connection is made yet). Call it
    /// inside a Tokio runtime: the connection pool starts its reaper task here.
    pub fn new(config: &SmtpConfig, timeout: Duration) -> Result<SmtpSender, ConfigError> {
        let host = config.host.as_deref().map(str::trim).unwrap_or_default();
        if host.is_empty() {
            return Err(ConfigError::new(
                "notifications go by SMTP (the production default) but no relay is set: set \
                 ULTRACORE_NOTIFICATIONS__SMTP__HOST and ULTRACORE_NOTIFICATIONS__SMTP__FROM, \
                 or ULTRACORE_NOTIFICATIONS__SENDER=file to write them to a directory",
            ));
        }
        let from: Mailbox = config
            .from
            .as_deref()
            .ok_or_else(|| {
                ConfigError::new("notifications.smtp.from (ULTRACORE_NOTIFICATIONS__SMTP__FROM) is required")
            })?
            .parse()
            .map_err(|e| ConfigError::new(&format!("notifications.smtp.from is not an address: {e}")))?;
        let password = match (&config.password, &config.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                    .map_err(|e| {
                        ConfigError::new(&format!("cannot read SMTP password file {}: {e}", path.display()))
                    })?,
            ),
            (None, None) => None,
        };
        let credentials = match (&config.username, password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::new(
                    "notifications.smtp needs both a username and a password (or neither)",
                ));
            }
        };
        // A password in clear text is only acceptable to a relay on this machine.
        if credentials.is_some() && config.tls == SmtpTls::None && !is_loopback(host) {
            return Err(ConfigError::new(
                "notifications.smtp.tls = none would send the SMTP password in clear text to a \
                 remote host: use starttls or tls",
            ));
        }
        let relay_error = |e: lettre::transport::smtp::Error| {
            ConfigError::new(&format!("notifications.smtp.host {host:?}: {e}"))
        };
        let (builder, default_port) = match config.tls {
            SmtpTls::None => (AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host), 25),
            SmtpTls::Starttls => (
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(relay_error)?,
                587,
            ),
            SmtpTls::Tls => (
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(relay_error)?,
                465,
            ),
        };
        let mut builder = builder
            .port(config.port.unwrap_or(default_port))
            .timeout(Some(timeout));
        if let Some(credentials) = credentials {
            builder = builder.credentials(credentials);
        }
        Ok(SmtpSender {
            transport: builder.build(),
            from,
        })
    }

    fn message(&self, message: &OutgoingMessage) -> Result<Message, SendError> {
        let to: Mailbox = message
            .recipient
            .parse()
            .map_err(|e| SendError::Permanent(format!("the recipient is not an address: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            // Derived from the notification id: a copy sent again after a crash carries
            // the same Message-ID, which lets mail systems recognise the duplicate.
            .message_id(Some(format!(
                "<{}@{}>",
                message.notification_id,
                self.from.email.domain()
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Sender for SmtpSender {
    fn send<'a>(&'a self, message: &'a OutgoingMessage) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let email = self.message(message)?;
            // lettre's errors name the reply code and the relay's reply text, never the
            // message content.
            self.transport.send(email).await.map(|_| ()).map_err(|e| {
                if e.is_permanent() {
                    SendError::Permanent(format!("SMTP: {e}"))
                } else {
                    SendError::Transient(format!("SMTP: {e}"))
                }
            })
        })
    }
}
