//! One query read off the wire, without allocating: its header, its one question (the name
//! lowercased into a buffer on the stack) and its EDNS OPT record, if any.

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// Size of the DNS header.
pub(crate) const HEADER_LEN: usize = 12;
/// Longest name on the wire (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;

/// The header fields a reply copies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub(crate) id: u16,
    pub(crate) opcode: u8,
    pub(crate) recursion_desired: bool,
    pub(crate) checking_disabled: bool,
}

/// What EDNS(0) the query carries (RFC 6891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edns {
    /// The requester's UDP payload size.
    pub(crate) payload: u16,
    pub(crate) version: u8,
    /// DNSSEC OK, copied into the reply (RFC 3225).
    pub(crate) dnssec_ok: bool,
}

/// A query with exactly one question.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) head: Head,
    /// The question as sent (name, type, class), copied into the reply.
    pub(crate) question: &'a [u8],
    pub(crate) name: QName,
    pub(crate) qtype: RecordType,
    pub(crate) qclass: u16,
    pub(crate) edns: Option<Edns>,
}

/// A question's name: lowercase, dotted, without the trailing dot.
#[derive(Debug)]
pub(crate) struct QName {
    text: [u8; MAX_NAME],
    len: usize,
    labels: usize,
    /// No label holds a `.` or a byte outside ASCII: the dotted form stands for the name.
    plain: bool,
}

impl QName {
    /// The dotted lowercase form (`web.shoal.internal`); empty for the root.
    pub(crate) fn text(&self) -> &[u8] {
        &self.text[..self.len]
    }

    pub(crate) fn labels(&self) -> usize {
        self.labels
    }

    /// Whether [`QName::text`] can be compared with names we know.
    pub(crate) fn plain(&self) -> bool {
        self.plain
    }
}

/// Why a query gets no answer of its own.
#[derive(Debug)]
pub(crate) enum Rejected<'a> {
    /// Not worth a reply: shorter than a header, or a response.
    Drop,
    /// An error reply: to the question when it could be read.
    Error {
        head: Head,
        question: Option<&'a [u8]>,
        code: ResponseCode,
    },
}

impl<'a> Request<'a> {
    /// Reads `query`. Never panics, whatever the bytes.
    pub(crate) fn parse(query: &'a [u8]) -> Result<Request<'a>, Rejected<'a>> {
        let Ok(header) = Header::read(&mut BinDecoder::new(query)) else {
            return Err(Rejected::Drop);
        };
        if header.message_type == MessageType::Response {
            return Err(Rejected::Drop);
        }
        let head = Head {
            id: header.id,
            opcode: u8::from(header.op_code),
            recursion_desired: header.recursion_desired,
            checking_disabled: header.checking_disabled,
        };
        let error = |question, code| Rejected::Error {
            head,
            question,
            code,
        };
        if header.op_code != OpCode::Query {
            return Err(error(None, ResponseCode::NotImp));
        }
        if header.counts.queries != 1 {
            return Err(error(None, ResponseCode::FormErr));
        }
        let Some((name, name_end)) = read_name(query, HEADER_LEN) else {
            return Err(error(None, ResponseCode::FormErr));
        };
        let Some(fixed) = query.get(name_end..name_end + 4) else {
            return Err(error(None, ResponseCode::FormErr));
        };
        let question = &query[HEADER_LEN..name_end + 4];
        let qtype = RecordType::from(u16::from_be_bytes([fixed[0], fixed[1]]));
        let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);

        // Answer and authority records (a query has none, but may) are skipped; the
        // additional section is searched for the one OPT record.
        let mut at = name_end + 4;
        let before_additional =
            usize::from(header.counts.answers) + usize::from(header.counts.authorities);
        let mut edns = None;
        for n in 0..before_additional + usize::from(header.counts.additionals) {
            let Some(record) = read_record(query, at) else {
                return Err(error(Some(question), ResponseCode::FormErr));
            };
            at = record.end;
            if n >= before_additional && record.rtype == u16::from(RecordType::OPT) {
                if edns.is_some() || !record.root_owner {
                    return Err(error(Some(question), ResponseCode::FormErr));
                }
                edns = Some(Edns {
                    payload: record.class,
                    version: (record.ttl >> 16) as u8,
                    dnssec_ok: record.ttl & 0x8000 != 0,
                });
            }
        }
        Ok(Request {
            head,
            question,
            name,
            qtype,
            qclass,
            edns,
        })
    }
}

/// The question name at `at`, and where it ends. Compression is refused: the question is
/// the first name of a query, there is nothing before it to point at.
fn read_name(msg: &[u8], mut at: usize) -> Option<(QName, usize)> {
    let mut name = QName {
        text: [0; MAX_NAME],
        len: 0,
        labels: 0,
        plain: true,
    };
    let mut wire_len = 1;
    loop {
        let len = usize::from(*msg.get(at)?);
        at += 1;
        if len == 0 {
            return Some((name, at));
        }
        if len > 63 {
            return None;
        }
        wire_len += 1 + len;
        if wire_len > MAX_NAME {
            return None;
        }
        let label = msg.get(at..at + len)?;
        at += len;
        if name.labels > 0 {
            name.text[name.len] = b'.';
            name.len += 1;
        }
        for &b in label {
            name.plain &= b.is_ascii() && b != b'.';
            name.text[name.len] = b.to_ascii_lowercase();
            name.len += 1;
        }
        name.labels += 1;
    }
}

