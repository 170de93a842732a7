//! The JSON on the wire, pinned: a change here breaks every client of the API.

use super::logs::{LogQuery, LogRecord};
use super::services::{ScaleRequest, ServiceInfo};
use super::Message;
use serde_json::json;
use shoal_api::{Service, ServiceMode, ServiceSpec, TaskTemplate};

fn service() -> Service {
    Service {
        id: "s1".into(),
        version: 2,
        spec: ServiceSpec {
            name: "web".into(),
            labels: Default::default(),
            mode: ServiceMode::Replicated { replicas: 3 },
            task: TaskTemplate::with_command(vec!["shoal".into(), "whoami".into()]),
            ports: Vec::new(),
            endpoint_mode: Default::default(),
            lb: Default::default(),
            lb_local_first: false,
            lb_mode: Default::default(),
            idle_timeout: Default::default(),
            update: Default::default(),
            rollback: Default::default(),
        },
        previous_spec: None,
        ports: Vec::new(),
        vip: Some([10, 96, 0, 2].into()),
        update_status: None,
        docker_spec: None,
        docker_previous_spec: None,
        created_at: 1000,
        updated_at: 2000,
    }
}

#[test]
fn a_scale_request_is_its_replica_count() {
    let text = serde_json::to_string(&ScaleRequest { replicas: 3 }).expect("json");
    assert_eq!(text, r#"{"replicas":3}"#);
    let read: ScaleRequest = shoal_api::strict::from_json(br#"{"replicas":5}"#).expect("read");
    assert_eq!(read.replicas, 5);
    let refused = shoal_api::strict::from_json::<ScaleRequest>(br#"{"replicas":5,"x":1}"#);
    assert!(refused.is_err(), "an unknown field is refused");
    let too_many = ScaleRequest { replicas: 10_001 }
        .check()
        .expect_err("too many");
    assert_eq!(
        too_many.to_string(),
        r#"invalid replicas "10001": at most 10000 per service"#
    );
}

#[test]
fn a_service_info_is_the_service_with_its_counts_beside_it() {
    let service = service();
    let info = ServiceInfo {
        service: service.clone(),
        running: 2,
        desired: 3,
    };
    let got = serde_json::to_value(&info).expect("json");
    let mut want = serde_json::to_value(&service).expect("json");
    want["running"] = json!(2);
    want["desired"] = json!(3);
    assert_eq!(got, want);
    assert_eq!(got["id"], "s1");
    assert_eq!(got["vip"], "10.96.0.2");
    assert_eq!(got["spec"]["name"], "web");
    assert_eq!(got["created_at"], 1000);
    assert!(got.get("service").is_none(), "flattened, not nested");
}

#[test]
fn a_log_record_leaves_out_a_time_it_lacks() {
    let mut record = LogRecord {
        task_id: "t1".into(),
        task: "web.1.t1".into(),
        node: "host1".into(),
        time: Some("1970-01-01T00:00:00.000000000Z".into()),
        line: "hello".into(),
    };
    assert_eq!(
        serde_json::to_string(&record).expect("json"),
        r#"{"task_id":"t1","task":"web.1.t1","node":"host1","time":"1970-01-01T00:00:00.000000000Z","line":"hello"}"#
    );
    record.time = None;
    assert_eq!(
        serde_json::to_string(&record).expect("json"),
        r#"{"task_id":"t1","task":"web.1.t1","node":"host1","line":"hello"}"#
    );
}

#[test]
fn errors_and_acknowledgements_are_a_message() {
    assert_eq!(
        serde_json::to_string(&Message::new("node unlocked")).expect("json"),
        r#"{"message":"node unlocked"}"#
    );
}

#[test]
fn a_log_query_names_a_bad_since() {
    let q = LogQuery {
        tail: Some(5),
        follow: true,
        since: Some("1.5".into()),
    };
    let r = q.request().expect("request");
    assert_eq!(
        (r.tail, r.since, r.follow),
        (Some(5), Some(1_500_000_000), true)
    );
    let bad = LogQuery {
        since: Some("yesterday".into()),
        ..LogQuery::default()
    };
    assert_eq!(
        bad.request().expect_err("refused").to_string(),
        r#"invalid since "yesterday": expected unix seconds such as 1764522000.5"#
    );
}

#[test]
fn networks_secrets_and_configs_have_pinned_bodies() {
    use super::objects::{BlobCreate, BlobInfo, BlobLabels, NetworkCreate};
    use shoal_api::{Config, Secret};
    let n: NetworkCreate = shoal_api::strict::from_json(
        br#"{"name":"st_default","labels":{"a":"b"},"attachable":true,"internal":false}"#,
    )
    .expect("read");
    let n = n.checked().expect("checked");
    assert_eq!(
        (n.name.as_str(), n.driver.as_str()),
        ("st_default", "overlay")
    );
    assert!(
        shoal_api::strict::from_json::<NetworkCreate>(br#"{"name":"a","driver":"x"}"#).is_err()
    );
    let bad = NetworkCreate {
        name: "a b".into(),
        ..NetworkCreate::default()
    };
    assert!(bad
        .checked()
        .expect_err("bad name")
        .to_string()
        .contains("network"));

    let req = BlobCreate::new("db", [("k".into(), "v".into())].into(), b"hunter2", None);
    assert_eq!(
        serde_json::to_string(&req).expect("json"),
        r#"{"name":"db","labels":{"k":"v"},"data":"aHVudGVyMg=="}"#
    );
    let secret: Secret = req.clone().checked().expect("secret");
    assert_eq!(secret.data, b"hunter2");
    let info = serde_json::to_value(BlobInfo::new(&Secret {
        id: "s1".into(),
        created_at: 1,
        updated_at: 2,
        ..secret.clone()
    }))
    .expect("json");
    assert_eq!(
        info,
        json!({"id":"s1","name":"db","labels":{"k":"v"},"size":7,"created_at":1,"updated_at":2})
    );
    let config: Config = BlobCreate {
        templating: Some("golang".into()),
        ..req.clone()
    }
    .checked()
    .expect("config");
    let info = serde_json::to_value(BlobInfo::new(&config)).expect("json");
    assert_eq!(info["data"], "aHVudGVyMg==");
    assert_eq!(info["templating"], "golang");
    let empty = BlobCreate::new("db", Default::default(), b"", None);
    assert_eq!(
        empty
            .checked::<shoal_api::SecretKind>()
            .expect_err("empty")
            .to_string(),
        "secret data is empty"
    );
    let not_b64 = BlobCreate {
        data: "!!".into(),
        ..req
    };
    assert!(not_b64.checked::<shoal_api::ConfigKind>().is_err());
    let labels: BlobLabels =
        shoal_api::strict::from_json(br#"{"labels":{"x":"y"}}"#).expect("labels");
    assert_eq!(labels.labels["x"], "y");
    assert!(shoal_api::strict::from_json::<BlobLabels>(br#"{"labels":{},"data":"eA=="}"#).is_err());
}
