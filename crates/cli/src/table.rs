//! Plain aligned columns, the way `docker service ls` prints them, and the escaping that
//! keeps stored text (hostnames, labels, task errors) from driving the terminal.

use std::borrow::Cow;
use std::fmt::Write;

pub fn print(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", render(header, rows));
}

/// `text` with control characters written as escapes (`\x1b`, `\n`, `\u{9b}`), so what a
/// node or a user stored prints as text and never as terminal commands.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_but(text, |_| false)
}

/// One line of `--pretty` output, escaped except for the tabs that align it.
pub fn pretty_line(line: std::fmt::Arguments<'_>) {
    let line = line.to_string();
    println!("{}", escape_but(&line, |c| c == '\t'));
}

fn escape_but(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !c.is_control() || keep(c) => out.push(c),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Cow<str>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            l.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths[i] + 3 - c.chars().count();
                l.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(|c| c.as_ref()).collect());
    }
    out
}

/// Milliseconds since the Unix epoch, the unit of the API's timestamps: "now" for [`ago`].
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2 minutes ago`, like Docker's human durations.
pub fn ago(then_ms: u64, now_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    let text = match secs {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_string(),
        s if s < 86400 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    };
    format!("{text} ago")
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let out = render(
            &["ID", "NAME"],
            &[
                vec!["abc".into(), "web".into()],
                vec!["a".into(), "x".into()],
            ],
        );
        assert_eq!(out, "ID    NAME\nabc   web\na     x\n");
    }

    #[test]
    fn control_characters_in_cells_print_escaped() {
        let hostile = "evil\u{1b}]0;owned\u{7}\u{1b}[2J\nx\u{9b}";
        let out = render(&["HOSTNAME"], &[vec![hostile.into()], vec!["plain".into()]]);
        assert_eq!(
            out,
            "HOSTNAME\nevil\\x1b]0;owned\\x07\\x1b[2J\\nx\\u{9b}\nplain\n"
        );
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
        assert_eq!(escape("tab\there"), "tab\\there");
        assert!(matches!(escape("plain"), Cow::Borrowed("plain")));
        assert_eq!(escape_but("a\tb\u{1b}", |c| c == '\t'), "a\tb\\x1b");
    }

    #[test]
    fn human_times() {
        assert_eq!(ago(0, 500), "Less than a second ago");
        assert_eq!(ago(0, 5000), "5 seconds ago");
        assert_eq!(ago(0, 180_000), "3 minutes ago");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
