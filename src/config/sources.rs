//! The layers under the parser: the optional TOML file (`FERRY_CONFIG`), the
//! `FERRY_*` environment, and `FERRY_<NAME>_FILE` indirections.

use std::collections::BTreeMap;

use super::{SETTINGS, env_name};

/// Merge the optional file and the environment into `key -> raw string`, resolving
/// `_FILE` indirections. The key is the lowercase setting name.
pub(super) fn collect_raw(
    vars: &BTreeMap<String, String>,
    errors: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut raw = BTreeMap::new();
    if let Some(path) = vars.get("FERRY_CONFIG").filter(|p| !p.is_empty()) {
        let file = config::Config::builder()
            .add_source(config::File::new(path, config::FileFormat::Toml).required(true))
            .build()
            .and_then(|c| c.try_deserialize::<BTreeMap<String, config::Value>>());
        match file {
            Ok(table) => {
                for (key, value) in table {
                    match value.into_string() {
                        Ok(s) => {
                            raw.insert(key.to_ascii_lowercase(), s);
                        }
                        Err(e) => errors.push(format!("FERRY_CONFIG ({path}): {key}: {e}")),
                    }
                }
            }
            Err(e) => errors.push(format!("FERRY_CONFIG: cannot read {path}: {e}")),
        }
    }
    let env = config::Environment::with_prefix("FERRY")
        .source(Some(vars.clone().into_iter().collect()))
        .try_parsing(false);
    match config::Config::builder()
        .add_source(env)
        .build()
        .and_then(|c| c.try_deserialize::<BTreeMap<String, String>>())
    {
        Ok(table) => raw.extend(table.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v))),
        Err(e) => errors.push(format!("environment: {e}")),
    }

    // FERRY_<NAME>_FILE: read the value from a file; setting both is ambiguous.
    for doc in SETTINGS {
        let file_key = format!("{}_file", doc.key);
        if let Some(path) = raw.remove(&file_key) {
            if raw.contains_key(doc.key) {
                errors.push(format!(
                    "{} and {}_FILE are both set; set only one",
                    env_name(doc.key),
                    env_name(doc.key)
                ));
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(contents) => {
                    raw.insert(
                        doc.key.to_string(),
                        contents.trim_end_matches(['\r', '\n']).to_string(),
                    );
                }
                Err(e) => errors.push(format!(
                    "{}_FILE: cannot read {path}: {e}",
                    env_name(doc.key)
                )),
            }
        }
    }
    raw
}
