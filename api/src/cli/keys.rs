//! `ultracore keys`: rotating the data key that encrypts secrets at rest.
//!
//! A value names the key that sealed it (`v1.<key id>.…`), so after the operator makes a
//! new key current and keeps the old ones in `data_previous_keys`, everything still
//! decrypts. `rotate-data-key` then re-encrypts each value still under an old key, so
//! the old keys can be retired. It works tenant by tenant (RLS is forced on the owner
//! too), in short transactions of `batch_size` rows that lock what they rewrite
//! (`FOR UPDATE`): a gateway that changes a row meanwhile (a new TOTP enrolment) waits
//! for the batch, or the batch re-reads its newer value, so neither write is lost.
//!
//! A value that no configured key opens is never touched: it is listed, and the command
//! exits [`EXIT_UNDECRYPTABLE`], because the operator is about to retire keys and must
//! first find the one that is missing.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement, Value};
use serde_json::json;
use uuid::Uuid;

use super::{EXIT_UNDECRYPTABLE, KeysAction};
use crate::auth::crypto::{CryptoError, KeyRing, generate_key_base64};
use crate::config::Config;
use crate::db::{self, Access, TenantScope};
use crate::domain::{Actor, tenants};

/// Bound on each batch transaction: a batch is a few hundred indexed single-row updates.
const BATCH_TIMEOUT_MS: u64 = 60_000;

/// Runs a `keys` subcommand that needs the database (as the owner).
pub async fn run(
    owner: &DatabaseConnection,
    config: &Config,
    action: KeysAction,
) -> anyhow::Result<ExitCode> {
    match action {
        KeysAction::GenerateDataKey => Ok(generate_data_key()),
        KeysAction::RotateDataKey {
            dry_run,
            tenants,
            batch_size,
        } => rotate_data_key(owner, config, dry_run, &tenants, batch_size).await,
    }
}

/// Prints a new random data key.
pub fn generate_data_key() -> ExitCode {
    println!("{}", generate_key_base64());
    ExitCode::SUCCESS
}

/// A column that holds values sealed by the key ring, and how to rewrite one.
struct SealedColumn {
    /// What the summary calls it.
    label: &'static str,
    /// Whether the row also records the key id in a column of its own; the statements
    /// below then take that key id as one more parameter, the last.
    records_key_id: bool,
    /// The rows of tenant $1 whose value is not under the key prefix $2 (`v1.<id>.`),
    /// after id $3, first $4 of them by id; columns `id` and `sealed`. The associated
    /// data of a value is its row id, so `id` is also what it decrypts with.
    select: &'static str,
    /// Sets the value of tenant $1's row $2 to $3.
    update: &'static str,
    /// Of tenant $1, how many values are already under key prefix $2.
    count_current: &'static str,
}

const MFA_SECRETS: SealedColumn = SealedColumn {
    label: "users.mfa_secret",
    records_key_id: true,
    // A row whose value is under the current key but whose key id column says otherwise
    // is rewritten too, so the column can be trusted afterwards.
    select: "select user_id as id, mfa_secret as sealed from users \
              where tenant_id = $1 and mfa_secret is not null \
                and (not starts_with(mfa_secret, $2) or mfa_secret_key_id is distinct from $5) \
                and user_id > $3 \
              order by user_id limit $4",
    update: "update users set mfa_secret = $3, mfa_secret_key_id = $4 where tenant_id = $1 and user_id = $2",
    count_current: "select count(*) as n from users \
                     where tenant_id = $1 and starts_with(mfa_secret, $2) and mfa_secret_key_id = $3",
};

// Every status, not only pending messages: a sent body still holds its (by now expired)
// link, and once the old key is retired nothing could read it any more.
const NOTIFICATION_BODIES: SealedColumn = SealedColumn {
    label: "notification_outbox.body",
    records_key_id: false,
    select: "select notification_id as id, body as sealed from notification_outbox \
              where tenant_id = $1 and not starts_with(body, $2) and notification_id > $3 \
              order by notification_id limit $4",
    update: "update notification_outbox set body = $3 where tenant_id = $1 and notification_id = $2",
    count_current: "select count(*) as n from notification_outbox \
                     where tenant_id = $1 and starts_with(body, $2)",
};

impl SealedColumn {
    /// `sql` with `values`, and the key id appended when this column records it.
    fn statement(&self, sql: &str, mut values: Vec<Value>, key_id: &str) -> Statement {
        if self.records_key_id {
            values.push(key_id.into());
        }
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
    }
}

