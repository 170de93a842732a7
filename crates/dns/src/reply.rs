//! A reply written straight into one buffer: header, the question as asked, records that
//! name their owner by a compression pointer where they can, an OPT record when the query
//! had one. Records that would overflow the size the client can take are left out: from
//! the answer section with the TC bit set, from the additional section silently (RFC 2181
//! 9).

use crate::request::{Edns, Head, Request, HEADER_LEN};
use crate::TTL;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rand::Rng;

/// The UDP payload we advertise, and the most we send over UDP whatever the client says.
pub(crate) const MAX_UDP_PAYLOAD: u16 = 4096;
/// What a client without EDNS takes over UDP (RFC 1035 4.2.1).
pub(crate) const PLAIN_UDP_PAYLOAD: usize = 512;
/// Most a DNS message can hold (TCP's 2-byte length).
pub(crate) const MAX_MESSAGE: usize = u16::MAX as usize;
/// The OPT record we add: root owner, type, class, TTL, empty RDATA.
const OPT_LEN: usize = 11;
/// Type, class, TTL and RDATA length of a record.
const RECORD_FIXED: usize = 10;
const CLASS_IN: u16 = 1;
/// What a reply buffer starts with (grown for large answers).
const TYPICAL_REPLY: usize = 512;
/// Offset of the question's name, pointed at by every record it owns.
pub(crate) const QUESTION_NAME: u16 = HEADER_LEN as u16;

/// Which section a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Answer,
    Additional,
}

#[derive(Debug)]
pub(crate) struct Reply {
    buf: Vec<u8>,
    head: Head,
    /// Largest the message may grow, the OPT record aside.
    limit: usize,
    questions: u16,
    answers: u16,
    additionals: u16,
    truncated: bool,
    /// No more additional records: one did not fit.
    additional_full: bool,
    edns: Option<Edns>,
}

impl Reply {
    /// A reply to `req`'s question, to grow no larger than `max_size` (with OPT).
    pub(crate) fn to(req: &Request<'_>, max_size: usize) -> Reply {
        Reply::start(req.head, Some(req.question), req.edns, max_size)
    }

    /// A reply to `question` (if it could be read), to carry no record.
    pub(crate) fn start(
        head: Head,
        question: Option<&[u8]>,
        edns: Option<Edns>,
        max_size: usize,
    ) -> Reply {
        let question = question.unwrap_or_default();
        // One allocation for most replies: room for a few records beyond the question.
        let capacity = (HEADER_LEN + question.len() + OPT_LEN).max(max_size.min(TYPICAL_REPLY));
        let mut buf = Vec::with_capacity(capacity);
        buf.resize(HEADER_LEN, 0);
        buf.extend_from_slice(question);
        let opt = if edns.is_some() { OPT_LEN } else { 0 };
        Reply {
            buf,
            head,
            limit: max_size.saturating_sub(opt),
            questions: u16::from(!question.is_empty()),
            answers: 0,
            additionals: 0,
            truncated: false,
            additional_full: false,
            edns,
        }
    }

    /// Appends a record of `owner` (wire name parts, a pointer among them) with `rdata`
    /// (parts). Returns where the RDATA starts, or `None` if it did not fit (and is not
    /// there).
    pub(crate) fn push(
        &mut self,
        section: Section,
        owner: &[&[u8]],
        rtype: RecordType,
        rdata: &[&[u8]],
    ) -> Option<usize> {
        if self.truncated || (section == Section::Additional && self.additional_full) {
            return None;
        }
        let start = self.buf.len();
        for part in owner {
            self.buf.extend_from_slice(part);
        }
        let rdlen: usize = rdata.iter().map(|p| p.len()).sum();
        self.fixed(rtype, rdlen as u16);
        let at = self.buf.len();
        for part in rdata {
            self.buf.extend_from_slice(part);
        }
        if self.buf.len() > self.limit {
            self.buf.truncate(start);
            match section {
                Section::Answer => self.truncated = true,
                Section::Additional => self.additional_full = true,
            }
            return None;
        }
        match section {
            Section::Answer => self.answers += 1,
            Section::Additional => self.additionals += 1,
        }
        Some(at)
    }

