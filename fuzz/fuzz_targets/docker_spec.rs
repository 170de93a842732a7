//! A Docker `ServiceSpec` body on arbitrary bytes: reading it never panics; what it reads
//! writes back to JSON that reads the same; a spec shoal accepts renders back, over itself
//! or from nothing, to a spec that converts to the same shoal spec. The `filters`
//! parameter on the same bytes never panics either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_wire::docker::{parse_service_spec, to_docker, to_shoal, Filters};

fuzz_target!(|data: &[u8]| {
    let _ = Filters::parse(&String::from_utf8_lossy(data));
    let Ok(spec) = parse_service_spec(data) else {
        return;
    };
    let json = serde_json::to_vec(&spec).expect("a spec writes");
    let again = parse_service_spec(&json).expect("a written spec reads");
    assert_eq!(again, spec);
    let Ok(converted) = to_shoal::service_spec(&spec, None) else {
        return;
    };
    for base in [Some(&spec), None] {
        let rendered = to_docker::service_spec(&converted.spec, base);
        let back = to_shoal::service_spec(&rendered, None).expect("a rendered spec converts");
        assert_eq!(back.spec, converted.spec);
    }
});
