//! Several "hosts" on one machine: Linux network namespaces on a private bridge, so a test
//! can run a multi-node cluster where every node has its own IP address.
//!
//! ```text
//!   root namespace                                     namespace shn<id>-<i>
//!  ┌──────────────────────────────────────────┐        ┌───────────────────────────────┐
//!  │ bridge shb<id>  <prefix>.1/24            │        │ eth0  <prefix>.(10+i)/24      │
//!  │   ├── shv<id>-0 ◄──── veth pair ─────────┼────────┼─► default via <prefix>.1      │
//!  │   ├── shv<id>-1 ◄──── …                  │        │ lo    up                      │
//!  │   └── shv<id>-2 ◄──── …                  │        └───────────────────────────────┘
//!  └──────────────────────────────────────────┘
//! ```
//!
//! Nodes reach each other at layer 2 through the bridge; the root namespace (the test
//! process itself) reaches every node through the bridge address, and every node reaches the
//! test process at [`TestNet::host_ip`]. Nothing is routed or NATed to the outside world: no
//! route in the root namespace changes except the connected route of the bridge's /24.
//!
//! One more route on request: [`TestNet::route_into`] sends what one address of the root
//! namespace (a container's on the Docker bridge) sends to one network (a node's VIP pool)
//! into a node's namespace, through a policy rule that matches that source and destination
//! only, looking up a table of ours (`TABLE_BASE` + the subnet's index × 256 + the node)
//! that holds one route via the node's address. The rule goes when its guard drops; the
//! route goes with the bridge.
//!
//! `<id>` is five base-36 digits of the creating process id and two of a per-process counter,
//! so parallel test processes never collide and [`sweep_stale`] can tell from a name whether
//! its owner is still alive. The /24 comes from 10.200.0.0/13, skipping anything that
//! overlaps an address or route already on the host, and is claimed with a file under
//! `/run/shoal-testkit/` so two processes never pick the same one.
//!
//! Docker: when `br_netfilter` is loaded (`net.bridge.bridge-nf-call-iptables = 1`, which
//! Docker turns on), frames crossing *any* bridge go through the iptables FORWARD chain,
//! whose policy Docker sets to DROP — so namespace-to-namespace traffic on our bridge would
//! be dropped. The per-bridge `nf_call_iptables 0` knob cannot override the global sysctl
//! (the kernel ORs them), so in that case we insert `iptables -I FORWARD -i shb<id> -o
//! shb<id> -j ACCEPT`, which matches only frames that stay on our bridge, and delete it on
//! drop. Root-to-namespace traffic never hits FORWARD.
//!
//! Dropping a [`TestNet`] (also while unwinding from a panic) kills every process still
//! running in its namespaces, then removes the veths, namespaces, bridge, firewall rule and
//! subnet claim. A process that dies without dropping leaves them behind; the next
//! [`TestNet::create`] in any process sweeps them.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::claims::Claim;

const BRIDGE_PREFIX: &str = "shb";
const NS_PREFIX: &str = "shn";
const VETH_PREFIX: &str = "shv";
/// Base-36 digits of the pid in an id (36^5 > 2^22, the largest pid_max).
const PID_DIGITS: usize = 5;
/// Base-36 digits of the per-process counter in an id.
const COUNTER_DIGITS: usize = 2;
/// Node addresses are `<prefix>.(10+i)`; also keeps veth names within 15 characters.
const MAX_NODES: usize = 200;
/// Subnets are 10.(200 + k/256).(k%256).0/24 for k in 0..2048, i.e. 10.200.0.0/13.
const POOL_SECOND_OCTET: u32 = 200;
const POOL_SIZE: u32 = 2048;
/// Routing tables of [`TestNet::route_into`]: `TABLE_BASE + k * 256 + node` for subnet `k`.
const TABLE_BASE: u32 = 0x5348_0000;
/// Priority of its policy rules (before the main table's 32766).
const RULE_PRIORITY: &str = "1000";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A bridge with `len()` network namespaces attached; see the module docs for the topology.
#[derive(Debug)]
pub struct TestNet {
    id: String,
    prefix: [u8; 3],
    bridge: String,
    bridge_created: bool,
    namespaces: Vec<String>,
    /// Host-side veth names, one per namespace that got one.
    veths: Vec<String>,
    /// Arguments after `-I`/`-D` of the FORWARD rule we inserted, if any.
    forward_rule: Option<Vec<String>>,
    claim: Option<PathBuf>,
}

