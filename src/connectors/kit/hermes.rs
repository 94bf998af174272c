//! What a built-in connector reads of Hermes' own `config.yaml`: its platform's section
//! (`platforms.<name>`, as JSON), for settings Hermes keeps only there (webhook routes,
//! several WeCom apps).

use std::path::Path;

use serde_json::Value;

/// `platforms.<platform>` of `$HERMES_HOME/config.yaml` (missing file or section: `None`).
pub fn platform_section(hermes_home: &Path, platform: &str) -> Result<Option<Value>, String> {
    let path = hermes_home.join("config.yaml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("{} is not valid YAML: {e}", path.display()))?;
    yaml.get("platforms")
        .and_then(|p| p.get(platform))
        .map(|w| {
            serde_json::to_value(w)
                .map_err(|e| format!("{}: platforms.{platform}: {e}", path.display()))
        })
        .transpose()
}