const COLUMNS: [&SealedColumn; 2] = [&MFA_SECRETS, &NOTIFICATION_BODIES];

/// What happened to one column, in one tenant or in all.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    rewritten: u64,
    current: u64,
    undecryptable: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.rewritten += other.rewritten;
        self.current += other.current;
        self.undecryptable += other.undecryptable;
    }
}

/// A value left as it was, and why.
struct Undecryptable {
    tenant: String,
    column: &'static str,
    id: Uuid,
    reason: String,
}

struct Tenant {
    id: Uuid,
    slug: String,
}

async fn rotate_data_key(
    owner: &DatabaseConnection,
    config: &Config,
    dry_run: bool,
    slugs: &[String],
    batch_size: u32,
) -> anyhow::Result<ExitCode> {
    let (current, previous) = crate::config::secrets::data_keys(config)?;
    let ring = KeyRing::new(&current, &previous).context("data_key / data_previous_keys")?;
    let previous_ids = previous
        .iter()
        .map(|k| KeyRing::new(k, &[]).map(|r| r.current_id().to_string()))
        .collect::<Result<Vec<_>, CryptoError>>()
        .context("data_previous_keys")?;
    let tenants = tenants_to_rotate(owner, slugs).await?;
    println!(
        "current data key {}; previous keys: {}{}",
        ring.current_id(),
        if previous_ids.is_empty() {
            "none".to_string()
        } else {
            previous_ids.join(", ")
        },
        if dry_run {
            " (dry run: nothing is written)"
        } else {
            ""
        }
    );

    let mut totals = [Counts::default(); COLUMNS.len()];
    let mut undecryptable = Vec::new();
    for tenant in &tenants {
        let mut line = format!("tenant {} ({}):", tenant.slug, tenant.id);
        for (i, column) in COLUMNS.iter().enumerate() {
            let counts = rotate_column(
                owner,
                &ring,
                tenant,
                column,
                dry_run,
                batch_size,
                &mut undecryptable,
            )
            .await
            .with_context(|| format!("tenant {}: {}", tenant.slug, column.label))?;
            totals[i].add(counts);
            write!(line, " {} {};", column.label, describe(counts, dry_run))?;
        }
        println!("{}", line.trim_end_matches(';'));
    }
    println!("summary ({} tenant(s)):", tenants.len());
    for (column, counts) in COLUMNS.iter().zip(totals) {
        println!("  {:26} {}", column.label, describe(counts, dry_run));
    }

    if undecryptable.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    println!("left unchanged, no configured key decrypts them:");
    for u in &undecryptable {
        println!("  tenant {} {} {}: {}", u.tenant, u.column, u.id, u.reason);
    }
    eprintln!(
        "error: {} stored value(s) decrypt with no configured data key and were left unchanged \
         (listed above); add the key that sealed them to ULTRACORE_DATA_PREVIOUS_KEYS before \
         retiring any key",
        undecryptable.len()
    );
    Ok(ExitCode::from(EXIT_UNDECRYPTABLE))
}

fn describe(counts: Counts, dry_run: bool) -> String {
    format!(
        "{} {}, {} already current, {} undecryptable",
        counts.rewritten,
        if dry_run { "to rewrite" } else { "rewritten" },
        counts.current,
        counts.undecryptable
    )
}

/// The named tenants, or all of them. Listing all needs an owner not bound by RLS:
/// under forced RLS the list would come back empty, and an empty rotation that reports
/// success would let the operator retire a key that is still in use.
async fn tenants_to_rotate(owner: &DatabaseConnection, slugs: &[String]) -> anyhow::Result<Vec<Tenant>> {
    if !slugs.is_empty() {
        let mut out = Vec::with_capacity(slugs.len());
        for slug in slugs {
            let id = tenants::tenant_id_by_slug(owner, slug).await?;
            if !out.iter().any(|t: &Tenant| t.id == id) {
                out.push(Tenant {
                    id,
                    slug: slug.clone(),
                });
            }
        }
        return Ok(out);
    }
    let bypasses = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select (rolsuper or rolbypassrls) as bypasses from pg_roles where rolname = current_user",
        ))
        .await?
        .and_then(|r| r.try_get::<bool>("", "bypasses").ok())
        .unwrap_or(false);
    if !bypasses {
        bail!(
            "the owner connection is bound by row-level security, so it cannot list every tenant: \
             name them with --tenant SLUG (repeatable), or run as a superuser"
        );
    }
    let rows = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "select tenant_id, slug from tenants order by slug",
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Tenant {
                id: r.try_get("", "tenant_id")?,
                slug: r.try_get("", "slug")?,
            })
        })
        .collect::<Result<_, sea_orm::DbErr>>()
        .map_err(Into::into)
}