impl TestNet {
    /// Create a bridge at `<prefix>.1/24` and `n` namespaces, node `i` at `<prefix>.(10+i)`.
    /// Anything already created is removed again if a later step fails.
    pub fn create(n: usize) -> Result<TestNet> {
        if !available() {
            bail!(
                "network namespaces are not available: need root (CAP_NET_ADMIN, CAP_SYS_ADMIN) \
                 and the `ip` command (iproute2)"
            );
        }
        if n > MAX_NODES {
            bail!("a TestNet holds at most {MAX_NODES} nodes, {n} asked");
        }
        sweep_stale();

        let pid = std::process::id();
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = make_id(pid, counter)?;
        let mut net = TestNet {
            bridge: format!("{BRIDGE_PREFIX}{id}"),
            id,
            prefix: [0; 3],
            bridge_created: false,
            namespaces: Vec::with_capacity(n),
            veths: Vec::with_capacity(n),
            forward_rule: None,
            claim: None,
        };
        // From here on, an early return drops `net`, which removes what was created so far.
        let (prefix, claim) = claim_subnet(pid, counter)?;
        net.prefix = prefix;
        net.claim = Some(claim);

        let br = net.bridge.clone();
        let host = net.host_ip().to_string();
        ip(&["link", "add", &br, "type", "bridge"])?;
        net.bridge_created = true;
        ip(&["addr", "add", &format!("{host}/24"), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        net.allow_forwarding_on_bridge()?;

        for i in 0..n {
            let ns = format!("{NS_PREFIX}{}-{i}", net.id);
            let veth = format!("{VETH_PREFIX}{}-{i}", net.id);
            ip(&["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            net.veths.push(veth.clone());
            ip(&["link", "set", &veth, "master", &br, "up"])?;
            let addr = format!("{}/24", net.ip(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "route", "add", "default", "via", &host])?;
            // `ip netns exec` shows this file as the namespace's /etc/resolv.conf: its
            // resolver is the bridge's host address, where a test may answer.
            let etc = resolv_dir(&ns);
            std::fs::create_dir_all(&etc).with_context(|| format!("create {}", etc.display()))?;
            std::fs::write(etc.join("resolv.conf"), format!("nameserver {host}\n"))
                .with_context(|| format!("write {}/resolv.conf", etc.display()))?;
        }
        Ok(net)
    }

    /// Number of nodes (namespaces).
    pub fn len(&self) -> usize {
        self.namespaces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// Node `i`'s address, `<prefix>.(10+i)`.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        self.check(i);
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, 10 + i as u8)
    }

    /// The bridge address, `<prefix>.1`: the root namespace as seen from every node.
    pub fn host_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// Name of node `i`'s network namespace.
    pub fn ns(&self, i: usize) -> &str {
        self.check(i);
        &self.namespaces[i]
    }

    /// Name of the bridge in the root namespace.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// A command that runs `program` inside node `i`'s namespace (`ip netns exec <ns> program`).
    /// `ip netns exec` execs the program, so the child's pid is the program's.
    pub fn command(&self, i: usize, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(ip_program());
        cmd.args(["netns", "exec", self.ns(i)]).arg(program);
        cmd
    }

    /// Cut node `i` off the network by bringing its host-side veth down; the other nodes
    /// keep talking to each other and to the root namespace.
    pub fn cut(&self, i: usize) -> Result<()> {
        self.check(i);
        ip(&["link", "set", &self.veths[i], "down"]).map(drop)
    }

    /// Undo [`TestNet::cut`].
    pub fn restore(&self, i: usize) -> Result<()> {
        self.check(i);
        ip(&["link", "set", &self.veths[i], "up"]).map(drop)
    }
    /// Route what `source`, an address of the root namespace, sends to `network` (`a.b.c.d/n`)
    /// into node `i`'s namespace, via its address on the bridge; nothing else sent to
    /// `network` changes way. The node must route its replies back (its default route, via
    /// the bridge, does). Undone when the guard drops.
    pub fn route_into(&self, i: usize, source: Ipv4Addr, network: &str) -> Result<RouteInto> {
        self.check(i);
        let [_, b, c] = self.prefix;
        let k = (u32::from(b) - POOL_SECOND_OCTET) * 256 + u32::from(c);
        let table = (TABLE_BASE + k * 256 + i as u32).to_string();
        let via = self.ip(i).to_string();
        ip(&[
            "route",
            "replace",
            network,
            "via",
            &via,
            "dev",
            &self.bridge,
            "table",
            &table,
        ])?;
        let rule = [
            "from".to_string(),
            format!("{source}/32"),
            "to".into(),
            network.into(),
            "lookup".into(),
            table,
            "priority".into(),
            RULE_PRIORITY.into(),
        ];
        let mut add = vec!["rule", "add"];
        add.extend(rule.iter().map(String::as_str));
        ip(&add)?;
        Ok(RouteInto { rule })
    }

    fn check(&self, i: usize) {
        assert!(
            i < self.len(),
            "node {i} out of range: the TestNet has {} nodes",
            self.len()
        );
    }

    /// See the module docs: with br_netfilter on, bridged frames meet Docker's FORWARD DROP.
    fn allow_forwarding_on_bridge(&mut self) -> Result<()> {
        let bridged_through_iptables =
            std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
                .is_ok_and(|v| v.trim() == "1");
        if !bridged_through_iptables {
            return Ok(());
        }
        let Some(iptables) = iptables_program() else {
            return Ok(());
        };
        let rule = forward_rule(&self.bridge);
        let mut args = vec!["-w", "5", "-I"];
        args.extend(rule.iter().map(String::as_str));
        run(iptables, &args)?;
        self.forward_rule = Some(rule);
        Ok(())
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            kill_processes_in(ns);
        }
        // Deleting the host end removes the peer inside the namespace too.
        for veth in &self.veths {
            cleanup(ip(&["link", "del", veth]));
        }
        for ns in &self.namespaces {
            cleanup(ip(&["netns", "del", ns]));
            let _ = std::fs::remove_dir_all(resolv_dir(ns));
        }
        if self.bridge_created {
            cleanup(ip(&["link", "del", &self.bridge]));
        }
        if let (Some(rule), Some(iptables)) = (&self.forward_rule, iptables_program()) {
            let mut args = vec!["-w", "5", "-D"];
            args.extend(rule.iter().map(String::as_str));
            cleanup(run(iptables, &args));
        }
        // Last, so nobody else takes the subnet while our bridge still has it.
        if let Some(claim) = &self.claim {
            let _ = std::fs::remove_file(claim);
        }
    }
}

/// A policy rule of [`TestNet::route_into`], deleted on drop.
#[derive(Debug)]
pub struct RouteInto {
    /// Arguments after `ip rule add` / `ip rule del`.
    rule: [String; 8],
}

impl Drop for RouteInto {
    fn drop(&mut self) {
        let mut del = vec!["rule", "del"];
        del.extend(self.rule.iter().map(String::as_str));
        cleanup(ip(&del));
    }
}

/// Where `ip netns exec` finds the namespace's own files under /etc.
fn resolv_dir(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// Remove what earlier test processes left behind when they died without dropping their
/// [`TestNet`]s: namespaces, links and FORWARD rules whose owning pid (read from the name)
/// no longer runs, and subnet and port claims whose pid (the claim's contents) no longer
/// runs. Called by [`TestNet::create`]; errors are ignored.
pub fn sweep_stale() {
    if !available() {
        return;
    }
    let stale =
        |name: &str, prefix: &str| owner_pid(name, prefix).is_some_and(|p| !crate::alive(p));

    if let Ok(list) = ip(&["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if stale(ns, NS_PREFIX) {
                kill_processes_in(ns);
                cleanup(ip(&["netns", "del", ns]));
                let _ = std::fs::remove_dir_all(resolv_dir(ns));
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show"]) {
        // "7: shv0abcd00-1@if2: <BROADCAST,...": veths first, then the bridges they hang on.
        let names: Vec<&str> = list
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .filter_map(|n| n.split('@').next())
            .collect();
        for prefix in [VETH_PREFIX, BRIDGE_PREFIX] {
            for name in names.iter().filter(|n| stale(n, prefix)) {
                cleanup(ip(&["link", "del", name]));
            }
        }
    }
    if let Some(iptables) = iptables_program() {
        if let Ok(rules) = run(iptables, &["-w", "5", "-S", "FORWARD"]) {
            for line in rules.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let ["-A", "FORWARD", "-i", br, "-o", br2, "-j", "ACCEPT"] = words[..] {
                    if br == br2 && stale(br, BRIDGE_PREFIX) {
                        let mut args = vec!["-w", "5", "-D"];
                        args.extend(&words[1..]);
                        cleanup(run(iptables, &args));
                    }
                }
            }
        }
    }
    crate::claims::sweep();
    // Rules of `route_into` whose subnet nobody claims any more.
    if let Ok(rules) = ip(&["rule", "show"]) {
        for line in rules.lines() {
            let Some((priority, rule)) = line.split_once(":\t") else {
                continue;
            };
            let words: Vec<&str> = rule.split_whitespace().collect();
            let Some(k) = words
                .iter()
                .position(|w| *w == "lookup")
                .and_then(|p| words.get(p + 1)?.parse::<u32>().ok())
                .and_then(|t| t.checked_sub(TABLE_BASE))
                .map(|t| t / 256)
                .filter(|k| *k < POOL_SIZE)
            else {
                continue;
            };
            let claim = Path::new(crate::claims::DIR).join(format!(
                "10.{}.{}.0",
                POOL_SECOND_OCTET + k / 256,
                k % 256
            ));
            if !claim.exists() {
                let mut del = vec!["rule", "del", "priority", priority.trim()];
                del.extend(&words);
                cleanup(ip(&del));
            }
        }
    }
}

/// Whether this process can create network namespaces: effective uid 0 with CAP_NET_ADMIN
/// and CAP_SYS_ADMIN, and `ip` installed. Tests that need a [`TestNet`] should assert this
/// with a clear message rather than skip.
pub fn available() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    let euid_root = field("Uid:")
        .and_then(|v| v.split_whitespace().nth(1))
        .is_some_and(|v| v == "0");
    let caps = field("CapEff:")
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| caps & (1 << cap) != 0;
    euid_root && has(CAP_NET_ADMIN) && has(CAP_SYS_ADMIN) && find_program("ip").is_some()
}

fn make_id(pid: u32, counter: u32) -> Result<String> {
    let pid_part = base36(pid, PID_DIGITS).context("process id too large for a TestNet name")?;
    let counter_part = base36(counter, COUNTER_DIGITS)
        .with_context(|| format!("too many TestNets in one process ({counter})"))?;
    Ok(pid_part + &counter_part)
}

/// `n` in exactly `width` lowercase base-36 digits, or None if it does not fit.
fn base36(mut n: u32, width: usize) -> Option<String> {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    (n == 0).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// The pid encoded in one of our names: `<prefix><5 pid digits><2 counter digits>` followed
/// by nothing (bridge) or `-<node>` (namespace, veth). None for names that are not ours.
fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let id_len = PID_DIGITS + COUNTER_DIGITS;
    let (id, tail) = (rest.get(..id_len)?, &rest[id_len..]);
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    let tail_ok = if prefix == BRIDGE_PREFIX {
        tail.is_empty()
    } else {
        tail.strip_prefix('-')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if !id_ok || !tail_ok {
        return None;
    }
    u32::from_str_radix(&id[..PID_DIGITS], 36).ok()
}

/// Pick a free /24 in the pool, starting from a spot derived from (pid, counter), and claim
/// it with an exclusively created file holding our pid.
fn claim_subnet(pid: u32, counter: u32) -> Result<([u8; 3], PathBuf)> {
    let used = host_networks()?;
    let start =
        (splitmix64((u64::from(pid) << 16) | u64::from(counter)) % u64::from(POOL_SIZE)) as u32;
    for k in (0..POOL_SIZE).map(|k| (start + k) % POOL_SIZE) {
        let prefix = [10, (POOL_SECOND_OCTET + k / 256) as u8, (k % 256) as u8];
        let net = u32::from(Ipv4Addr::new(prefix[0], prefix[1], prefix[2], 0));
        if used.iter().any(|&(u, len)| overlaps((net, 24), (u, len))) {
            continue;
        }
        // Not taken over when stale: the sweep removes its owner's leftovers first.
        let name = format!("{}.{}.{}.0", prefix[0], prefix[1], prefix[2]);
        match crate::claims::claim(&name, false) {
            Claim::Ours(path) => return Ok((prefix, path)),
            Claim::Taken => continue,
            Claim::Unavailable(e) => return Err(e).with_context(|| format!("claim {name}")),
        }
    }
    bail!(
        "no free /24 left in 10.200.0.0/13 (addresses and routes on the host, claims in {})",
        crate::claims::DIR
    )
}

/// Every IPv4 network the host has an address in or a specific route to.
fn host_networks() -> Result<Vec<(u32, u8)>> {
    let addrs = ip(&["-4", "-o", "addr", "show"])?;
    let routes = ip(&["-4", "route", "show", "table", "all"])?;
    let from_addrs = addrs.lines().filter_map(|l| {
        let mut words = l.split_whitespace();
        words.find(|w| *w == "inet")?;
        parse_cidr(words.next()?)
    });
    // "10.1.0.0/16 dev x", "local 10.1.2.3 dev x table local", "unreachable 10.9.0.0/16".
    // Routes shorter than /8 are default-like (a VPN's 0.0.0.0/1 + 128.0.0.0/1): a /24 of
    // ours is more specific and only shadows them locally, so they do not rule anything out.
    let from_routes = routes
        .lines()
        .filter_map(|l| l.split_whitespace().take(2).find_map(parse_cidr))
        .filter(|&(_, len)| len >= 8);
    Ok(from_addrs.chain(from_routes).collect())
}

fn parse_cidr(s: &str) -> Option<(u32, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().ok().filter(|l| *l <= 32)?),
        None => (s, 32),
    };
    Some((u32::from(addr.parse::<Ipv4Addr>().ok()?), len))
}

fn overlaps((a, alen): (u32, u8), (b, blen): (u32, u8)) -> bool {
    let len = alen.min(blen);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a & mask == b & mask
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn forward_rule(bridge: &str) -> Vec<String> {
    ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]
        .map(String::from)
        .to_vec()
}

/// SIGKILL every process in `ns` and wait (briefly) until none is left, so the namespace
/// and its interfaces really go away when deleted.
fn kill_processes_in(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let pids: Vec<String> = match ip(&["netns", "pids", ns]) {
            Ok(out) => out.split_whitespace().map(String::from).collect(),
            Err(_) => return,
        };
        if pids.is_empty() {
            return;
        }
        // The shell's builtin kill: no dependency on procps, no unsafe libc call. What was
        // found is killed even past the deadline (a slow listing on a busy machine).
        let _ = Command::new("sh")
            .args(["-c", "kill -KILL \"$@\" 2>/dev/null", "kill"])
            .args(&pids)
            .stdin(Stdio::null())
            .status();
        if Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Report a failed cleanup step unless the thing was already gone.
fn cleanup<T>(result: Result<T>) {
    let Err(e) = result else { return };
    let msg = format!("{e:#}");
    const GONE: [&str; 6] = [
        "Cannot find device",
        "No such file or directory",
        "Cannot open network namespace",
        "does not exist",
        "No such device",
        "Bad rule",
    ];
    if !GONE.iter().any(|g| msg.contains(g)) {
        eprintln!("shoal-testkit netns cleanup: {msg}");
    }
}

fn ip(args: &[&str]) -> Result<String> {
    run(ip_program(), args)
}

/// Run a command to completion; an error names the full command line, the exit status and
/// what it printed on stderr.
fn run(program: &Path, args: &[&str]) -> Result<String> {
    let mut line = program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned();
    for a in args {
        let _ = write!(line, " {a}");
    }
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip_program() -> &'static Path {
    static IP: OnceLock<PathBuf> = OnceLock::new();
    IP.get_or_init(|| find_program("ip").unwrap_or_else(|| PathBuf::from("ip")))
}

fn iptables_program() -> Option<&'static Path> {
    static IPTABLES: OnceLock<Option<PathBuf>> = OnceLock::new();
    IPTABLES.get_or_init(|| find_program("iptables")).as_deref()
}

/// `name` on PATH or in the sbin directories (which a non-login PATH may lack).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_encode_the_owner_pid() {
        let id = make_id(4_194_303, 1295).unwrap();
        assert_eq!(id.len(), PID_DIGITS + COUNTER_DIGITS);
        assert_eq!(
            owner_pid(&format!("shb{id}"), BRIDGE_PREFIX),
            Some(4_194_303)
        );
        assert_eq!(
            owner_pid(&format!("shn{id}-12"), NS_PREFIX),
            Some(4_194_303)
        );
        let veth = format!("shv{id}-{}", MAX_NODES - 1);
        assert!(veth.len() <= 15, "{veth} is too long for an interface name");
        assert_eq!(owner_pid(&veth, VETH_PREFIX), Some(4_194_303));
        assert!(make_id(1, 1296).is_err());
    }

    #[test]
    fn foreign_names_are_not_ours() {
        for (name, prefix) in [
            ("shbX", BRIDGE_PREFIX),
            ("shb0000100-1", BRIDGE_PREFIX),
            ("shv0000100", VETH_PREFIX),
            ("shv0000100-", VETH_PREFIX),
            ("shn00001AB-1", NS_PREFIX),
            ("docker0", BRIDGE_PREFIX),
        ] {
            assert_eq!(owner_pid(name, prefix), None, "{name}");
        }
    }

    #[test]
    fn command_errors_name_the_command_and_its_stderr() {
        let err = ip(&["link", "show", "shoal-no-such"]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("`ip link show shoal-no-such` failed"), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
    }

    #[test]
    fn overlap_of_networks() {
        let net = |s: &str| parse_cidr(s).unwrap();
        assert!(overlaps(net("10.200.3.0/24"), net("10.0.0.0/8")));
        assert!(overlaps(net("10.200.3.0/24"), net("10.200.3.7")));
        assert!(overlaps(net("10.200.3.0/24"), net("0.0.0.0/0")));
        assert!(!overlaps(net("10.200.3.0/24"), net("10.200.4.0/24")));
        assert!(!overlaps(net("10.200.3.0/24"), net("172.17.0.1/16")));
        assert_eq!(parse_cidr("default"), None);
    }
}
