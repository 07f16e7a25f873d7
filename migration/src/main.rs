//! The migration crate's own CLI (sea-orm-migration's standard one), for developers who
//! want `cargo run -p migration -- status`. Operators use `ultracore migrate`.
use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migration::Migrator).await;
}
