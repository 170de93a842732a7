//! Handler tests without sockets: requests go straight into the router.

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use shoal_api::{Node, NodeRole};
use shoal_store::Op;
use tower::ServiceExt;

async fn setup(init: bool) -> (tempfile::TempDir, Router, Arc<Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).expect("store"));
    if init {
        store
            .update(|tx| {
                tx.push(Op::SetCluster(Box::new(
                    crate::ca::new_cluster(
                        1000,
                        std::time::Duration::from_secs(3600),
                        "127.0.0.1:2377",
                    )
                    .expect("cluster"),
                )));
                tx.put(Node::new(
                    "n1".into(),
                    "host1".into(),
                    NodeRole::Manager,
                    "127.0.0.1".into(),
                    0,
                ));
                Ok::<_, shoal_store::StoreError>(())
            })
            .await
            .expect("init");
    }
    let router = router(ControlState {
        store: store.clone(),
        logs: Default::default(),
        events: Default::default(),
    });
    (dir, router, store)
}

async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

const WEB: &str = r#"{"name":"web","mode":{"replicated":{"replicas":3}},"task":{"runtime":{"process":{"command":["shoal","whoami"]}}},"ports":[{"published":PORT,"target":80,"protocol":"tcp"}]}"#;

/// The web spec published on a free port (the create checks that it can bind it).
fn web_spec() -> (String, u16) {
    let port = shoal_testkit::free_port();
    (WEB.replace("PORT", &port.to_string()), port)
}

