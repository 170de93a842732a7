//! `{{.Task.Slot}}`-style placeholders in env values and args, expanded per task.

use crate::SpecError;

/// The placeholders a spec may use.
pub const KEYS: &[&str] = &[
    ".Task.ID",
    ".Task.Name",
    ".Task.Slot",
    ".Service.ID",
    ".Service.Name",
    ".Node.ID",
    ".Node.Hostname",
];

/// Values for one task.
#[derive(Debug, Clone, Default)]
pub struct TemplateValues {
    pub task_id: String,
    pub task_name: String,
    pub task_slot: String,
    pub service_id: String,
    pub service_name: String,
    pub node_id: String,
    pub node_hostname: String,
}

impl TemplateValues {
    fn get(&self, key: &str) -> Option<&str> {
        Some(match key {
            ".Task.ID" => &self.task_id,
            ".Task.Name" => &self.task_name,
            ".Task.Slot" => &self.task_slot,
            ".Service.ID" => &self.service_id,
            ".Service.Name" => &self.service_name,
            ".Node.ID" => &self.node_id,
            ".Node.Hostname" => &self.node_hostname,
            _ => return None,
        })
    }
}

/// Replace every `{{ KEY }}` in `text`.
pub fn expand(text: &str, values: &TemplateValues) -> Result<String, SpecError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| SpecError::invalid("template", text, "unclosed {{"))?;
        let key = after[..end].trim();
        let value = values.get(key).ok_or_else(|| {
            SpecError::invalid(
                "template",
                text,
                format!("unknown placeholder {key:?} (known: {})", KEYS.join(", ")),
            )
        })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Check `text` expands, without values.
pub fn validate(text: &str) -> Result<(), SpecError> {
    expand(text, &TemplateValues::default()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_known_placeholders() {
        let v = TemplateValues {
            task_slot: "3".into(),
            service_name: "web".into(),
            ..Default::default()
        };
        assert_eq!(expand("replica-{{.Task.Slot}}", &v).unwrap(), "replica-3");
        assert_eq!(
            expand("{{ .Service.Name }}.{{.Task.Slot}}", &v).unwrap(),
            "web.3"
        );
        assert_eq!(expand("plain", &v).unwrap(), "plain");
    }

    #[test]
    fn rejects_unknown_or_unclosed() {
        assert!(validate("{{.Task.Slott}}").is_err());
        assert!(validate("{{.Task.Slot").is_err());
    }
}
