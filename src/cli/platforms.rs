//! `bridgekeeper platforms [--hermes-home DIR] [--json]`: the platforms `run` without a config
//! would start from Hermes' settings, each with the setting that turns it on and what Hermes
//! needs to know of it (its description). The machine-readable answer is for programs that
//! drive bridgekeeper (a Hermes plugin), so that none of them writes these rules again.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::config::builtin::{Enabled, hermes_platforms};
use crate::connectors::description::{Description, describe};

#[derive(Debug, clap::Args)]
pub struct PlatformsArgs {
    /// Hermes home (default: $HERMES_HOME, else ~/.hermes).
    #[arg(long)]
    pub hermes_home: Option<PathBuf>,
    /// One JSON object on stdout: `{"hermes_home", "platforms": [{"platform", "because",
    /// "label", "text_limit", "text_unit", "markdown", "edits", "groups", "direct_chat_type",
    /// "ops"}]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PlatformsArgs) -> anyhow::Result<()> {
    let home = args
        .hermes_home
        .unwrap_or_else(crate::config::hermes::default_hermes_home);
    let session = crate::connectors::whatsapp::session_dir(&home);
    let on = hermes_platforms(&home, &session);
    if args.json {
        println!("{}", answer(&home.display().to_string(), &on));
        return Ok(());
    }
    if on.is_empty() {
        println!("no platform is turned on in {}", home.display());
    }
    for p in &on {
        println!("{} ({})", p.platform, p.because);
    }
    Ok(())
}

/// The JSON answer for `on`. Pure.
pub fn answer(home: &str, on: &[Enabled]) -> Value {
    let platforms: Vec<Value> = on
        .iter()
        .map(|p| {
            let mut v = json!({"platform": p.platform, "because": p.because});
            if let Some(d) = describe(p.platform) {
                facts(d, &mut v);
            }
            v
        })
        .collect();
    json!({"hermes_home": home, "platforms": platforms})
}

fn facts(d: &Description, v: &mut Value) {
    v["label"] = json!(d.label);
    v["text_limit"] = json!(d.text_limit);
    v["text_unit"] = json!(d.text_unit.as_str());
    v["markdown"] = json!(d.markdown);
    v["edits"] = json!(d.edits);
    v["groups"] = json!(d.groups);
    v["direct_chat_type"] = json!(d.direct_chat_type);
    v["ops"] = json!(d.ops);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_platform_comes_with_why_and_its_description() {
        let on = [Enabled {
            platform: "telegram",
            because: "TELEGRAM_BOT_TOKEN is set".into(),
        }];
        let v = answer("/h", &on);
        assert_eq!(v["hermes_home"], "/h");
        let t = &v["platforms"][0];
        assert_eq!(t["because"], "TELEGRAM_BOT_TOKEN is set");
        assert_eq!(t["text_unit"], "utf16");
        assert_eq!(t["direct_chat_type"], "dm");
        assert!(t["ops"].as_array().unwrap().contains(&json!("send_text")));
        assert_eq!(answer("/h", &[])["platforms"], json!([]));
    }
}
