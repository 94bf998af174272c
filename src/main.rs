use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use bridgekeeper::cli::{self, Cli, Commands};

/// Every inbound message is allocated on a connector's task and freed on the gateway writer's:
/// glibc's allocator serialises such cross-thread frees on its arena locks, mimalloc does not
/// (measured: ~1.25× inbound throughput, docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Diagnostics go to stderr: stdout belongs to the gateway link in `run`.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("BRIDGEKEEPER_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();

    let result = match cli.command {
        Commands::Run(args) => block_on(cli::run::run(args)),
        Commands::Legacy(args) => block_on(cli::legacy::run(args)),
        Commands::Whatsapp(args) => block_on(cli::whatsapp::run(args)),
        Commands::Weixin(args) => cli::weixin::run(args),
        Commands::Webhook(args) => cli::webhook::run(args),
        Commands::Status(args) => cli::status::run(args),
        Commands::Pairing(args) => cli::pairing::run(args),
        Commands::Config(args) => cli::config::run(args),
        Commands::Logs(args) => cli::logs::run(args),
        Commands::Doctor(args) => cli::doctor::run(args),
        Commands::Platforms(args) => cli::platforms::run(args),
        // Its exit code is the protocol's (PROTOCOL.md, "Exit codes").
        Commands::Connector(kind) => {
            return ExitCode::from(bridgekeeper::connectors::run(kind) as u8);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<cli::ExitStatus>().is_some() => {
            ExitCode::from(e.downcast_ref::<cli::ExitStatus>().map_or(1, |s| s.0))
        }
        Err(e) => {
            eprintln!("bridgekeeper: {}", cli::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

fn block_on(future: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(future);
    // A blocking stdin read cannot be cancelled; do not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

/// `bridgekeeper status | head` must not report an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
