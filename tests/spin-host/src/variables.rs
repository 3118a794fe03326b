//! Spin variables as Spin resolves them: application variables (`[variables]` in spin.toml,
//! with `default` or `required`) take values from the command line or `SPIN_VARIABLE_<NAME>`
//! environment variables (Spin's environment provider) over their defaults; a component sees
//! only its own `[component.<id>.variables]`, whose values are templates over application
//! variables (`"{{ name }}"`).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    variables: HashMap<String, AppVariable>,
    #[serde(default)]
    component: HashMap<String, Component>,
}

#[derive(Deserialize)]
struct AppVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
}

#[derive(Deserialize)]
pub struct Component {
    pub source: String,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: HashMap<String, String>,
}

/// What a component may read: its variables, resolved; stores it may open.
pub struct ComponentConfig {
    pub source: String,
    pub key_value_stores: Vec<String>,
    /// `allowed_outbound_hosts`, templates expanded.
    pub allowed_outbound_hosts: Vec<String>,
    pub variables: HashMap<String, Result<String, String>>,
}

/// Reads component `id` of the manifest at `path`, with `overrides` (name → value).
pub fn load(
    path: &Path,
    id: &str,
    overrides: &HashMap<String, String>,
) -> anyhow::Result<ComponentConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let manifest: Manifest =
        toml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
    let Some(component) = manifest.component.get(id) else {
        bail!("{} has no component {id:?}", path.display());
    };
    let app = |name: &str| -> Result<String, String> {
        let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
        if let Some(v) = overrides.get(name) {
            return Ok(v.clone());
        }
        if let Ok(v) = std::env::var(env_name) {
            return Ok(v);
        }
        match manifest.variables.get(name) {
            Some(AppVariable {
                default: Some(d), ..
            }) => Ok(d.clone()),
            Some(AppVariable { required: true, .. }) => {
                Err(format!("required variable {name} has no value"))
            }
            _ => Err(format!("no application variable {name}")),
        }
    };
    let variables = component
        .variables
        .iter()
        .map(|(name, template)| (name.clone(), render(template, &app)))
        .collect();
    let allowed_outbound_hosts = component
        .allowed_outbound_hosts
        .iter()
        .map(|host| render(host, &app).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    Ok(ComponentConfig {
        source: component.source.clone(),
        key_value_stores: component.key_value_stores.clone(),
        allowed_outbound_hosts,
        variables,
    })
}

/// Expands `{{ name }}` expressions in a template.
fn render(template: &str, app: &dyn Fn(&str) -> Result<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            return Err(format!("unclosed expression in {template:?}"));
        };
        out.push_str(&app(rest[start + 2..start + end].trim())?);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn templates_expand_application_variables() {
        let app = |name: &str| match name {
            "issuer" => Ok("eindr".to_owned()),
            other => Err(format!("no {other}")),
        };
        assert_eq!(render("{{ issuer }}", &app).unwrap(), "eindr");
        assert_eq!(render("x-{{issuer}}-y", &app).unwrap(), "x-eindr-y");
        assert_eq!(render("plain", &app).unwrap(), "plain");
        assert!(render("{{ missing }}", &app).is_err());
    }
}