#[tokio::test]
async fn create_list_scale_remove() {
    let (_d, r, store) = setup(true).await;
    let (web, _) = web_spec();
    let (status, body) = call(&r, "POST", "/v1/services", &web).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(&r, "GET", "/v1/services", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["spec"]["name"], "web");
    assert_eq!(body[0]["desired"], 3);
    let (status, body) = call(&r, "POST", "/v1/services/web/scale", r#"{"replicas":5}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["desired"], 5);
    let (status, _) = call(&r, "DELETE", "/v1/services/web", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(store.state().services.is_empty());
}

#[tokio::test]
async fn bad_requests_change_nothing() {
    let (_d, r, store) = setup(true).await;
    let (web, port) = web_spec();
    assert_eq!(
        call(&r, "POST", "/v1/services", &web).await.0,
        StatusCode::CREATED
    );
    let version = store.state().version;
    let cases = [
        (
            "POST",
            "/v1/services",
            web.clone(),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            "POST",
            "/v1/services",
            web.replace("\"web\"", "\"api\""),
            StatusCode::CONFLICT,
            "already published by service web",
        ),
        (
            "POST",
            "/v1/services",
            web.replace("\"web\"", "\"\""),
            StatusCode::BAD_REQUEST,
            "name is missing",
        ),
        (
            "POST",
            "/v1/services",
            web.replace("\"web\"", "\"x\"")
                .replace("\"shoal\"", "\"no-such-program-xyz\""),
            StatusCode::BAD_REQUEST,
            "command not found",
        ),
        (
            "POST",
            "/v1/services",
            web.replace("\"replicas\":3", "\"replicas\":\"three\""),
            StatusCode::UNPROCESSABLE_ENTITY,
            "replicas",
        ),
        (
            "POST",
            "/v1/services",
            web.replace(&port.to_string(), "70000"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "published",
        ),
        (
            "POST",
            "/v1/services",
            "{not json".to_string(),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "POST",
            "/v1/services/nope/scale",
            r#"{"replicas":2}"#.to_string(),
            StatusCode::NOT_FOUND,
            "service nope not found",
        ),
        (
            "POST",
            "/v1/services/web/scale",
            r#"{"replicas":-1}"#.to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "replicas",
        ),
        (
            "DELETE",
            "/v1/services/nope",
            String::new(),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "GET",
            "/v1/nodes/zzz",
            String::new(),
            StatusCode::NOT_FOUND,
            "node zzz not found",
        ),
        (
            "GET",
            "/v1/tasks?desired_state=bogus",
            String::new(),
            StatusCode::BAD_REQUEST,
            "bogus",
        ),
    ];
    for (method, uri, body, want, text) in cases {
        let (status, json) = call(&r, method, uri, &body).await;
        assert_eq!(status, want, "{method} {uri} {body}: {json}");
        let msg = json["message"].as_str().unwrap_or("");
        assert!(msg.contains(text), "{method} {uri}: {msg:?} lacks {text:?}");
        assert!(!msg.contains('\n'), "one line: {msg:?}");
    }
    assert_eq!(
        store.state().version,
        version,
        "rejected requests wrote nothing"
    );
}

#[tokio::test]
async fn scaling_a_global_service_is_refused() {
    let (_d, r, _) = setup(true).await;
    let global =
        r#"{"name":"g","mode":"global","task":{"runtime":{"process":{"command":["true"]}}}}"#;
    assert_eq!(
        call(&r, "POST", "/v1/services", global).await.0,
        StatusCode::CREATED
    );
    let (status, json) = call(&r, "POST", "/v1/services/g/scale", r#"{"replicas":2}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["message"].as_str().unwrap_or("").contains("global"));
}

#[tokio::test]
async fn auto_assigns_published_ports_from_swarm_range() {
    let (_d, r, store) = setup(true).await;
    let spec = r#"{"name":"auto","task":{"runtime":{"process":{"command":["true"]}}},"ports":[{"target":80,"protocol":"tcp"}]}"#;
    assert_eq!(
        call(&r, "POST", "/v1/services", spec).await.0,
        StatusCode::CREATED
    );
    let state = store.state();
    let svc = state.find_service("auto").expect("service");
    let port = svc.ports[0].published.expect("assigned");
    assert!((30000..=32767).contains(&port));
}

#[tokio::test]
async fn answers_503_before_init() {
    let (_d, r, _) = setup(false).await;
    let (status, json) = call(&r, "GET", "/v1/services", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(json["message"]
        .as_str()
        .unwrap_or("")
        .contains("shoal init"));
}

#[tokio::test]
async fn huge_counts_and_raw_bytes_are_refused_by_the_api() {
    let (_d, r, store) = setup(true).await;
    let (web, _) = web_spec();
    assert_eq!(
        call(&r, "POST", "/v1/services", &web).await.0,
        StatusCode::CREATED
    );
    let version = store.state().version;
    let x = web.replace("\"web\"", "\"x\"");
    let cases = [
        (
            "/v1/services",
            x.replace("\"replicas\":3", "\"replicas\":1000000000000"),
            "invalid replicas \"1000000000000\": at most 10000 per service",
        ),
        (
            "/v1/services/web/scale",
            r#"{"replicas":1000000000000}"#.to_string(),
            "invalid replicas \"1000000000000\": at most 10000 per service",
        ),
        (
            "/v1/services",
            x.replace("\"whoami\"]}}", "\"whoami\"]}},\"env\":[\"A=\\u0000\"]"),
            "NUL byte",
        ),
        (
            "/v1/services",
            x.replace("\"mode\"", "\"labels\":{\"a\":\"\\u001b[2J\"},\"mode\""),
            "control characters are not allowed",
        ),
        (
            "/v1/services",
            x.replace(
                "\"whoami\"]}}",
                "\"whoami\"]}},\"health\":{\"probe\":\"tcp\",\"interval\":1}",
            ),
            "invalid health-interval \"1ms\": must be at least 100ms",
        ),
        (
            "/v1/services",
            x.replace(
                "\"ports\"",
                "\"update\":{\"progress_deadline\":0},\"ports\"",
            ),
            "invalid update-progress-deadline",
        ),
        (
            "/v1/nodes/n1/update",
            r#"{"labels_add":{"zone":"a\u001b]0;owned\u0007"}}"#.to_string(),
            "control characters are not allowed",
        ),
    ];
    for (uri, body, text) in cases {
        let (status, json) = call(&r, "POST", uri, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {body}: {json}");
        let msg = json["message"].as_str().unwrap_or("");
        assert!(msg.contains(text), "{uri}: {msg:?} lacks {text:?}");
        assert!(!msg.chars().any(char::is_control), "escaped: {msg:?}");
    }
    assert_eq!(
        store.state().version,
        version,
        "rejected requests wrote nothing"
    );
}

#[tokio::test]
async fn unknown_fields_in_a_request_are_refused_by_name_and_nothing_is_written() {
    let (_d, r, store) = setup(true).await;
    let (web, _) = web_spec();
    let typo = web.replace(r#""task":{"#, r#""task":{"comand":["x"],"#);
    let (status, body) = call(&r, "POST", "/v1/services", &typo).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["message"], "unknown field `task.comand` in request");
    assert!(store.state().services.is_empty());
    let (status, _) = call(&r, "POST", "/v1/services", &web).await;
    assert_eq!(status, StatusCode::CREATED);
    let update = format!(r#"{{"spec":{web},"forse":true}}"#);
    let (status, body) = call(&r, "POST", "/v1/services/web/update", &update).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.contains("unknown field `forse`"), "{msg}");
}

#[tokio::test]
async fn a_change_of_the_services_labels_alone_rolls_nothing_out() {
    let (_d, r, store) = setup(true).await;
    let (web, _) = web_spec();
    let (status, body) = call(&r, "POST", "/v1/services", &web).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let labelled = web.replacen(
        "{\"name\":\"web\"",
        "{\"name\":\"web\",\"labels\":{\"a\":\"b\"}",
        1,
    );
    let update = format!(r#"{{"spec":{labelled}}}"#);
    let (status, body) = call(&r, "POST", "/v1/services/web/update", &update).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let state = store.state();
    let svc = state.find_service("web").expect("web");
    assert_eq!(svc.spec.labels["a"], "b");
    assert_eq!(svc.version, 1, "no new task version");
    assert!(svc.update_status.is_none(), "{:?}", svc.update_status);
}
