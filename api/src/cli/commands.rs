//! What each command does. Each resolves the databases, does its one job, and stops an
//! embedded cluster it started.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sea_orm::DatabaseConnection;
use sea_orm_migration::{MigrationStatus, MigratorTrait};

use super::{AuditAction, Command, EXIT_CHAIN_BROKEN, KeysAction, MigrateAction, TenantAction, UserAction};
use crate::audit::{self, ChainHead};
use crate::auth::crypto::KeyRing;
use crate::auth::jwt::JwtKeys;
use crate::auth::login;
use crate::auth::roles::Role;
use crate::config::Config;
use crate::config::telemetry::OtlpExport;
use crate::db::{self, Access, DatabaseSource, TenantScope};
use crate::domain::{tenants, users};
use crate::graphql::{Gateway, Services};
use crate::server::ShutdownSignal;

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Schema => {
            print!("{}", crate::graphql::sdl());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { listen } => {
            let mut config = Config::load()?;
            if let Some(addr) = listen {
                config = config.with_override("listen", addr)?;
            }
            serve(config).await.map(|_| ExitCode::SUCCESS)
        }
        // Needs no database: do not start an embedded cluster for it.
        Command::Keys {
            action: KeysAction::GenerateDataKey,
        } => Ok(super::keys::generate_data_key()),
        // Talks to a gateway over HTTP, not to the database.
        Command::Demo {
            action:
                super::DemoAction::Attack {
                    url,
                    tenant,
                    accounts,
                    delay_ms,
                },
        } => super::demo::attack(
            &url,
            &tenant,
            accounts,
            std::time::Duration::from_millis(delay_ms),
        ),
        other => {
            let config = Config::load()?;
            let source = DatabaseSource::resolve(&config).await?;
            let result = admin(&source, &config, other).await;
            source.shutdown();
            result
        }
    }
}