/// The fields of a resource record the parser needs.
struct RecordInfo {
    root_owner: bool,
    rtype: u16,
    class: u16,
    ttl: u32,
    end: usize,
}

fn read_record(msg: &[u8], at: usize) -> Option<RecordInfo> {
    let (root_owner, at) = skip_name(msg, at)?;
    let fixed = msg.get(at..at + 10)?;
    let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let end = at + 10 + rdlen;
    if end > msg.len() {
        return None;
    }
    Some(RecordInfo {
        root_owner,
        rtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        class: u16::from_be_bytes([fixed[2], fixed[3]]),
        ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        end,
    })
}

/// Skips a name that may end in a compression pointer; returns whether it is the root
/// name and where it ends. Pointers are not followed.
fn skip_name(msg: &[u8], mut at: usize) -> Option<(bool, usize)> {
    let start = at;
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some((at == start, at + 1)),
            1..=63 => at += 1 + usize::from(len),
            0xC0..=0xFF => {
                msg.get(at + 1)?;
                return Some((false, at + 2));
            }
            _ => return None,
        }
        if at - start >= MAX_NAME {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` (dotted) with the given counts and trailing bytes.
    fn query(flags: [u8; 2], counts: [u16; 4], body: &[u8]) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, flags[0], flags[1]];
        for c in counts {
            q.extend(c.to_be_bytes());
        }
        q.extend(body);
        q
    }

    const WEB_A: &[u8] = b"\x03Web\x05shoal\x08internal\x00\x00\x01\x00\x01";

    #[test]
    fn a_question_is_read_lowercased_with_its_edns() {
        let mut body = WEB_A.to_vec();
        // OPT: root owner, type 41, payload 1232, ext-rcode 0, version 0, DO, no options.
        body.extend(b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00");
        let q = query([0x01, 0x00], [1, 0, 0, 1], &body);
        let req = Request::parse(&q).expect("parses");
        assert_eq!(req.head.id, 0x1234);
        assert!(req.head.recursion_desired);
        assert_eq!(req.name.text(), b"web.shoal.internal");
        assert_eq!(req.name.labels(), 3);
        assert!(req.name.plain());
        assert_eq!(req.qtype, RecordType::A);
        assert_eq!(req.qclass, 1);
        assert_eq!(req.question, WEB_A);
        assert_eq!(
            req.edns,
            Some(Edns {
                payload: 1232,
                version: 0,
                dnssec_ok: true
            })
        );
    }

    #[test]
    fn malformed_queries_are_dropped_or_refused() {
        let two_opts = {
            let mut body = WEB_A.to_vec();
            body.extend(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00");
            body.extend(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00");
            body
        };
        let cases: Vec<(&str, Vec<u8>, Option<ResponseCode>)> = vec![
            ("empty", vec![], None),
            ("short header", vec![0x12, 0x34, 0, 0, 0, 1], None),
            ("a response", query([0x80, 0], [1, 0, 0, 0], WEB_A), None),
            (
                "status opcode",
                query([2 << 3, 0], [1, 0, 0, 0], WEB_A),
                Some(ResponseCode::NotImp),
            ),
            (
                "no question",
                query([0, 0], [0, 0, 0, 0], b""),
                Some(ResponseCode::FormErr),
            ),
            (
                "two questions",
                query([0, 0], [2, 0, 0, 0], &[WEB_A, WEB_A].concat()),
                Some(ResponseCode::FormErr),
            ),
            (
                "name cut short",
                query([0, 0], [1, 0, 0, 0], b"\x03we"),
                Some(ResponseCode::FormErr),
            ),
            (
                "no type",
                query([0, 0], [1, 0, 0, 0], b"\x03web\x00\x00"),
                Some(ResponseCode::FormErr),
            ),
            (
                "compressed question",
                query([0, 0], [1, 0, 0, 0], b"\xc0\x0c\x00\x01\x00\x01"),
                Some(ResponseCode::FormErr),
            ),
            (
                "additional record missing",
                query([0, 0], [1, 0, 0, 1], WEB_A),
                Some(ResponseCode::FormErr),
            ),
            (
                "two OPT records",
                query([0, 0], [1, 0, 0, 2], &two_opts),
                Some(ResponseCode::FormErr),
            ),
            (
                "name too long",
                query(
                    [0, 0],
                    [1, 0, 0, 0],
                    &[b"\x3f".as_slice(), &[b'a'; 63]].concat().repeat(5),
                ),
                Some(ResponseCode::FormErr),
            ),
        ];
        for (what, q, want) in cases {
            match (Request::parse(&q), want) {
                (Err(Rejected::Drop), None) => {}
                (Err(Rejected::Error { code, head, .. }), Some(want)) => {
                    assert_eq!(code, want, "{what}");
                    assert_eq!(head.id, 0x1234, "{what}");
                }
                (other, _) => panic!("{what}: {other:?}"),
            }
        }
    }
}
