//! Strict reading of what a user sends, over types that are lenient when stored.
//!
//! The same serde types are API input and also Raft entries, store rows and session
//! payloads. Stored and wire forms must tolerate fields they do not know, so a replica one
//! version behind can apply an entry written by a newer leader (a rolling upgrade of the
//! managers). A user's request, on the other hand, must not have a typo silently ignored:
//! [`from_json`] refuses any field the type does not know, naming it.

use serde::de::DeserializeOwned;

/// A request body that is not what its type expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictError {
    #[error("unknown field `{0}` in request")]
    UnknownField(String),
    /// Not JSON at all, or cut short.
    #[error("invalid request body: {0}")]
    Syntax(String),
    /// JSON, but not of the expected shape (a string where a number goes...).
    #[error("invalid request body: {0}")]
    Data(String),
}

impl StrictError {
    fn from_serde(e: serde_json::Error) -> StrictError {
        match e.classify() {
            serde_json::error::Category::Data => StrictError::Data(e.to_string()),
            _ => StrictError::Syntax(e.to_string()),
        }
    }

    /// A request that is JSON but not what the type expects (HTTP 422, as opposed to 400).
    pub fn is_data(&self) -> bool {
        !matches!(self, StrictError::Syntax(_))
    }
}

/// Parse `bytes` as JSON into `T`, refusing fields `T` does not know (at any depth).
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StrictError> {
    let mut unknown: Option<String> = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut note = |path: serde_ignored::Path<'_>| {
        unknown.get_or_insert_with(|| path.to_string());
    };
    let ignoring = serde_ignored::Deserializer::new(&mut de, &mut note);
    // The error names where in the body it is (`mode.replicated.replicas: invalid type`).
    let value: T = serde_path_to_error::deserialize(ignoring).map_err(
        |e: serde_path_to_error::Error<serde_json::Error>| {
            let path = e.path().to_string();
            let inner = StrictError::from_serde(e.into_inner());
            match inner {
                StrictError::Data(m) if path != "." => StrictError::Data(format!("{path}: {m}")),
                other => other,
            }
        },
    )?;
    de.end().map_err(StrictError::from_serde)?;
    match unknown {
        Some(path) => Err(StrictError::UnknownField(path)),
        None => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceSpec;

    const SPEC: &str =
        r#"{"name":"web","task":{"runtime":{"process":{"command":["shoal","whoami"]}}}}"#;

    #[test]
    fn a_known_spec_reads_strictly() {
        let spec: ServiceSpec = from_json(SPEC.as_bytes()).expect("strict");
        assert_eq!(spec.name, "web");
    }

    #[test]
    fn an_unknown_field_is_refused_by_path() {
        let body =
            r#"{"name":"web","task":{"runtime":{"process":{"command":["x"]}},"comand":["y"]}}"#;
        let err = from_json::<ServiceSpec>(body.as_bytes()).expect_err("typo refused");
        assert_eq!(err, StrictError::UnknownField("task.comand".into()));
        assert_eq!(err.to_string(), "unknown field `task.comand` in request");
    }

    #[test]
    fn stored_forms_tolerate_unknown_fields() {
        let body = r#"{"name":"web","future":1,"task":{"runtime":{"process":{"command":["x"],"pty":1}},"gpu":{"n":1}}}"#;
        let spec: ServiceSpec = serde_json::from_str(body).expect("lenient when stored");
        assert_eq!(spec.name, "web");
    }

    #[test]
    fn trailing_garbage_is_malformed() {
        let body = format!("{SPEC} x");
        assert!(matches!(
            from_json::<ServiceSpec>(body.as_bytes()),
            Err(StrictError::Syntax(_))
        ));
    }
}
