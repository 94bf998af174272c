//! `bridgekeeper config --explain`: every effective policy value, where it came from, and the
//! warnings about contradictions and legacy files.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::config::hermes::{self, Resolved, Sources, parse_cli_sets};

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Print every effective value with its source (the only mode there is; kept explicit).
    #[arg(long, required = true)]
    pub explain: bool,
    /// A bridgekeeper config file: explain its connectors' platforms with its overrides.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Without --config: the platform to explain.
    #[arg(long, default_value = "whatsapp")]
    pub platform: String,
    /// Hermes home (default: $HERMES_HOME, else ~/.hermes).
    #[arg(long)]
    pub hermes_home: Option<PathBuf>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let resolved = match &args.config {
        Some(path) => {
            let cli = parse_cli_sets(&args.sets).map_err(anyhow::Error::msg)?;
            let mut config = crate::config::SupervisorConfig::load(path)?;
            if let Some(home) = &args.hermes_home {
                config.hermes_home = home.clone();
            }
            let home = config.hermes_home.clone();
            let resolved = config.resolve_access(&cli)?;
            (home, resolved)
        }
        None => {
            let home = args
                .hermes_home
                .clone()
                .unwrap_or_else(hermes::default_hermes_home);
            let cli = parse_cli_sets(&args.sets).map_err(anyhow::Error::msg)?;
            let sources = Sources::gather(&home, cli)?;
            let resolved = hermes::resolve(&sources, &args.platform)?;
            (home, vec![resolved])
        }
    };
    print!("{}", render(&resolved.0, &resolved.1));
    Ok(())
}

pub fn render(home: &std::path::Path, resolved: &[Resolved]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Hermes home: {}", home.display());
    let _ = writeln!(
        out,
        "Precedence: --set > config file policy > environment > .env > config.yaml > relay gateway's policy > default"
    );
    for r in resolved {
        let _ = writeln!(out, "\nplatform {}:", r.platform);
        for s in &r.settings {
            let _ = writeln!(
                out,
                "  {:<26} {:<24} {}",
                s.name,
                format!("{}", s.value),
                s.origin
            );
        }
        if r.warnings.is_empty() {
            let _ = writeln!(out, "  no warnings");
        }
        for w in &r.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
    }
    out
}
