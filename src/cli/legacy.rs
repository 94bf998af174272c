//! `bridgekeeper legacy`: the old bridge's command line and HTTP API (see `crate::legacy`).

pub use crate::legacy::LegacyArgs;

pub async fn run(args: LegacyArgs) -> anyhow::Result<()> {
    crate::legacy::run(args).await
}
