//! `shoal service logs SERVICE|TASK`: the output of every task, from whichever node holds
//! it, formatted like `docker service logs`.

use crate::client::{encode, ApiError, Client};
use anyhow::Context;
use hyper::StatusCode;
use shoal_api::task_log::parse_since;
use shoal_wire::v1::logs::{LogError, LogRecord};
use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Service name or ID, or task ID
    pub target: String,
    /// Keep printing output as it is written
    #[arg(short, long)]
    pub follow: bool,
    /// Lines from the end of each task's log
    #[arg(long, short = 'n')]
    pub tail: Option<usize>,
    /// Only output written since a time (2026-11-30T17:00:00Z, unix seconds) or for a
    /// duration back from now (10m)
    #[arg(long)]
    pub since: Option<String>,
    /// Start each line with the time it was written
    #[arg(short, long)]
    pub timestamps: bool,
    /// Print the output alone, without the task and node before each line
    #[arg(long)]
    pub raw: bool,
    /// Leave the task ID out of each line's prefix
    #[arg(long)]
    pub no_task_ids: bool,
    /// Print the task ID in full
    #[arg(long)]
    pub no_trunc: bool,
}

/// How each record is printed.
#[derive(Debug, Clone, Copy, Default)]
struct Style {
    timestamps: bool,
    raw: bool,
    no_task_ids: bool,
    no_trunc: bool,
}

/// One record as a line of output (its newline included).
fn format_record(r: &LogRecord, style: Style) -> String {
    let mut out = String::new();
    if style.timestamps {
        out.push_str(r.time.as_deref().unwrap_or("-"));
        out.push(' ');
    }
    if !style.raw {
        // `web.1.<short id>`: the slot name, then the ID.
        let name = match r.task.rsplit_once('.') {
            Some((slot, _)) if style.no_task_ids => slot.to_string(),
            Some((slot, _)) if style.no_trunc => format!("{slot}.{}", r.task_id),
            _ => r.task.clone(),
        };
        out.push_str(&format!("{name}@{}    | ", r.node));
    }
    out.push_str(&r.line);
    out.push('\n');
    out
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The query string for `args`.
fn query(args: &LogsArgs, now: i64) -> anyhow::Result<String> {
    let mut q = format!("follow={}", args.follow);
    if let Some(n) = args.tail {
        q.push_str(&format!("&tail={n}"));
    }
    if let Some(text) = &args.since {
        let since = parse_since(text, now).map_err(anyhow::Error::msg)?;
        let secs = since.div_euclid(1_000_000_000);
        let nanos = since.rem_euclid(1_000_000_000);
        q.push_str(&format!("&since={secs}.{nanos:09}"));
    }
    Ok(q)
}

pub async fn logs(client: &Client, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let q = query(args, now_nanos())?;
    let style = Style {
        timestamps: args.timestamps,
        raw: args.raw,
        no_task_ids: args.no_task_ids,
        no_trunc: args.no_trunc,
    };
    let key = encode(&args.target);
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    let mut print = |line: &[u8]| -> anyhow::Result<()> {
        if let Ok(r) = serde_json::from_slice::<LogRecord>(line) {
            out.write_all(format_record(&r, style).as_bytes())?;
            return Ok(out.flush()?);
        }
        let e: LogError = serde_json::from_slice(line)
            .context("the daemon sent a log line that is not the expected JSON")?;
        eprintln!("error: {}", crate::table::escape(&e.error));
        failed = true;
        Ok(())
    };
    let service = client
        .stream_lines(&format!("/v1/services/{key}/logs?{q}"), &mut print)
        .await;
    match service {
        Err(e) if is_not_found(&e) => {
            let task = client
                .stream_lines(&format!("/v1/tasks/{key}/logs?{q}"), &mut print)
                .await;
            if let Err(e) = task {
                if is_not_found(&e) {
                    anyhow::bail!("no such service or task: {}", args.target);
                }
                return Err(e);
            }
        }
        other => other?,
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiError>()
        .is_some_and(|a| a.status == StatusCode::NOT_FOUND)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LogRecord {
        LogRecord {
            task_id: "abcdef0123456789".into(),
            task: "web.1.abcdef012345".into(),
            node: "node1".into(),
            time: Some("2026-11-30T17:00:00.000000001Z".into()),
            line: "hello".into(),
        }
    }

    #[test]
    fn records_print_like_docker() {
        let r = record();
        let plain = Style::default();
        assert_eq!(
            format_record(&r, plain),
            "web.1.abcdef012345@node1    | hello\n"
        );
        let ts = Style {
            timestamps: true,
            ..plain
        };
        assert_eq!(
            format_record(&r, ts),
            "2026-11-30T17:00:00.000000001Z web.1.abcdef012345@node1    | hello\n"
        );
        let raw = Style { raw: true, ..ts };
        assert_eq!(
            format_record(&r, raw),
            "2026-11-30T17:00:00.000000001Z hello\n"
        );
        let no_ids = Style {
            no_task_ids: true,
            ..plain
        };
        assert_eq!(format_record(&r, no_ids), "web.1@node1    | hello\n");
        let full = Style {
            no_trunc: true,
            ..plain
        };
        assert_eq!(
            format_record(&r, full),
            "web.1.abcdef0123456789@node1    | hello\n"
        );
    }

    #[test]
    fn since_becomes_unix_seconds() {
        let args = |since: &str| LogsArgs {
            target: "web".into(),
            follow: false,
            tail: Some(3),
            since: Some(since.into()),
            timestamps: false,
            raw: false,
            no_task_ids: false,
            no_trunc: false,
        };
        let now = 100_000_000_000;
        assert_eq!(
            query(&args("10s"), now).expect("ok"),
            "follow=false&tail=3&since=90.000000000"
        );
        let err = query(&args("whenever"), now).expect_err("refused");
        assert!(err.to_string().starts_with("invalid --since"), "{err}");
    }
}
