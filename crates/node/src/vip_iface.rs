//! The node's VIP interface: a dummy link (`shoal0` by default) holding the DNS resolver
//! address and every service VIP as /32 addresses, so the host, its process tasks and its
//! containers (through their bridge's gateway) reach them locally. On a kernel without
//! dummy links the addresses go on the loopback interface instead. Only addresses inside
//! the cluster's VIP pool are ever touched. Driven through iproute2.

use shoal_api::VipPool;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The link that holds the addresses when the kernel has no dummy links.
const FALLBACK: &str = "lo";

/// Where this process put VIPs last (link, pool), for `remove` on leave.
static LAST: Mutex<Option<(String, VipPool)>> = Mutex::new(None);

/// Changes the pool addresses of one interface, creating it when first needed.
#[derive(Debug)]
pub struct VipInterface {
    name: String,
    /// The link in use: `name`, or the loopback when dummy links are missing.
    link: Option<String>,
    /// The addresses it holds, as far as this node set them.
    current: Option<BTreeSet<Ipv4Addr>>,
}

impl VipInterface {
    pub fn new(name: &str) -> VipInterface {
        VipInterface {
            name: name.to_string(),
            link: None,
            current: None,
        }
    }

    /// Make the interface hold exactly `wanted` of the addresses in `pool` (creating it and
    /// bringing it up first).
    pub fn set(&mut self, pool: VipPool, wanted: &BTreeSet<Ipv4Addr>) -> Result<(), String> {
        if self.current.as_ref() == Some(wanted) {
            return Ok(());
        }
        let have = match &self.current {
            Some(have) => have.clone(),
            None => self.prepare(pool)?,
        };
        let link = self.link.clone().unwrap_or_else(|| self.name.clone());
        *LAST.lock().unwrap_or_else(|p| p.into_inner()) = Some((link.clone(), pool));
        let mut batch = String::new();
        for a in wanted.difference(&have) {
            batch.push_str(&format!("address add {a}/32 dev {link}\n"));
        }
        for a in have.difference(wanted) {
            batch.push_str(&format!("address del {a}/32 dev {link}\n"));
        }
        if !batch.is_empty() {
            // -force: go on past a failed line (an address someone removed by hand), so one
            // stale address does not hold up every other change.
            let result = ip_batch(&batch);
            self.current = Some(read(&link, pool)?);
            result?;
        } else {
            self.current = Some(have);
        }
        Ok(())
    }

    /// Create the dummy link if it is missing (or fall back to the loopback), bring it
    /// up, and read the pool addresses it holds.
    fn prepare(&mut self, pool: VipPool) -> Result<BTreeSet<Ipv4Addr>, String> {
        let mut link = self.name.clone();
        if ip(&["link", "show", "dev", &link]).is_err() {
            if let Err(e) = ip(&["link", "add", &link, "type", "dummy"]) {
                if !e.contains("Unknown device type") {
                    return Err(e);
                }
                tracing::warn!(
                    interface = %self.name,
                    "this kernel has no dummy links: service VIPs go on the loopback interface"
                );
                link = FALLBACK.to_string();
            }
        }
        ip(&["link", "set", "dev", &link, "up"])?;
        let have = read(&link, pool)?;
        self.link = Some(link);
        Ok(have)
    }
}

fn read(link: &str, pool: VipPool) -> Result<BTreeSet<Ipv4Addr>, String> {
    let out = ip(&["-4", "-o", "address", "show", "dev", link])?;
    Ok(parse_addresses(&out)
        .into_iter()
        .map(|(addr, _, _)| addr)
        .filter(|a| pool.contains(*a))
        .collect())
}

/// Take away what this process put on a VIP interface: the dummy link it made, or the pool
/// addresses it put on the loopback.
pub fn remove() {
    let Some((link, pool)) = LAST.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let result = if link == FALLBACK {
        read(&link, pool).and_then(|have| {
            let batch: String = have
                .iter()
                .map(|a| format!("address del {a}/32 dev {link}\n"))
                .collect();
            if batch.is_empty() {
                Ok(())
            } else {
                ip_batch(&batch)
            }
        })
    } else {
        ip(&["link", "del", "dev", &link]).map(|_| ())
    };
    if let Err(e) = result {
        tracing::warn!(interface = %link, error = %e, "VIP addresses not removed");
    }
}

/// Every IPv4 network this host has an address in, with its interface, except on
/// `except` (the VIP interface itself) and single addresses on the loopback (VIPs put there
/// when dummy links are missing).
pub fn local_networks(except: &str) -> Result<Vec<(Ipv4Addr, u8, String)>, String> {
    let out = ip(&["-4", "-o", "address", "show"])?;
    Ok(parse_addresses(&out)
        .into_iter()
        .filter(|(_, len, dev)| dev != except && !(dev == FALLBACK && *len == 32))
        .collect())
}

/// `2: eth0    inet 10.200.1.10/24 brd ... scope global eth0\ ...` → (address, prefix, dev).
fn parse_addresses(out: &str) -> Vec<(Ipv4Addr, u8, String)> {
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let _index = words.next()?;
            let dev = words.next()?.trim_end_matches(':');
            let dev = dev.split('@').next().unwrap_or(dev).to_string();
            words.find(|w| *w == "inet")?;
            let (addr, len) = words.next()?.split_once('/')?;
            Some((addr.parse().ok()?, len.parse().ok()?, dev))
        })
        .collect()
}

fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// `iptables -w 5 ARGS...` (waiting up to 5 s for the xtables lock).
pub(crate) fn iptables(args: &[&str]) -> Result<String, String> {
    let mut all = vec!["-w", "5"];
    all.extend_from_slice(args);
    run("iptables", &all)
}

/// `program ARGS...` with `input` on its standard input: one line naming it and what it
/// said if it fails.
pub(crate) fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("{program}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Run `program ARGS...`: its output, or one line naming the command and what it said.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip_batch(batch: &str) -> Result<(), String> {
    run_with_input("ip", &["-force", "-batch", "-"], batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_ip_output() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                   2: eth0@if9    inet 10.200.1.10/24 brd 10.200.1.255 scope global eth0\\ \n\
                   5: shoal0    inet 10.96.0.1/32 scope global shoal0\\ \n";
        assert_eq!(
            parse_addresses(out),
            [
                (Ipv4Addr::new(127, 0, 0, 1), 8, "lo".to_string()),
                (Ipv4Addr::new(10, 200, 1, 10), 24, "eth0".to_string()),
                (Ipv4Addr::new(10, 96, 0, 1), 32, "shoal0".to_string()),
            ]
        );
    }
}
