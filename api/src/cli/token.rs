//! `anju token create`: an API token for a person of a role.

use clap::{Args, Subcommand, ValueEnum};

use super::*;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token for an existing inspector, landlord (party), department or
    /// supervisor, and print it. The token is shown only once.
    Create(TokenArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Inspector,
    Landlord,
    Department,
    Supervisor,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub db: Db,
    /// Who the token speaks for.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The id of the inspector, party, department or supervisor.
    #[arg(long)]
    pub subject: i64,
    /// A note stored with the token (whose phone, which integration).
    #[arg(long)]
    pub label: Option<String>,
}
