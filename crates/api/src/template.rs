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
    expand_with(text, values, &|_, _| None)
}

/// The functions a templated secret or config may call as Swarm's do: `{{env "VAR"}}` (the
/// task's environment), `{{secret "target"}}` and `{{config "target"}}` (another file the
/// task gets). `lookup(function, argument)` answers one, `None` when it names nothing.
pub const FUNCTIONS: &[&str] = &["env", "secret", "config"];

/// [`expand`], also answering the [`FUNCTIONS`] through `lookup`.
pub fn expand_with(
    text: &str,
    values: &TemplateValues,
    lookup: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<String, SpecError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| SpecError::invalid("template", text, "unclosed {{"))?;
        let key = after[..end].trim();
        let call = key.split_once(char::is_whitespace).and_then(|(f, arg)| {
            let arg = arg.trim().strip_prefix('"')?.strip_suffix('"')?;
            FUNCTIONS.contains(&f).then_some((f, arg))
        });
        let value = match call {
            Some((f, arg)) => lookup(f, arg).ok_or_else(|| {
                SpecError::invalid(
                    "template",
                    key,
                    format!("{f} {arg:?} is not given to this task"),
                )
            })?,
            None => values.get(key).map(str::to_owned).ok_or_else(|| {
                SpecError::invalid(
                    "template",
                    text,
                    format!("unknown placeholder {key:?} (known: {})", KEYS.join(", ")),
                )
            })?,
        };
        out.push_str(&value);
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
    fn functions_are_answered_by_the_lookup() {
        let v = TemplateValues::default();
        let lookup = |f: &str, arg: &str| match (f, arg) {
            ("env", "MODE") => Some("prod".to_owned()),
            ("secret", "pw") => Some("hunter2".to_owned()),
            _ => None,
        };
        assert_eq!(
            expand_with("mode={{env \"MODE\"}} pw={{ secret \"pw\" }}", &v, &lookup).unwrap(),
            "mode=prod pw=hunter2"
        );
        let e = expand_with("{{config \"nosuch\"}}", &v, &lookup).unwrap_err();
        assert!(e.to_string().contains("not given to this task"), "{e}");
        assert!(
            expand("{{env \"MODE\"}}", &v).is_err(),
            "no lookup, no functions"
        );
    }

    #[test]
    fn rejects_unknown_or_unclosed() {
        assert!(validate("{{.Task.Slott}}").is_err());
        assert!(validate("{{.Task.Slot").is_err());
    }
}
