//! Hashes that every node computes alike, in every process and version: which endpoint a
//! client maps to must not depend on where it is asked (std's hasher is seeded per
//! process, so it is not used for keys).

use std::net::IpAddr;

/// FNV-1a (64 bits) of `bytes`, started from `seed` mixed into the offset basis.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET_BASIS ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// Spreads every input bit over the output (the splitmix64 finalizer): FNV alone leaves
/// the low bits, which a modulo keeps, weak for short keys such as addresses.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A client address's hash; an IPv4 address mapped into IPv6 hashes as itself.
pub(crate) fn client(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => mix(fnv1a(4, &v4.octets())),
        IpAddr::V6(v6) => mix(fnv1a(6, &v6.octets())),
    }
}

/// A task ID's hash under `seed`: different seeds give independent hashes of one ID.
pub(crate) fn task(seed: u64, task_id: &str) -> u64 {
    mix(fnv1a(seed, task_id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_fixed_values() {
        // Pinned: a change here remaps every client on every node of a mixed-version
        // cluster.
        assert_eq!(fnv1a(0, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(0, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(client(IpAddr::from([10, 0, 0, 1])), 0x0844_d36b_b8d2_ed6a);
        assert_eq!(task(1, "t"), 0xc43c_d772_8426_a6c0);
    }

    #[test]
    fn a_mapped_ipv4_address_hashes_as_itself() {
        let v4 = IpAddr::from([192, 168, 1, 7]);
        let mapped = IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0xc0a8, 0x0107]);
        assert_eq!(client(v4), client(mapped));
        assert_ne!(task(1, "t"), task(2, "t"));
    }
}
