//! `ultracore documents`: the registry of trusted documents (persisted operations) that
//! a gateway in trusted-documents mode runs, shared by every copy through the database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::graphql::persisted;

#[derive(Debug, Subcommand)]
pub enum DocumentsAction {
    /// Register GraphQL documents (one per file, its exact text); prints each hash, the
    /// value clients send as `extensions.persistedQuery.sha256Hash`.
    Register {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the registered documents: hash, operation names, registration time.
    List,
}

pub async fn run(owner: &DatabaseConnection, action: DocumentsAction) -> anyhow::Result<ExitCode> {
    match action {
        DocumentsAction::Register { files } => register(owner, &files).await,
        DocumentsAction::List => list(owner).await,
    }
}

/// Every file is read and parsed before anything is written: one bad file registers none.
async fn register(owner: &DatabaseConnection, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut documents = Vec::with_capacity(files.len());
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        if text.trim().is_empty() {
            bail!("{} is empty", file.display());
        }
        if let Err(e) = async_graphql::parser::parse_query(&text) {
            bail!("{} is not a GraphQL document: {e}", file.display());
        }
        documents.push((file, text));
    }
    for (file, text) in documents {
        let (hash, new) = persisted::register(owner, &text).await?;
        println!(
            "{hash}  {}  {}",
            file.display(),
            if new { "registered" } else { "already registered" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(owner: &DatabaseConnection) -> anyhow::Result<ExitCode> {
    let rows = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "select sha256, array_to_string(operation_names, ',') as names, registered_at::text as at \
               from ultracore_registry.trusted_documents order by registered_at, sha256",
        ))
        .await?;
    for row in rows {
        let hash: String = row.try_get("", "sha256")?;
        let names: String = row.try_get("", "names")?;
        let at: String = row.try_get("", "at")?;
        println!(
            "{hash}  {at}  {}",
            if names.is_empty() { "(anonymous)" } else { &names }
        );
    }
    Ok(ExitCode::SUCCESS)
}
