//! The PROXY v2 header parser on arbitrary bytes: it never panics, never claims more bytes
//! than it was given, asks for more only when more could make a header, and what it reads
//! encodes back to a header that reads the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proxy_header::{parse, ParseError, FIXED_LEN, MAX_LEN};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok((header, len)) => {
            assert!((FIXED_LEN..=data.len()).contains(&len));
            // The same header followed by anything reads the same.
            assert_eq!(parse(&data[..len]), Ok((header, len)));
            let encoded = header.encode();
            let (again, encoded_len) = parse(&encoded).expect("an encoded header parses");
            assert_eq!(encoded_len, encoded.len());
            assert_eq!(again, header);
        }
        Err(ParseError::Incomplete { needed }) => {
            assert!(needed > data.len() && needed <= MAX_LEN);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
