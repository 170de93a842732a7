//! The UDP socket clients send to — a published port, or the socket a VIP port is
//! redirected to — answering each client from the address its datagram was sent to.
//!
//! A socket bound to a wildcard address leaves the source of a reply to routing, and on a
//! node with several addresses, or behind a nat REDIRECT, routing picks the wrong one: the
//! client drops a reply from an address it did not send to, and conntrack cannot reverse a
//! REDIRECT whose reply comes from another address. So on IPv4 each datagram is received
//! with `IP_PKTINFO` (the address it was sent to, after any redirect), and its replies go
//! out with that address as their source.

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Room for the one `in_pktinfo` control message, aligned as `cmsghdr` wants.
#[repr(C, align(8))]
struct ControlBuffer([u8; 64]);

/// One datagram as received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) client: SocketAddr,
    /// The address the datagram was sent to (after any redirect): where replies come from.
    pub(crate) local: Option<Ipv4Addr>,
}

/// A UDP socket that receives from clients and replies from the address they sent to.
#[derive(Debug)]
pub(crate) struct Front {
    socket: UdpSocket,
    pktinfo: bool,
}

impl Front {
    /// Binds `addr` (port 0: a free port). Must be called within a tokio runtime.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Front> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let pktinfo = addr.is_ipv4();
        if pktinfo {
            setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?;
        }
        Ok(Front {
            socket: UdpSocket::from_std(socket)?,
            pktinfo,
        })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The next datagram, into `buf` (cut to its length if longer).
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        if !self.pktinfo {
            let (len, client) = self.socket.recv_from(buf).await?;
            return Ok(Received {
                len,
                client,
                local: None,
            });
        }
        let fd = self.socket.as_raw_fd();
        self.socket
            .async_io(Interest::READABLE, || recv_with_destination(fd, buf))
            .await
    }

    /// Sends `payload` to `to` from `from` (when known), at once: a datagram that finds the
    /// socket's buffer full is dropped, as UDP allows. (Never through tokio's readiness,
    /// which a send that does not wait has no use for.)
    pub(crate) fn try_send(
        &self,
        payload: &[u8],
        to: SocketAddr,
        from: Option<Ipv4Addr>,
    ) -> io::Result<()> {
        let fd = self.socket.as_raw_fd();
        match (from, to) {
            (Some(from), SocketAddr::V4(to)) if self.pktinfo => send_from(fd, payload, to, from),
            _ => {
                let to = nix::sys::socket::SockaddrStorage::from(to);
                nix::sys::socket::sendto(fd, payload, &to, MsgFlags::empty())?;
                Ok(())
            }
        }
    }
}

fn recv_with_destination(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut control = ControlBuffer([0; 64]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut control.0), MsgFlags::empty())?;
    let Some(from) = msg.address else {
        return Err(io::Error::other("datagram without a sender address"));
    };
    let mut local = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::Ipv4PacketInfo(info) = cmsg {
            let header = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
            let own = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
            // A reply never comes from a broadcast or multicast address.
            local = Some(if header.is_broadcast() || header.is_multicast() {
                own
            } else {
                header
            });
        }
    }
    Ok(Received {
        len: msg.bytes,
        client: SocketAddr::V4(SocketAddrV4::new(from.ip(), from.port())),
        local,
    })
}

fn send_from(
    fd: std::os::fd::RawFd,
    payload: &[u8],
    to: SocketAddrV4,
    from: Ipv4Addr,
) -> io::Result<()> {
    let info = nix::libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: nix::libc::in_addr {
            s_addr: u32::from(from).to_be(),
        },
        ipi_addr: nix::libc::in_addr { s_addr: 0 },
    };
    let iov = [IoSlice::new(payload)];
    let to = SockaddrIn::from(to);
    sendmsg(
        fd,
        &iov,
        &[ControlMessage::Ipv4PacketInfo(&info)],
        MsgFlags::empty(),
        Some(&to),
    )?;
    Ok(())
}