/// Re-encrypts one column of one tenant, batch by batch; undecryptable rows are added to
/// `undecryptable` and skipped (the batches walk by id, so they are not selected again).
async fn rotate_column(
    owner: &DatabaseConnection,
    ring: &KeyRing,
    tenant: &Tenant,
    column: &SealedColumn,
    dry_run: bool,
    batch_size: u32,
    undecryptable: &mut Vec<Undecryptable>,
) -> anyhow::Result<Counts> {
    let key_id = ring.current_id().to_string();
    let prefix = format!("v1.{key_id}.");
    let mut counts = Counts::default();
    {
        let txn = begin(owner, tenant.id, Access::ReadOnly).await?;
        let statement = column.statement(
            column.count_current,
            vec![tenant.id.into(), prefix.clone().into()],
            &key_id,
        );
        let n: i64 = txn
            .query_one_raw(statement)
            .await?
            .map(|r| r.try_get("", "n"))
            .transpose()?
            .unwrap_or(0);
        counts.current = u64::try_from(n).unwrap_or(0);
        txn.commit().await?;
    }
    let mut after = Uuid::nil();
    loop {
        // A dry run only reads, so it takes no locks and stands in no gateway's way.
        let txn = begin(
            owner,
            tenant.id,
            if dry_run {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            },
        )
        .await?;
        let select = if dry_run {
            column.select.to_string()
        } else {
            format!("{} for update", column.select)
        };
        let statement = column.statement(
            &select,
            vec![
                tenant.id.into(),
                prefix.clone().into(),
                after.into(),
                i64::from(batch_size).into(),
            ],
            &key_id,
        );
        let rows = txn.query_all_raw(statement).await?;
        let Some(last) = rows.last() else {
            txn.commit().await?;
            break;
        };
        after = last.try_get("", "id")?;
        let mut rewritten = 0u64;
        for row in rows {
            let id: Uuid = row.try_get("", "id")?;
            let sealed: String = row.try_get("", "sealed")?;
            let plain = match ring.decrypt(&sealed, id.as_bytes()) {
                Ok(plain) => plain,
                Err(e) => {
                    undecryptable.push(Undecryptable {
                        tenant: tenant.slug.clone(),
                        column: column.label,
                        id,
                        reason: reason(&sealed, &e),
                    });
                    counts.undecryptable += 1;
                    continue;
                }
            };
            if !dry_run {
                let resealed = ring.encrypt(&plain, id.as_bytes());
                let statement = column.statement(
                    column.update,
                    vec![tenant.id.into(), id.into(), resealed.into()],
                    &key_id,
                );
                txn.execute_raw(statement).await?;
            }
            rewritten += 1;
        }
        if rewritten > 0 && !dry_run {
            // In the batch's own transaction: the entry exists if and only if the rewrite
            // committed. It names keys by id only, never the keys or the values.
            Actor::cli(tenant.id)
                .audit(
                    &txn,
                    "data_key.rotate",
                    "tenant",
                    tenant.id,
                    None,
                    Some(json!({ "column": column.label, "rewritten": rewritten, "key_id": key_id })),
                )
                .await?;
        }
        txn.commit().await?;
        counts.rewritten += rewritten;
        // No stopping at a short batch: FOR UPDATE skips a row that a gateway changed
        // meanwhile so that it no longer matches, and rows may still follow it. Only an
        // empty batch means done.
    }
    Ok(counts)
}

async fn begin(
    owner: &DatabaseConnection,
    tenant_id: Uuid,
    access: Access,
) -> anyhow::Result<DatabaseTransaction> {
    Ok(db::begin_tenant_transaction(owner, TenantScope::tenant(tenant_id), access, BATCH_TIMEOUT_MS).await?)
}

/// Why a value does not decrypt, in words that help find the missing key.
fn reason(sealed: &str, error: &CryptoError) -> String {
    match error {
        CryptoError::UnknownKey(id) => format!("sealed by unknown key {id}"),
        CryptoError::Corrupt if KeyRing::key_id_of(sealed).is_none() => "not a sealed value".to_string(),
        CryptoError::Corrupt => "malformed, tampered with, or sealed for another row".to_string(),
        CryptoError::BadKey => error.to_string(),
    }
}
