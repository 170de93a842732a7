//! A container's resource limits per process (`--ulimit nofile=1024:2048`), as Docker
//! names them.

use crate::SpecError;
use serde::{Deserialize, Serialize};

/// The limits a ulimit may name (Docker's names for the kernel's `RLIMIT_*`).
pub const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    /// The limit a process starts with; -1 is unlimited.
    pub soft: i64,
    /// The most a process may raise it to; -1 is unlimited.
    pub hard: i64,
}

impl Ulimit {
    /// Put `self` into `ulimits`, replacing one of the same name (a later `--ulimit` wins,
    /// as with docker).
    pub fn set_in(self, ulimits: &mut Vec<Ulimit>) {
        match ulimits.iter_mut().find(|x| x.name == self.name) {
            Some(x) => *x = self,
            None => ulimits.push(self),
        }
    }

    /// Parse one `--ulimit` value: `name=soft[:hard]` (hard is soft when not given). The
    /// result is checked.
    pub fn parse(text: &str) -> Result<Ulimit, SpecError> {
        let bad = |reason: String| SpecError::invalid("--ulimit", text, reason);
        let (name, limits) = text
            .split_once('=')
            .ok_or_else(|| bad("expected name=soft[:hard], e.g. nofile=1024:2048".into()))?;
        let number = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| bad(format!("{v:?} is not a number (-1 for unlimited)")))
        };
        if limits.matches(':').count() > 1 {
            return Err(bad("expected soft[:hard], e.g. 1024:2048".into()));
        }
        let (soft, hard) = match limits.split_once(':') {
            Some((s, h)) => (number(s)?, number(h)?),
            None => {
                let n = number(limits)?;
                (n, n)
            }
        };
        let u = Ulimit {
            name: name.to_string(),
            soft,
            hard,
        };
        u.check().map_err(bad)?;
        Ok(u)
    }

    /// What is wrong with this ulimit, in a few words.
    pub fn check(&self) -> Result<(), String> {
        if !ULIMIT_NAMES.contains(&self.name.as_str()) {
            return Err(format!(
                "unknown ulimit {:?} ({})",
                self.name,
                ULIMIT_NAMES.join(", ")
            ));
        }
        if self.soft < -1 || self.hard < -1 {
            return Err("limits are 0 or more, or -1 for unlimited".into());
        }
        let unlimited = |n: i64| n == -1;
        if !unlimited(self.hard) && (unlimited(self.soft) || self.soft > self.hard) {
            return Err(format!(
                "soft limit {} is above hard limit {}",
                self.soft, self.hard
            ));
        }
        Ok(())
    }

    /// Check a ulimit of a spec.
    pub fn validate(&self) -> Result<(), SpecError> {
        crate::limits::check_text("ulimit", &self.name, 64)?;
        self.check()
            .map_err(|reason| SpecError::invalid("ulimit", self.to_string(), reason))
    }
}

impl std::fmt::Display for Ulimit {
    /// The `--ulimit` form: `nofile=1024:2048`, or `nofile=1024` when soft and hard agree.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.soft == self.hard {
            write!(f, "{}={}", self.name, self.soft)
        } else {
            write!(f, "{}={}:{}", self.name, self.soft, self.hard)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_ulimit_syntax() {
        let u = Ulimit::parse("nofile=1024:2048").expect("soft and hard");
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        assert_eq!(u.to_string(), "nofile=1024:2048");
        let u = Ulimit::parse("core=0").expect("hard is soft");
        assert_eq!((u.soft, u.hard), (0, 0));
        assert_eq!(u.to_string(), "core=0");
        let u = Ulimit::parse("memlock=-1:-1").expect("unlimited");
        assert_eq!((u.soft, u.hard), (-1, -1));
        let u = Ulimit::parse("stack=8192:-1").expect("hard unlimited");
        assert_eq!(u.hard, -1);
    }

    #[test]
    fn ulimits_docker_refuses_say_why_in_one_line() {
        for (text, why) in [
            ("nofile", "expected name=soft[:hard]"),
            ("files=10", r#"unknown ulimit "files""#),
            ("nofile=x", r#""x" is not a number"#),
            ("nofile=1:2:3", "expected soft[:hard]"),
            (
                "nofile=2048:1024",
                "soft limit 2048 is above hard limit 1024",
            ),
            ("nofile=-1:1024", "soft limit -1 is above hard limit 1024"),
            ("nofile=-2", "-1 for unlimited"),
        ] {
            let err = Ulimit::parse(text).expect_err(text).to_string();
            assert!(
                err.starts_with(&format!("invalid --ulimit {text:?}: ")) && err.contains(why),
                "{text}: {err}"
            );
        }
    }
}
