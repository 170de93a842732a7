//! A joining node's first contact with a manager: take the cluster's root CA on trust,
//! check it against the digest in the join token, then ask for a certificate with the
//! token, following the manager to the leader (only the leader admits nodes).

use super::error::MembershipError;
use shoal_manager::leader::leader_of;
use shoal_rpc::pki;
use shoal_rpc::proto::ca_client::CaClient;
use shoal_rpc::proto::{Empty, IssueRequest, IssueResponse};
use shoal_rpc::tls;
use shoal_rpc::token::{self, JoinToken};
use std::net::SocketAddr;

/// How many times a request follows a manager's pointer to the leader.
const MAX_LEADER_HOPS: usize = 3;

/// The root CA of the cluster `manager` belongs to, if it is the one `token` names.
pub async fn root_ca(manager: SocketAddr, token: &JoinToken) -> Result<String, MembershipError> {
    let first = tls::channel(
        manager,
        tls::first_contact_config().map_err(MembershipError::internal)?,
    )
    .map_err(MembershipError::internal)?;
    let root = CaClient::new(first)
        .get_root_ca(Empty {})
        .await
        .map_err(|s| status_error(manager, s))?
        .into_inner()
        .cert_pem;
    let der = pki::pem_to_der(&root).map_err(MembershipError::internal)?;
    if token::digest(&der) != token.ca_digest {
        return Err(MembershipError::ForeignCluster(manager));
    }
    Ok(root)
}

/// The certificate the leader issues for `req`, and the manager that answered.
pub async fn issue(
    manager: SocketAddr,
    root_pem: &str,
    req: IssueRequest,
) -> Result<(IssueResponse, SocketAddr), MembershipError> {
    let client = tls::client_config(root_pem, None, &[b"h2"]).map_err(MembershipError::internal)?;
    let mut target = manager;
    let mut hops = 0;
    loop {
        let channel = tls::channel(target, client.clone()).map_err(MembershipError::internal)?;
        match CaClient::new(channel)
            .issue_node_certificate(req.clone())
            .await
        {
            Ok(r) => return Ok((r.into_inner(), target)),
            Err(s) => match leader_of(&s).and_then(|l| l.parse().ok()) {
                Some(leader) if hops < MAX_LEADER_HOPS => {
                    hops += 1;
                    target = leader;
                }
                _ => return Err(status_error(target, s)),
            },
        }
    }
}

/// A manager's refusal, or the failure to reach it.
fn status_error(manager: SocketAddr, s: tonic::Status) -> MembershipError {
    use tonic::Code;
    let msg = s.message().to_string();
    match s.code() {
        Code::PermissionDenied | Code::InvalidArgument | Code::FailedPrecondition => {
            MembershipError::Refused(msg)
        }
        Code::AlreadyExists => MembershipError::Duplicate(msg),
        _ => MembershipError::Unreachable {
            manager,
            message: msg,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    #[test]
    fn refusals_keep_the_managers_words_and_the_rest_name_the_manager() {
        let at = SocketAddr::from(([10, 0, 0, 1], 2377));
        for code in [
            Code::PermissionDenied,
            Code::InvalidArgument,
            Code::FailedPrecondition,
        ] {
            let e = status_error(at, Status::new(code, "invalid join token"));
            assert!(matches!(e, MembershipError::Refused(_)), "{code:?}: {e:?}");
            assert_eq!(e.to_string(), "invalid join token");
        }
        let e = status_error(at, Status::already_exists("node n1 exists"));
        assert!(matches!(e, MembershipError::Duplicate(_)), "{e:?}");
        assert_eq!(e.to_string(), "node n1 exists");
        let e = status_error(at, Status::unavailable("connection refused"));
        assert_eq!(
            e.to_string(),
            "cannot reach the manager at 10.0.0.1:2377: connection refused"
        );
    }
}
