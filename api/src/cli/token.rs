//! `anju token create`, `list` and `revoke`: API tokens for a person of a role, which expire, listed without their secrets, and revoked.

use clap::{Args, Subcommand, ValueEnum};

use super::*;

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token for an existing inspector, landlord (party), department or
    /// supervisor, and print it. The token is shown only once.
    Create(TokenArgs),
    /// List the tokens: id (the start of the token's digest, never the token), role,
    /// subject, label, created, expires, revoked.
    List(Db),
    /// Revoke a token by its id (as `anju token list` shows it); every process refuses
    /// it within a second.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub db: Db,
    /// The token's id: at least its first 8 characters.
    #[arg(long)]
    pub id: String,
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
    /// Days until the token stops working; 0 for a token that never expires (an
    /// integration's, to be revoked by hand).
    #[arg(long, default_value_t = 90)]
    pub expires_in_days: u32,
}

/// Runs a `token` command.
pub(super) async fn token(
    cmd: TokenCmd,
    clock: anju_engine::time::SharedClock,
) -> anyhow::Result<()> {
    let db = match &cmd {
        TokenCmd::Create(a) => &a.db,
        TokenCmd::List(db) => db,
        TokenCmd::Revoke(a) => &a.db,
    };
    let store = open_store(&db.database_url).await?;
    let runtime = Runtime::start(store, clock, runtime::Config::default()).await?;
    let result = async {
        match cmd {
            TokenCmd::Create(args) => {
                let expires = (args.expires_in_days > 0)
                    .then(|| runtime.now() + chrono::TimeDelta::days(i64::from(args.expires_in_days)));
                let secret = runtime
                    .create_token_until(args.role.into(), args.subject, args.label.as_deref(), expires)
                    .await?;
                println!("{secret}");
            }
            TokenCmd::List(_) => {
                let local = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map(anju_engine::time::local_time).unwrap_or_else(|| "-".into())
                };
                println!("id            role        subject  created                  expires                  revoked                  label");
                for t in runtime.tokens().await? {
                    println!(
                        "{:<13} {:<11} {:>7}  {:<24} {:<24} {:<24} {}",
                        t.id,
                        t.role.as_str(),
                        t.subject,
                        local(Some(t.created_at)),
                        local(t.expires_at),
                        local(t.revoked_at),
                        t.label.unwrap_or_default()
                    );
                }
            }
            TokenCmd::Revoke(args) => {
                runtime.revoke_token(&args.id).await?;
                println!("revoked {}", args.id);
            }
        }
        anyhow::Ok(())
    }
    .await;
    runtime.shutdown().await;
    result
}
