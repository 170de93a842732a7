//! The checks an `init` request (`shoal_wire::v1::membership`) passes before anything is
//! touched, and the settings of the new cluster they give.

use super::error::MembershipError;
use crate::addr;
use shoal_api::VipPool;
use shoal_rpc::pki;
use shoal_wire::v1::membership::InitRequest;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// An `init` request, checked: what the new cluster is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSettings {
    /// Where the control port listens.
    pub listen: SocketAddr,
    /// Where other nodes reach this one.
    pub advertise_ip: IpAddr,
    pub heartbeat_ms: u64,
    pub cert_expiry: Duration,
    pub vip_pool: VipPool,
}

impl TryFrom<&InitRequest> for InitSettings {
    type Error = MembershipError;

    /// The settings of a new cluster, or the first thing wrong with the request.
    fn try_from(req: &InitRequest) -> Result<InitSettings, MembershipError> {
        let listen = addr::listen_addr(req.listen_addr.as_deref())?;
        let advertise_ip: IpAddr = match req.advertise_addr.as_deref() {
            Some(a) => addr::advertise_ip(a)?,
            None if !listen.ip().is_unspecified() => listen.ip(),
            None => IpAddr::from([127, 0, 0, 1]),
        };
        let heartbeat_ms = req
            .heartbeat_ms
            .unwrap_or(shoal_api::cluster::DEFAULT_HEARTBEAT_MS);
        if !shoal_api::cluster::HEARTBEAT_MS_RANGE.contains(&heartbeat_ms) {
            return Err(MembershipError::Heartbeat(heartbeat_ms));
        }
        let cert_expiry = Duration::from_secs(
            req.cert_expiry_secs
                .unwrap_or(pki::DEFAULT_CERT_LIFETIME.as_secs()),
        );
        if cert_expiry < Duration::from_secs(shoal_api::cluster::MIN_CERT_LIFETIME_SECS) {
            return Err(MembershipError::CertExpiry);
        }
        let vip_pool = match req.vip_pool.as_deref() {
            Some(text) => {
                VipPool::parse(text).map_err(|e| MembershipError::VipPool(e.to_string()))?
            }
            None => VipPool::default(),
        };
        Ok(InitSettings {
            listen,
            advertise_ip,
            heartbeat_ms,
            cert_expiry,
            vip_pool,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(req: InitRequest) -> String {
        match InitSettings::try_from(&req) {
            Err(e) => e.to_string(),
            Ok(s) => panic!("accepted: {s:?}"),
        }
    }

    #[test]
    fn defaults() {
        let s = InitSettings::try_from(&InitRequest::default()).expect("defaults");
        assert_eq!(s.listen, SocketAddr::from(([0, 0, 0, 0], 2377)));
        assert_eq!(s.advertise_ip, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(s.heartbeat_ms, 1000);
        assert_eq!(s.cert_expiry, pki::DEFAULT_CERT_LIFETIME);
        assert_eq!(s.vip_pool, VipPool::default());
    }

    #[test]
    fn advertise_ip_comes_from_a_specific_listen_address() {
        let s = InitSettings::try_from(&InitRequest {
            listen_addr: Some("10.0.0.7:4000".into()),
            ..InitRequest::default()
        })
        .expect("settings");
        assert_eq!(s.advertise_ip, IpAddr::from([10, 0, 0, 7]));
        let s = InitSettings::try_from(&InitRequest {
            listen_addr: Some("10.0.0.7:4000".into()),
            advertise_addr: Some("10.0.0.8:2377".into()),
            ..InitRequest::default()
        })
        .expect("settings");
        assert_eq!(s.advertise_ip, IpAddr::from([10, 0, 0, 8]));
    }

    #[test]
    fn each_bad_field_is_named() {
        let req = InitRequest::default;
        let cases = [
            (
                InitRequest {
                    listen_addr: Some("nowhere".into()),
                    ..req()
                },
                "invalid listen address \"nowhere\": expected IP:PORT",
            ),
            (
                InitRequest {
                    advertise_addr: Some("eth0".into()),
                    ..req()
                },
                "invalid advertise address \"eth0\": expected an IP address",
            ),
            (
                InitRequest {
                    heartbeat_ms: Some(49),
                    ..req()
                },
                "invalid dispatcher heartbeat 49ms: use 50ms to 1m",
            ),
            (
                InitRequest {
                    heartbeat_ms: Some(60_001),
                    ..req()
                },
                "invalid dispatcher heartbeat 60001ms: use 50ms to 1m",
            ),
            (
                InitRequest {
                    cert_expiry_secs: Some(9),
                    ..req()
                },
                "invalid certificate expiry: at least 10s",
            ),
        ];
        for (req, want) in cases {
            assert_eq!(refusal(req), want);
        }
    }

    #[test]
    fn a_bad_vip_pool_is_refused_in_the_parsers_words() {
        let text = "10.96.0.0/25";
        let want = VipPool::parse(text).expect_err("too small").to_string();
        let got = refusal(InitRequest {
            vip_pool: Some(text.into()),
            ..InitRequest::default()
        });
        assert_eq!(got, want);
        assert!(got.starts_with("invalid vip-pool"), "{got}");
    }

    #[test]
    fn the_first_bad_field_wins() {
        let got = refusal(InitRequest {
            listen_addr: Some("x".into()),
            heartbeat_ms: Some(1),
            ..InitRequest::default()
        });
        assert!(got.starts_with("invalid listen address"), "{got}");
    }
}