/// Commands that run as the owner and exit.
async fn admin(source: &DatabaseSource, config: &Config, command: Command) -> anyhow::Result<ExitCode> {
    if let Command::Migrate {
        action: MigrateAction::Up { steps },
    } = command
    {
        source.migrate_up(steps).await?;
        println!("migrations applied");
        return Ok(ExitCode::SUCCESS);
    }
    let owner = db::connect_owner(&source.owner_url).await?;
    if source.embedded.is_some() {
        // The embedded default keeps itself migrated, so `tenant create` just works.
        source.migrate_up(None).await?;
    }
    let result = match command {
        Command::Migrate { action } => migrate(&owner, action).await,
        Command::Tenant {
            action: TenantAction::Create { slug, name },
        } => {
            let id = tenants::create_tenant(&owner, &slug, &name).await?;
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::User {
            action: UserAction::Erase { tenant, user, yes },
        } => super::lifecycle::erase_user(&owner, &tenant, &user, yes).await,
        Command::User { action } => create_user(&owner, config, action).await,
        Command::Lifecycle { action } => super::lifecycle::run(&owner, action).await,
        Command::Audit { action } => audit_command(&owner, action).await,
        Command::Keys { action } => super::keys::run(&owner, config, action).await,
        Command::Intel { action } => super::intel::run(&owner, action).await,
        Command::Demo { action } => super::demo::run(&owner, config, action).await,
        Command::Documents { action } => super::documents::run(&owner, action).await,
        Command::Serve { .. } | Command::Schema => unreachable!("handled in run()"),
    };
    owner.close().await.ok();
    result
}

async fn migrate(owner: &DatabaseConnection, action: MigrateAction) -> anyhow::Result<ExitCode> {
    match action {
        MigrateAction::Up { .. } => unreachable!("handled in admin()"),
        MigrateAction::Down { steps } => {
            let steps = steps.unwrap_or(1);
            migration::Migrator::down(owner, Some(steps))
                .await
                .context("migrate down")?;
            println!("rolled back {steps} migration(s)");
        }
        MigrateAction::Status => {
            for m in migration::Migrator::get_migration_with_status(owner).await? {
                let state = match m.status() {
                    MigrationStatus::Applied => "applied",
                    MigrationStatus::Pending => "pending",
                };
                println!("{state:8} {}", m.name());
            }
        }
        MigrateAction::Fresh => {
            // Every down, then every up: unlike dropping all tables, this also removes
            // the functions and grants the migrations created, so `up` starts clean.
            migration::Migrator::reset(owner)
                .await
                .context("migrate fresh (rolling back)")?;
            migration::Migrator::up(owner, None)
                .await
                .context("migrate fresh (applying)")?;
            println!("all migrations rolled back and applied again");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_user(
    owner: &DatabaseConnection,
    config: &Config,
    action: UserAction,
) -> anyhow::Result<ExitCode> {
    let UserAction::Create {
        tenant,
        username,
        email,
        role,
        first_name,
        last_name,
        phone,
    } = action
    else {
        unreachable!("admin() routes `user erase` to the lifecycle commands");
    };
    let role: Role = role.parse()?;
    let password = read_password_from_stdin()?;
    let tenant_id = tenants::tenant_id_by_slug(owner, &tenant).await?;
    let txn = db::begin_tenant_transaction(
        owner,
        TenantScope::tenant(tenant_id),
        Access::ReadWrite,
        config.database.statement_timeout_ms.max(30_000),
    )
    .await?;
    let new_user = users::NewUser {
        username,
        email,
        role,
        password,
        first_name,
        last_name,
        phone_number: phone,
        permissions: Vec::new(),
    };
    let user = users::create_user(&txn, &crate::domain::Actor::cli(tenant_id), new_user).await?;
    txn.commit().await?;
    println!("{}", user.user_id);
    Ok(ExitCode::SUCCESS)
}

/// Reads the whole of stdin and drops exactly one trailing "\n": a password may end in
/// spaces or even a "\r", and those are part of it.
fn read_password_from_stdin() -> anyhow::Result<String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_end(&mut buf)
        .context("cannot read the password from stdin")?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    match String::from_utf8(buf) {
        Ok(p) => Ok(p),
        Err(_) => bail!("the password on stdin is not valid UTF-8"),
    }
}

async fn audit_command(owner: &DatabaseConnection, action: AuditAction) -> anyhow::Result<ExitCode> {
    match action {
        AuditAction::Head { tenant } => {
            let tenant_id = tenants::tenant_id_by_slug(owner, &tenant).await?;
            let txn =
                db::begin_tenant_transaction(owner, TenantScope::tenant(tenant_id), Access::ReadOnly, 60_000)
                    .await?;
            let head = audit::chain_head(&txn, tenant_id).await?;
            txn.commit().await?;
            match head {
                Some(head) => println!("{}", serde_json::to_string_pretty(&head)?),
                None => bail!("tenant {tenant:?} has no audit entries yet"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Export { tenant, out } => super::lifecycle::export_audit(owner, &tenant, out).await,
        AuditAction::Verify { tenant, head } => {
            let tenant_id = tenants::tenant_id_by_slug(owner, &tenant).await?;
            let exported: Option<ChainHead> = match head {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let head: ChainHead = serde_json::from_str(&text).with_context(|| {
                        format!(
                            "{} is not a chain head written by `ultracore audit head`",
                            path.display()
                        )
                    })?;
                    if head.tenant_id != tenant_id {
                        bail!("{} is the head of another tenant's chain", path.display());
                    }
                    Some(head)
                }
                None => None,
            };
            // A full walk can take a while on a large chain: allow it.
            let txn =
                db::begin_tenant_transaction(owner, TenantScope::tenant(tenant_id), Access::ReadOnly, 0)
                    .await?;
            let result = audit::verify_chain(&txn, tenant_id, exported.as_ref()).await?;
            txn.commit().await?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(if result.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CHAIN_BROKEN)
            })
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // First of all: a trace endpoint this build cannot export to is refused before
    // anything starts (never silently ignored), and so is a malformed one.
    let otlp = config.telemetry.otlp_export()?;
    let shutdown = ShutdownSignal::install().context("cannot install signal handlers")?;
    // Given only the serving role's URL, the gateway never holds the owner's credentials:
    // migrations are then someone else's job (docker-compose runs `migrate up` first).
    if config.database.url.is_none()
        && let Some(app_url) = &config.database.app_url
    {
        return serve_as_app(app_url, &config, otlp.as_ref(), shutdown).await;
    }
    let source = DatabaseSource::resolve(&config).await?;
    let result = async {
        if source.embedded.is_some() && !shutdown.requested() {
            source.migrate_up(None).await?;
        }
        serve_as_app(&source.app_url, &config, otlp.as_ref(), shutdown.clone()).await
    }
    .await;
    source.shutdown();
    result
}

async fn serve_as_app(
    app_url: &str,
    config: &Config,
    otlp: Option<&OtlpExport>,
    shutdown: ShutdownSignal,
) -> anyhow::Result<()> {
    if shutdown.requested() {
        return Ok(());
    }
    let (secret, previous) = crate::config::secrets::jwt_secrets(config)?;
    let auth = &config.auth;
    let keys = JwtKeys::new(&secret, &previous, &auth.issuer, &auth.audience, auth.leeway_secs)?;
    let dummy_hash = tokio::task::spawn_blocking(login::make_dummy_hash).await??;
    let (data_key, previous_data_keys) = crate::config::secrets::data_keys(config)?;
    let data_keys = KeyRing::new(&data_key, &previous_data_keys)?;
    // Built before connecting: a production profile without a mail relay refuses to start.
    let outbox_sender = crate::notify::sender::from_config(config)?;
    let outbox_keys = std::sync::Arc::new(KeyRing::new(&data_key, &previous_data_keys)?);
    crate::server::client_ip::parse_all(&config.http.trusted_proxies).map_err(anyhow::Error::msg)?;
    // An unreadable GeoIP database stops the start: a risk engine silently blind to
    // travel is worse than a clear error.
    let geo = crate::geo::GeoLocator::open(&config.geo)?;
    if let Some(dir) = &config.graphql.graphiql_assets {
        crate::server::graphiql::LocalAssets::load(dir).map_err(anyhow::Error::msg)?;
    }
    let tls = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => Some(crate::server::tls::acceptor(cert, key).map_err(anyhow::Error::msg)?),
        (None, None) => None,
        _ => anyhow::bail!("http.tls_cert and http.tls_key go together"),
    };
    let app_db = db::connect_app(app_url, &config.database).await?;
    db::ensure_role_cannot_bypass_rls(&app_db).await?;
    let gateway = Gateway::new(Services {
        db: app_db.clone(),
        keys,
        config: config.clone(),
        dummy_hash,
        data_keys,
        geo,
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    // Checked by `serve`: only a build with the feature gets here with an export.
    #[cfg(feature = "otlp")]
    let exporter = otlp.map(crate::telemetry::otlp::start).transpose()?;
    #[cfg(not(feature = "otlp"))]
    let _: Option<&OtlpExport> = otlp;
    tracing::info!(
        address = %config.listen,
        tls = tls.is_some(),
        graphiql = config.graphiql_enabled(),
        "ultracore serving"
    );
    let delivery = tokio::spawn(crate::notify::worker::run_delivery(
        app_db.clone(),
        outbox_keys,
        outbox_sender,
        crate::notify::worker::DeliverySettings::from_config(config),
        shutdown.clone().wait(),
    ));
    let router = crate::server::router(gateway);
    let served = match tls {
        Some(acceptor) => crate::server::serve_tls(listener, acceptor, router, shutdown.wait()).await,
        None => crate::server::serve(listener, router, shutdown.wait()).await,
    };
    // The delivery loop stops on the same signal once the message in flight is recorded;
    // a server error comes without a signal, so it is stopped here.
    if served.is_err() {
        delivery.abort();
    }
    delivery.await.ok();
    // The spans of the last requests are still queued: send them while the database
    // (an embedded cluster included) is up, so nothing else logs its loss meanwhile.
    #[cfg(feature = "otlp")]
    if let Some(exporter) = exporter {
        exporter.shutdown().await;
    }
    served?;
    app_db.close().await.ok();
    tracing::info!("stopped");
    Ok(())
}
