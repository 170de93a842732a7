# Sourced by the scripts in bench/: a network namespace of the script's own, so the
# benchmark's traffic, VIPs and nat rules never touch the machine's own networks.
#
#   netns_create PREFIX   creates namespace "$NS" (PREFIX-<our pid>) with only `lo`, up, and
#                         an /etc/netns/$NS/resolv.conf without nameservers (`ip netns exec`
#                         shows it as /etc/resolv.conf inside): nothing resolves upstream
#   inns CMD...           runs CMD inside it
#   "${INNS[@]}" CMD... & the same for a process started in the background: `ip netns exec`
#                         execs CMD, so $! is CMD's pid (with the function, $! would be the
#                         pid of a subshell between)
#   netns_remove          SIGKILLs every process still in it, then deletes it and its /etc dir
#
# iptables rules, addresses and sockets made inside the namespace go with it.

NS=""
INNS=()

netns_create() {
    local name="$1-$$"
    if ip netns list | grep -qw -- "$name"; then
        echo "error: network namespace $name already exists" >&2
        return 1
    fi
    ip netns add "$name"
    NS=$name
    INNS=(ip netns exec "$NS")
    ip -n "$NS" link set lo up
    mkdir -p "/etc/netns/$NS"
    printf '# %s: benchmark namespace, no upstream resolver\n' "$NS" >"/etc/netns/$NS/resolv.conf"
}

inns() { "${INNS[@]}" "$@"; }

netns_remove() {
    [[ -n $NS ]] || return 0
    local pids tries=30
    while pids=$(ip netns pids "$NS" 2>/dev/null) && [[ -n $pids ]] && ((tries-- > 0)); do
        # shellcheck disable=SC2086 # one pid per word
        kill -KILL $pids 2>/dev/null || true
        sleep 0.1
    done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "/etc/netns/$NS"
    NS=""
}