    /// Answers the question's name with one address record per entry of `addrs`, in an
    /// order shuffled by `rng`; when not all fit, as many as do, picked at random, and TC
    /// set. Nothing is allocated beyond the reply itself.
    pub(crate) fn push_addresses<const N: usize>(
        &mut self,
        rtype: RecordType,
        addrs: impl ExactSizeIterator<Item = [u8; N]>,
        rng: &mut impl Rng,
    ) {
        let count = addrs.len();
        if self.truncated || count == 0 {
            return;
        }
        let record = 2 + RECORD_FIXED + N;
        let start = self.buf.len();
        let fit = (self.limit.saturating_sub(start) / record).min(count);
        self.buf.reserve(fit * record);
        // Reservoir sampling: the first `fit` records, each later address replacing one of
        // them with the odds that leave every address equally likely to be kept.
        for (i, addr) in addrs.enumerate() {
            if i < fit {
                self.buf.extend_from_slice(&pointer(QUESTION_NAME));
                self.fixed(rtype, N as u16);
                self.buf.extend_from_slice(&addr);
            } else {
                let j = rng.random_range(0..=i);
                if j < fit {
                    let rdata = start + j * record + 2 + RECORD_FIXED;
                    self.buf[rdata..rdata + N].copy_from_slice(&addr);
                }
            }
        }
        // Fisher-Yates over the records kept, in place (all the same size).
        let records = &mut self.buf[start..];
        for i in (1..fit).rev() {
            let j = rng.random_range(0..=i);
            if i != j {
                let (head, tail) = records.split_at_mut(i * record);
                head[j * record..(j + 1) * record].swap_with_slice(&mut tail[..record]);
            }
        }
        self.answers += fit as u16;
        if fit < count {
            self.truncated = true;
        }
    }

    /// The finished message with `code`, and AA set if `authoritative`.
    pub(crate) fn finish(mut self, code: ResponseCode, authoritative: bool) -> Vec<u8> {
        let mut additionals = self.additionals;
        if let Some(edns) = self.edns {
            // Root owner, OPT, our payload size, extended RCODE, version 0, DO echoed.
            self.buf.push(0);
            self.buf
                .extend_from_slice(&u16::from(RecordType::OPT).to_be_bytes());
            self.buf.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
            let ttl = (u32::from(code.high()) << 24) | if edns.dnssec_ok { 0x8000 } else { 0 };
            self.buf.extend_from_slice(&ttl.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
            additionals += 1;
        }
        let head = self.head;
        let flags = 0x80 // QR
            | (head.opcode & 0x0f) << 3
            | if authoritative { 0x04 } else { 0 }
            | if self.truncated { 0x02 } else { 0 }
            | u8::from(head.recursion_desired);
        let flags2 = 0x80 // RA
            | if head.checking_disabled { 0x10 } else { 0 }
            | code.low();
        let header = &mut self.buf[..HEADER_LEN];
        header[0..2].copy_from_slice(&head.id.to_be_bytes());
        header[2] = flags;
        header[3] = flags2;
        header[4..6].copy_from_slice(&self.questions.to_be_bytes());
        header[6..8].copy_from_slice(&self.answers.to_be_bytes());
        header[8..10].copy_from_slice(&0u16.to_be_bytes());
        header[10..12].copy_from_slice(&additionals.to_be_bytes());
        self.buf
    }

    fn fixed(&mut self, rtype: RecordType, rdlen: u16) {
        let mut fixed = [0u8; RECORD_FIXED];
        fixed[0..2].copy_from_slice(&u16::from(rtype).to_be_bytes());
        fixed[2..4].copy_from_slice(&CLASS_IN.to_be_bytes());
        fixed[4..8].copy_from_slice(&TTL.to_be_bytes());
        fixed[8..10].copy_from_slice(&rdlen.to_be_bytes());
        self.buf.extend_from_slice(&fixed);
    }
}

/// A compression pointer to `offset` (which must be below 0x4000, see [`fits_pointer`]).
pub(crate) fn pointer(offset: u16) -> [u8; 2] {
    (0xC000 | offset).to_be_bytes()
}

/// Whether a name at `offset` can be pointed at (pointers hold 14 bits).
pub(crate) fn fits_pointer(offset: usize) -> Option<u16> {
    u16::try_from(offset).ok().filter(|o| *o < 0x4000)
}
