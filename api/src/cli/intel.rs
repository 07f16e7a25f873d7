//! `ultracore intel import`: loading a threat-intelligence file into a tenant or into the
//! global scope, as the owner.
//!
//! The summary accounts for every record: imported (inserted or updated), or skipped as
//! unsupported or invalid, with the reasons counted and the first examples listed by
//! position. Exit codes: 0 when everything was imported, [`EXIT_SKIPPED`] when some
//! records were skipped (the rest were imported), 1 when the file could not be read as
//! its format (nothing is imported) or the import failed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};

use crate::domain::tenants;
use crate::intel::import::{self, ImportError, Scope, Source};
use crate::intel::parse::{self, Format, Parsed, SkipKind};

/// Exit code for "some records were skipped; the others were imported".
pub const EXIT_SKIPPED: u8 = 5;

/// How many skipped records the summary lists by position.
const EXAMPLES: usize = 20;

#[derive(Debug, Subcommand)]
pub enum IntelAction {
    /// Import indicators (ip, domain, email, hash) from a CSV, JSON or STIX 2.1 file into
    /// one tenant or the global scope; re-importing updates instead of duplicating. Exits
    /// 5 when some records were skipped (listed), 1 when the file is unreadable.
    Import {
        /// The file; its format comes from the extension (.csv, .json, .stix) unless
        /// --format says.
        file: PathBuf,
        /// Into this tenant (slug).
        #[arg(
            long,
            value_name = "SLUG",
            required_unless_present = "global",
            conflicts_with = "global"
        )]
        tenant: Option<String>,
        /// Into the global scope, read by every tenant. Needs an owner that RLS does not
        /// bind (a superuser or BYPASSRLS).
        #[arg(long)]
        global: bool,
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Read and check the file, print the summary, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(owner: &DatabaseConnection, action: IntelAction) -> anyhow::Result<ExitCode> {
    let IntelAction::Import {
        file,
        tenant,
        global,
        format,
        dry_run,
    } = action;
    let (scope, scope_label) = match (&tenant, global) {
        (Some(slug), _) => {
            let id = tenants::tenant_id_by_slug(owner, slug).await?;
            (Scope::Tenant(id), format!("tenant {slug} ({id})"))
        }
        (None, true) => {
            // Checked before reading: a dry run must not promise what the real run
            // cannot do.
            if !import::bypasses_rls(owner).await? {
                return Err(ImportError::GlobalNeedsBypass.into());
            }
            (Scope::Global, "global".to_string())
        }
        (None, false) => bail!("name the scope: --tenant SLUG or --global"),
    };
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let Ok(text) = std::str::from_utf8(&bytes) else {
        bail!("{} is not UTF-8 text", file.display());
    };
    let format = parse::detect_format(&file, text, format)?;
    let parsed = parse::parse(text, format).with_context(|| format!("{} ({format})", file.display()))?;

    println!("file: {} ({format}, sha256 {sha256})", file.display());
    println!("scope: {scope_label}");
    println!("records: {}", parsed.records);
    if dry_run {
        println!(
            "to import: {} (dry run: nothing was written)",
            parsed.indicators.len()
        );
    } else {
        let source = Source {
            file: file_name(&file),
            sha256,
            format,
        };
        let written = import::import(owner, scope, &parsed.indicators, &source)
            .await
            .context(
                "the import stopped; batches before the failure are committed, and running it again is safe",
            )?;
        println!(
            "imported: {} (inserted {}, updated {})",
            written.inserted + written.updated,
            written.inserted,
            written.updated
        );
    }
    print_summary(&parsed);

    let skipped = parsed.skipped.len();
    if skipped == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: {skipped} record(s) were skipped (reasons and positions above); {}",
        if dry_run {
            "the others would be imported"
        } else {
            "the others were imported"
        }
    );
    Ok(ExitCode::from(EXIT_SKIPPED))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Everything but the imported count: duplicates, skips by reason, examples.
fn print_summary(parsed: &Parsed) {
    println!(
        "duplicates: {} (a later record of the same indicator replaced the earlier)",
        parsed.duplicates
    );
    for kind in [SkipKind::Unsupported, SkipKind::Invalid] {
        println!("{}: {}", kind.as_str(), parsed.skipped_count(kind));
        for (reason, n) in parsed.reasons(kind) {
            println!("  {n:>6}  {reason}");
        }
    }
    if !parsed.other_objects.is_empty() {
        println!(
            "other STIX objects (not indicators, not imported): {}",
            join_counts(&parsed.other_objects)
        );
    }
    if !parsed.ignored_columns.is_empty() {
        println!("ignored columns: {}", parsed.ignored_columns.join(", "));
    }
    if parsed.skipped.is_empty() {
        return;
    }
    println!(
        "skipped (first {} of {}):",
        parsed.skipped.len().min(EXAMPLES),
        parsed.skipped.len()
    );
    for s in parsed.skipped.iter().take(EXAMPLES) {
        println!(
            "  {}: {}: {}: {}",
            s.position,
            s.kind.as_str(),
            s.reason,
            s.detail
        );
    }
}

fn join_counts(counts: &BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
