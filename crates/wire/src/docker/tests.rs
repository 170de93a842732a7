//! The Docker types' JSON shapes and the conversions, against what the docker CLI 28 sends.

use super::filters::{Filters, NODE_FILTERS, SERVICE_FILTERS, TASK_FILTERS};
use super::to_docker::{self, LocalNodeState, SentSpecs, SwarmNetwork};
use super::to_shoal;
use super::*;
use serde_json::{json, Value};
use shoal_api as api;
use std::time::Duration;

/// What `docker service create --name web -p 8080:80 --replicas 2 --label a=b --env X=1
/// img:1 arg` posts (CLI 28).
fn cli_create_body() -> Value {
    json!({
        "Name": "web",
        "Labels": {"a": "b"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "img:1",
                "Args": ["arg"],
                "Env": ["X=1"],
                "StopGracePeriod": 10_000_000_000i64,
                "DNSConfig": {},
                "Isolation": "default"
            },
            "Resources": {"Limits": {}, "Reservations": {}},
            "RestartPolicy": {"Condition": "any", "Delay": 5_000_000_000i64, "MaxAttempts": 0},
            "Placement": {},
            "ForceUpdate": 0,
            "Runtime": "container"
        },
        "Mode": {"Replicated": {"Replicas": 2}},
        "UpdateConfig": {
            "Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000i64,
            "MaxFailureRatio": 0, "Order": "stop-first"
        },
        "RollbackConfig": {
            "Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000i64,
            "MaxFailureRatio": 0, "Order": "stop-first"
        },
        "EndpointSpec": {
            "Mode": "vip",
            "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}]
        }
    })
}

fn parse(v: &Value) -> ServiceSpec {
    parse_service_spec(v.to_string().as_bytes()).expect("a docker spec")
}

fn convert(v: &Value) -> Result<to_shoal::Converted, DockerError> {
    to_shoal::service_spec(&parse(v), None)
}

fn expected_web() -> api::ServiceSpec {
    let mut task = api::TaskTemplate::with_image("img:1");
    if let api::Runtime::Container(c) = &mut task.runtime {
        c.args = vec!["arg".into()];
    }
    task.env = vec!["X=1".into()];
    api::ServiceSpec {
        name: "web".into(),
        labels: [("a".to_string(), "b".to_string())].into(),
        mode: api::ServiceMode::Replicated { replicas: 2 },
        task,
        ports: vec![api::PortConfig::parse("8080:80").expect("port")],
        endpoint_mode: api::EndpointMode::Vip,
        lb: Default::default(),
        lb_local_first: false,
        lb_mode: Default::default(),
        idle_timeout: Duration::ZERO,
        update: api::UpdateConfig::default(),
        rollback: api::UpdateConfig::default(),
    }
}

#[test]
fn the_cli_create_body_converts_to_the_shoal_spec_without_warnings() {
    let c = convert(&cli_create_body()).expect("converts");
    assert_eq!(c.spec, expected_web());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

/// `docker service create` without `--replicas` sends `{"Replicated":{}}`; Swarm reads it
/// as one replica and shows that count, which the CLI's progress needs.
#[test]
fn a_replicated_mode_without_its_count_reads_back_with_it() {
    let mut body = cli_create_body();
    body["Mode"] = json!({"Replicated": {}});
    let sent = parse(&body);
    let c = to_shoal::service_spec(&sent, None).expect("converts");
    assert_eq!(c.spec.mode, api::ServiceMode::Replicated { replicas: 1 });
    let back = serde_json::to_value(to_docker::service_spec(&c.spec, Some(&sent))).expect("json");
    assert_eq!(back["Mode"], json!({"Replicated": {"Replicas": 1}}));
    assert_eq!(back["Labels"], body["Labels"], "the rest as sent");
}

/// docker-py's `ServiceMode` writes `replicated` and `global` in lower case; dockerd reads
/// them as `Replicated` and `Global`, and so does shoal, writing them back as Docker does.
#[test]
fn docker_py_mode_keys_in_lower_case_are_read() {
    let mut body = cli_create_body();
    body["Mode"] = json!({"replicated": {"Replicas": 5}});
    let c = convert(&body).expect("converts");
    assert_eq!(c.spec.mode, api::ServiceMode::Replicated { replicas: 5 });
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let back = serde_json::to_value(parse(&body)).expect("json");
    assert_eq!(back["Mode"], json!({"Replicated": {"Replicas": 5}}));
    body["Mode"] = json!({"global": {}});
    let c = convert(&body).expect("converts");
    assert_eq!(c.spec.mode, api::ServiceMode::Global);
}

#[test]
fn unsupported_fields_are_warned_about_never_refused() {
    let mut body = cli_create_body();
    body["TaskTemplate"]["ContainerSpec"]["Privileges"] = json!({"NoNewPrivileges": true});
    body["TaskTemplate"]["LogDriver"] = json!({"Name": "json-file"});
    body["TaskTemplate"]["Networks"] = json!([{"Target": "st_default", "DriverOpts": {"a": "b"}}]);
    body["EndpointSpec"]["Ports"][0]["Name"] = json!("http");
    let c = convert(&body).expect("converts with warnings");
    let mut expected = expected_web();
    expected.task.networks = vec![api::NetworkAttachment {
        network: "st_default".into(),
        aliases: vec![],
    }];
    assert_eq!(c.spec, expected);
    let all = c.warnings.join("\n");
    for field in [
        "TaskTemplate.ContainerSpec.Privileges: not supported by shoal",
        "TaskTemplate.LogDriver",
        "TaskTemplate.Networks[0].DriverOpts",
        "EndpointSpec.Ports[0].Name",
    ] {
        assert!(all.contains(field), "{field} in {all}");
    }
    assert!(c.warnings.iter().all(|w| !w.contains('\n')));
}

#[test]
fn malformed_fields_are_refused_naming_them() {
    type Mutate = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutate)> = vec![
        (
            "invalid Mode.Replicated.Replicas: -1 is negative",
            Box::new(|b| b["Mode"]["Replicated"]["Replicas"] = json!(-1)),
        ),
        (
            r#"invalid EndpointSpec.Ports[0].Protocol: "sctp""#,
            Box::new(|b| b["EndpointSpec"]["Ports"][0]["Protocol"] = json!("sctp")),
        ),
        (
            r#"invalid EndpointSpec.Ports[0].PublishMode: "everywhere""#,
            Box::new(|b| b["EndpointSpec"]["Ports"][0]["PublishMode"] = json!("everywhere")),
        ),
        (
            "invalid EndpointSpec.Ports[0].TargetPort: 70000 is not a port",
            Box::new(|b| b["EndpointSpec"]["Ports"][0]["TargetPort"] = json!(70000)),
        ),
        (
            "invalid UpdateConfig.Delay: -5ns is negative",
            Box::new(|b| b["UpdateConfig"]["Delay"] = json!(-5)),
        ),
        (
            r#"invalid RollbackConfig.Order: "sideways""#,
            Box::new(|b| b["RollbackConfig"]["Order"] = json!("sideways")),
        ),
        (
            r#"invalid TaskTemplate.RestartPolicy.Condition: "sometimes""#,
            Box::new(|b| b["TaskTemplate"]["RestartPolicy"]["Condition"] = json!("sometimes")),
        ),
        (
            "invalid TaskTemplate.ContainerSpec.Healthcheck.Test",
            Box::new(|b| {
                b["TaskTemplate"]["ContainerSpec"]["Healthcheck"] = json!({"Test": ["WHAT"]})
            }),
        ),
        (
            "invalid Mode.ReplicatedJob",
            Box::new(|b| b["Mode"] = json!({"ReplicatedJob": {"TotalCompletions": 3}})),
        ),
        (
            "invalid TaskTemplate.ContainerSpec: missing",
            Box::new(|b| {
                b["TaskTemplate"]
                    .as_object_mut()
                    .expect("object")
                    .remove("ContainerSpec");
            }),
        ),
        // shoal's own validation, in its own words.
        (
            r#"invalid env "NOEQUALS": expected KEY=VALUE"#,
            Box::new(|b| b["TaskTemplate"]["ContainerSpec"]["Env"] = json!(["NOEQUALS"])),
        ),
    ];
    for (want, mutate) in cases {
        let mut body = cli_create_body();
        mutate(&mut body);
        let err = convert(&body).expect_err(want).to_string();
        assert!(err.contains(want), "expected {want:?} in {err:?}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn a_body_of_the_wrong_shape_is_refused_naming_where() {
    let err = parse_service_spec(br#"{"Mode":{"Replicated":{"Replicas":"two"}}}"#)
        .expect_err("a string count")
        .to_string();
    assert!(err.contains("Mode.Replicated.Replicas"), "{err}");
    let err = parse_service_spec(b"{\"Name\":")
        .expect_err("cut short")
        .to_string();
    assert!(err.starts_with("invalid request body"), "{err}");
}

/// A spec with fields shoal does not model at every level.
fn full_spec() -> Value {
    json!({
        "Name": "web",
        "Labels": {"com.docker.stack.namespace": "st", "traefik.enable": "true"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "nginx:1.27@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "Labels": {"com.docker.stack.namespace": "st"},
                "Command": ["/docker-entrypoint.sh"],
                "Args": ["nginx", "-g", "daemon off;"],
                "Hostname": "web-{{.Task.Slot}}",
                "Env": ["A=1", "B=2"],
                "Dir": "/srv",
                "User": "101",
                "Groups": ["wheel"],
                "Privileges": {"CredentialSpec": null, "SELinuxContext": null, "NoNewPrivileges": true},
                "StopSignal": "SIGQUIT",
                "TTY": true,
                "ReadOnly": true,
                "Mounts": [
                    {"Type": "bind", "Source": "/srv/data", "Target": "/data", "ReadOnly": true,
                     "Consistency": "cached", "BindOptions": {"Propagation": "rslave", "NonRecursive": true}},
                    {"Type": "volume", "Source": "cache", "Target": "/cache",
                     "VolumeOptions": {"NoCopy": true, "Labels": {"k": "v"}, "Subpath": "x",
                                       "DriverConfig": {"Name": "local", "Options": {"o": "p"}}}},
                    {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1023}}
                ],
                "StopGracePeriod": 20_000_000_000i64,
                "Healthcheck": {"Test": ["CMD", "curl", "-f", "http://localhost/"], "Interval": 2_000_000_000i64,
                                "Timeout": 1_000_000_000i64, "StartPeriod": 3_000_000_000i64,
                                "StartInterval": 500_000_000i64, "Retries": 4},
                "Hosts": ["10.0.0.1 db"],
                "DNSConfig": {"Nameservers": ["1.1.1.1"]},
                "Secrets": [{"File": {"Name": "s", "UID": "0", "GID": "0", "Mode": 292}, "SecretID": "abc", "SecretName": "s"}],
                "Configs": [{"File": {"Name": "c"}, "ConfigID": "def", "ConfigName": "c"}],
                "Isolation": "default",
                "Sysctls": {"net.core.somaxconn": "1024"},
                "CapabilityAdd": ["NET_ADMIN"],
                "CapabilityDrop": ["MKNOD"],
                "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
                "OomScoreAdj": 10
            },
            "Resources": {
                "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 268_435_456i64, "Pids": 100},
                "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 67_108_864i64,
                                 "GenericResources": [{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}}]}
            },
            "RestartPolicy": {"Condition": "on-failure", "Delay": 1_000_000_000i64, "MaxAttempts": 3, "Window": 60_000_000_000i64},
            "Placement": {
                "Constraints": ["node.role==worker", "node.labels.zone==a"],
                "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
                "MaxReplicas": 2,
                "Platforms": [{"Architecture": "amd64", "OS": "linux"}]
            },
            "Networks": [{"Target": "st_default", "Aliases": ["web"], "DriverOpts": {"x": "y"}}],
            "LogDriver": {"Name": "json-file", "Options": {"max-size": "10m"}},
            "ForceUpdate": 3,
            "Runtime": "container"
        },
        "Mode": {"Replicated": {"Replicas": 3}},
        "UpdateConfig": {"Parallelism": 2, "Delay": 10_000_000_000i64, "FailureAction": "rollback",
                         "Monitor": 15_000_000_000i64, "MaxFailureRatio": 0.25, "Order": "start-first"},
        "RollbackConfig": {"Parallelism": 0, "FailureAction": "continue", "Monitor": 1_000_000_000i64,
                           "MaxFailureRatio": 0.5, "Order": "stop-first"},
        "EndpointSpec": {"Mode": "vip", "Ports": [
            {"Name": "http", "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"},
            {"Protocol": "udp", "TargetPort": 53, "PublishMode": "ingress"},
            {"Protocol": "tcp", "TargetPort": 9100, "PublishedPort": 9100, "PublishMode": "host"}
        ]},
        "Networks": []
    })
}

#[test]
fn a_full_spec_round_trips_unchanged_unknown_fields_included() {
    let sent = full_spec();
    let spec = parse(&sent);
    assert_eq!(serde_json::to_value(&spec).expect("json"), sent);
    // Rendered back from shoal's view over the spec it came from: the same spec.
    let c = to_shoal::service_spec(&spec, None).expect("converts");
    let back = to_docker::service_spec(&c.spec, Some(&spec));
    assert_eq!(serde_json::to_value(&back).expect("json"), sent);
}

#[test]
fn the_full_spec_maps_field_by_field() {
    let c = to_shoal::service_spec(&parse(&full_spec()), None).expect("converts");
    let s = c.spec;
    let api::Runtime::Container(k) = &s.task.runtime else {
        panic!("a container")
    };
    assert_eq!(
        k.entrypoint.as_deref(),
        Some(&["/docker-entrypoint.sh".to_string()][..])
    );
    assert_eq!(k.args, ["nginx", "-g", "daemon off;"]);
    assert_eq!(
        (k.user.as_deref(), k.tty, k.read_only),
        (Some("101"), true, true)
    );
    assert_eq!(k.mounts.len(), 3);
    assert_eq!(k.mounts[0].bind_propagation.as_deref(), Some("rslave"));
    assert_eq!(k.mounts[1].volume_driver.as_deref(), Some("local"));
    assert_eq!(k.mounts[2].tmpfs_size, 1 << 20);
    assert_eq!(k.ulimits[0].hard, 2048);
    let h = s.task.health.as_ref().expect("a check");
    assert_eq!(
        h.probe,
        api::HealthProbe::Cmd {
            command: "curl -f http://localhost/".into()
        }
    );
    assert_eq!((h.interval, h.retries), (Duration::from_secs(2), 4));
    assert_eq!(s.task.stop_signal, "SIGQUIT");
    assert_eq!(s.task.stop_grace_period, Duration::from_secs(20));
    assert_eq!(s.task.restart.condition, api::RestartCondition::OnFailure);
    assert_eq!(s.task.restart.window, Duration::from_secs(60));
    assert_eq!(s.task.placement_prefs, ["spread=node.labels.zone"]);
    assert_eq!(s.task.max_replicas_per_node, 2);
    assert_eq!(s.task.resources.limits.nano_cpus, 500_000_000);
    assert_eq!(s.task.resources.reservations.memory_bytes, 64 << 20);
    assert_eq!(s.update.parallelism, 2);
    assert_eq!(s.update.delay, Duration::from_secs(10));
    assert_eq!(s.update.failure_action, api::FailureAction::Rollback);
    assert_eq!(s.update.order, api::UpdateOrder::StartFirst);
    assert_eq!(s.rollback.parallelism, 0);
    assert_eq!(s.ports.len(), 3);
    assert_eq!(s.ports[1].published, None, "auto-assigned");
    assert_eq!(s.ports[2].mode, api::PublishMode::Host);
    let all = c.warnings.join("\n");
    for field in [
        "Groups",
        "Privileges",
        "Hosts",
        "DNSConfig",
        "Sysctls",
        "OomScoreAdj",
        "StartInterval",
        "Consistency",
        "NonRecursive",
        "Subpath",
        "GenericResources",
        "Platforms",
    ] {
        assert!(all.contains(field), "{field} in {all}");
    }
    assert!(
        !all.contains("Isolation") && !all.contains("Runtime"),
        "{all}"
    );
}

#[test]
fn a_change_made_in_shoal_is_rendered_over_the_sent_spec() {
    let sent = parse(&full_spec());
    let mut s = to_shoal::service_spec(&sent, None).expect("converts").spec;
    s.mode = api::ServiceMode::Replicated { replicas: 7 };
    s.task.env.push("C=3".into());
    let back = serde_json::to_value(to_docker::service_spec(&s, Some(&sent))).expect("json");
    assert_eq!(back["Mode"]["Replicated"]["Replicas"], 7);
    let c = &back["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["Env"], json!(["A=1", "B=2", "C=3"]));
    // Unknown fields around the changed sections stay.
    assert_eq!(c["Sysctls"], json!({"net.core.somaxconn": "1024"}));
    assert_eq!(c["Secrets"][0]["SecretName"], "s");
    assert_eq!(back["TaskTemplate"]["LogDriver"]["Name"], "json-file");
    assert_eq!(back["Labels"]["traefik.enable"], "true");
    // And shoal reads its own rendering as what it rendered.
    let again = to_shoal::service_spec(&parse(&back), None)
        .expect("converts")
        .spec;
    assert_eq!(again.mode, s.mode);
    assert_eq!(again.task.env, s.task.env);
}

#[test]
fn a_process_service_runs_its_image_as_the_program() {
    let body = json!({
        "Name": "who",
        "Labels": {"com.shoal.runtime": "process"},
        "TaskTemplate": {"ContainerSpec": {"Image": "shoal", "Command": ["whoami"], "Args": ["--port", "80"]}},
        "Mode": {"Replicated": {"Replicas": 1}}
    });
    let c = convert(&body).expect("converts");
    assert_eq!(
        c.spec.task.runtime,
        api::Runtime::Process(api::ProcessSpec {
            command: vec!["shoal".into()],
            args: vec!["whoami".into(), "--port".into(), "80".into()],
        })
    );
    assert!(c.spec.labels.is_empty(), "the runtime label is no label");
    // Rendered back, it keeps the label, so a client posting it back gets a process again.
    let d = to_docker::service_spec(&c.spec, None);
    assert_eq!(
        d.labels.get(RUNTIME_LABEL).map(String::as_str),
        Some("process")
    );
    assert_eq!(
        d.task_template
            .container_spec
            .as_ref()
            .map(|c| c.image.as_str()),
        Some("shoal")
    );
    let again = to_shoal::service_spec(&d, None).expect("converts").spec;
    assert_eq!(again.task.runtime, c.spec.task.runtime);

    let mut bad = body.clone();
    bad["Labels"]["com.shoal.runtime"] = json!("wasm");
    let err = convert(&bad).expect_err("unknown runtime").to_string();
    assert!(err.contains("Labels.com.shoal.runtime"), "{err}");
}

#[test]
fn health_checks_map_both_ways() {
    for (test, probe) in [
        (
            json!(["CMD-SHELL", "curl -f localhost"]),
            Some(api::HealthProbe::Cmd {
                command: "curl -f localhost".into(),
            }),
        ),
        (
            json!(["CMD", "echo", "it's"]),
            Some(api::HealthProbe::Cmd {
                command: r"echo 'it'\''s'".into(),
            }),
        ),
        (
            json!(["SHOAL-HTTP", "/health"]),
            Some(api::HealthProbe::Http {
                path: "/health".into(),
            }),
        ),
        (json!(["SHOAL-TCP"]), Some(api::HealthProbe::Tcp)),
        (json!(["NONE"]), None),
    ] {
        let mut body = cli_create_body();
        body["TaskTemplate"]["ContainerSpec"]["Healthcheck"] = json!({"Test": test});
        let s = convert(&body).expect("converts").spec;
        assert_eq!(
            s.task.health.as_ref().map(|h| h.probe.clone()),
            probe,
            "{test}"
        );
        let api::Runtime::Container(c) = &s.task.runtime else {
            panic!("container")
        };
        assert_eq!(c.no_healthcheck, probe.is_none(), "{test}");
        let back = to_docker::service_spec(&s, None);
        let again = to_shoal::service_spec(&back, None).expect("converts").spec;
        assert_eq!(again.task.health, s.task.health, "{test}");
    }
}

#[test]
fn settings_docker_cannot_carry_are_kept_from_the_current_spec() {
    let mut current = expected_web();
    current.lb = api::Policy::Maglev;
    current.task.lb_weight = Some(5);
    current.ports[0].proxy_protocol = Some(api::ProxyProtocol::V2);
    let d = to_docker::service_spec(&current, None);
    let s = to_shoal::service_spec(&d, Some(&current))
        .expect("converts")
        .spec;
    assert_eq!(s, current);
}

fn net() -> SwarmNetwork<'static> {
    SwarmNetwork {
        id: "shoalnet0000000000000000",
        pool: api::VipPool::default(),
    }
}

fn stored_service() -> api::Service {
    let spec = expected_web();
    api::Service {
        id: "svc1".into(),
        version: 4,
        ports: spec.ports.clone(),
        spec,
        previous_spec: None,
        vip: Some(std::net::Ipv4Addr::new(10, 96, 0, 2)),
        update_status: Some(api::UpdateStatus {
            state: api::UpdateState::Completed,
            version: 4,
            started_at: 1_000,
            completed_at: Some(2_000),
            message: "update completed".into(),
        }),
        created_at: 1_764_561_495_123,
        updated_at: 1_764_561_495_123,
        docker_spec: None,
        docker_previous_spec: None,
    }
}

#[test]
fn a_service_has_docker_shape() {
    let status = ServiceStatus {
        running_tasks: 1,
        desired_tasks: 2,
        completed_tasks: 0,
    };
    let v = serde_json::to_value(to_docker::service(
        &stored_service(),
        SentSpecs::default(),
        Some(status),
        &net(),
    ))
    .expect("json");
    assert_eq!(v["ID"], "svc1");
    assert_eq!(v["Version"]["Index"], 4);
    assert_eq!(v["CreatedAt"], "2025-12-01T03:58:15.123000000Z");
    let vip = &v["Endpoint"]["VirtualIPs"][0];
    assert_eq!(vip["NetworkID"], "shoalnet0000000000000000");
    assert_eq!(vip["Addr"], "10.96.0.2/16");
    assert!(vip["Addr"].as_str().expect("a string").contains('/'));
    assert_eq!(v["Endpoint"]["Ports"][0]["PublishedPort"], 8080);
    assert_eq!(v["Endpoint"]["Spec"]["Mode"], "vip");
    assert_eq!(v["Spec"]["EndpointSpec"]["Mode"], "vip");
    assert_eq!(v["Spec"]["Labels"], json!({"a": "b"}));
    assert_eq!(v["Spec"]["Mode"]["Replicated"]["Replicas"], 2);
    assert_eq!(v["Spec"]["UpdateConfig"]["Monitor"], 5_000_000_000i64);
    assert_eq!(
        v["Spec"]["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"],
        10_000_000_000i64
    );
    assert_eq!(
        v["Spec"]["TaskTemplate"]["RestartPolicy"]["Delay"],
        5_000_000_000i64
    );
    assert_eq!(v["UpdateStatus"]["State"], "completed");
    assert_eq!(
        v["UpdateStatus"]["CompletedAt"],
        "1970-01-01T00:00:02.000000000Z"
    );
    assert_eq!(v["ServiceStatus"]["DesiredTasks"], 2);
    assert!(v.get("PreviousSpec").is_none());
    // An empty label set is still written.
    let mut s = stored_service();
    s.spec.labels.clear();
    let v = serde_json::to_value(to_docker::service(&s, SentSpecs::default(), None, &net()))
        .expect("json");
    assert_eq!(v["Spec"]["Labels"], json!({}));
    assert!(v.get("ServiceStatus").is_none());
}

fn stored_task(process: bool) -> api::Task {
    let spec = if process {
        let mut t = api::TaskTemplate::with_command(vec!["shoal".into()]);
        if let Some(p) = t.process_mut() {
            p.args = vec!["whoami".into()];
        }
        t
    } else {
        expected_web().task
    };
    let mut status = api::TaskStatus::new(api::TaskState::Running, 1_000, "started");
    status.runtime = Some(api::RuntimeStatus::Process { pid: 42, start: 7 });
    api::Task {
        id: "task1".into(),
        service_id: "svc1".into(),
        service_name: "web".into(),
        slot: 1,
        node_id: Some("node1".into()),
        spec_version: 4,
        spec,
        ports: vec![api::PortConfig::parse("published=9100,target=9100,mode=host").expect("port")],
        desired_state: api::TaskState::Running,
        status,
        endpoint: None,
        created_at: 500,
        attempt: 0,
        quick_exits: 0,
        pending_reason: None,
    }
}

#[test]
fn a_task_has_docker_shape() {
    let v = serde_json::to_value(to_docker::task(
        &stored_task(true),
        9,
        Some("192.168.1.10"),
        None,
        &net(),
    ))
    .expect("json");
    assert_eq!(v["ID"], "task1");
    assert_eq!(v["ServiceID"], "svc1");
    assert_eq!(v["NodeID"], "node1");
    assert_eq!(v["Slot"], 1);
    assert_eq!(v["Status"]["State"], "running");
    assert_eq!(v["Status"]["ContainerStatus"]["PID"], 42);
    assert_eq!(v["Status"]["PortStatus"]["Ports"][0]["PublishMode"], "host");
    assert_eq!(v["DesiredState"], "running");
    let c = &v["Spec"]["ContainerSpec"];
    assert_eq!(
        c["Image"], "shoal",
        "a process task still has its ContainerSpec"
    );
    assert_eq!(c["Args"], json!(["whoami"]));
    let a = &v["NetworksAttachments"][0];
    assert_eq!(a["Network"]["ID"], "shoalnet0000000000000000");
    assert_eq!(a["Network"]["Spec"]["Name"], NETWORK_NAME);
    assert_eq!(a["Addresses"], json!(["192.168.1.10/32"]));

    // A container task over the spec it was sent with keeps its unknown fields.
    let sent = parse(&cli_create_body());
    let v = serde_json::to_value(to_docker::task(
        &stored_task(false),
        9,
        None,
        Some(&sent.task_template),
        &net(),
    ))
    .expect("json");
    assert_eq!(v["Spec"]["ContainerSpec"]["Image"], "img:1");
    assert_eq!(v["Spec"]["ContainerSpec"]["DNSConfig"], json!({}));
    assert!(v.get("NetworksAttachments").is_none(), "no address known");
}

/// A container task is on the network at its container's own address (what Traefik's
/// task mode connects to), a process task at its node's; a malformed address is never
/// written (a client refuses the whole list over one).
#[test]
fn a_container_task_reports_its_own_address() {
    let with = |addr: Option<&str>| {
        let mut t = stored_task(false);
        t.status.runtime = Some(api::RuntimeStatus::Container {
            id: "c1".into(),
            addr: addr.map(str::to_owned),
        });
        let v = serde_json::to_value(to_docker::task(&t, 9, Some("192.168.1.10"), None, &net()))
            .expect("json");
        v["NetworksAttachments"][0]["Addresses"].clone()
    };
    assert_eq!(with(Some("172.17.0.3/16")), json!(["172.17.0.3/16"]));
    assert_eq!(with(Some("fd00::3/64")), json!(["fd00::3/64"]));
    assert_eq!(with(None), json!(["192.168.1.10/32"]), "not known yet");
    for bad in ["172.17.0.3", "172.17.0.3/33", "nonsense/16", "172.17.0.3/x"] {
        assert_eq!(with(Some(bad)), json!(["192.168.1.10/32"]), "{bad}");
    }
    // What a node reports decodes without the address, from a node that does not send it.
    let old: api::RuntimeStatus =
        serde_json::from_str(r#"{"container":{"id":"c1"}}"#).expect("old report");
    assert_eq!(
        old,
        api::RuntimeStatus::Container {
            id: "c1".into(),
            addr: None
        }
    );
}

#[test]
fn a_node_and_the_swarm_have_docker_shape() {
    let mut n = api::Node::new(
        "node1".into(),
        "host1".into(),
        api::NodeRole::Manager,
        "192.168.1.10".into(),
        0,
    );
    n.control_addr = Some("192.168.1.10:2377".into());
    n.manager_status = Some("Leader".into());
    n.description.nano_cpus = 2_000_000_000;
    let v = serde_json::to_value(to_docker::node(&n, 3)).expect("json");
    assert_eq!(v["Spec"]["Role"], "manager");
    assert_eq!(v["Spec"]["Availability"], "active");
    assert_eq!(v["Spec"]["Labels"], json!({}));
    assert_eq!(v["Description"]["Hostname"], "host1");
    assert_eq!(v["Description"]["Platform"]["OS"], "linux");
    assert_eq!(v["Description"]["Resources"]["NanoCPUs"], 2_000_000_000i64);
    assert_eq!(v["Status"]["State"], "ready");
    assert_eq!(v["Status"]["Addr"], "192.168.1.10");
    assert_eq!(v["ManagerStatus"]["Leader"], true);
    assert_eq!(v["ManagerStatus"]["Reachability"], "reachable");
    assert_eq!(v["ManagerStatus"]["Addr"], "192.168.1.10:2377");

    let cluster = api::Cluster {
        id: "cluster1".into(),
        ca_cert_pem: String::new(),
        ca_key_pem: String::new(),
        worker_secret: "w".into(),
        manager_secret: "m".into(),
        heartbeat_period_ms: 1000,
        cert_lifetime_secs: 3600,
        managers: vec![],
        created_at: 0,
        clients: vec![],
        autolock_key: None,
        vip_pool: None,
    };
    let tokens = JoinTokens {
        worker: "SWMTKN-1-a-w".into(),
        manager: "SWMTKN-1-a-m".into(),
    };
    let v = serde_json::to_value(to_docker::swarm(&cluster, 5, 0, tokens)).expect("json");
    assert_eq!(v["ID"], "cluster1");
    assert_eq!(v["JoinTokens"]["Worker"], "SWMTKN-1-a-w");
    assert_eq!(v["Spec"]["Dispatcher"]["HeartbeatPeriod"], 1_000_000_000i64);
    assert_eq!(v["DefaultAddrPool"], json!(["10.96.0.0/16"]));

    let info = to_docker::swarm_info(
        Some(&n),
        LocalNodeState::Active,
        std::slice::from_ref(&n),
        Some(to_docker::cluster_info(&cluster, 5, 0)),
    );
    let v = serde_json::to_value(&info).expect("json");
    assert_eq!(v["NodeID"], "node1");
    assert_eq!(v["LocalNodeState"], "active");
    assert_eq!(v["ControlAvailable"], true);
    assert_eq!(v["RemoteManagers"][0]["Addr"], "192.168.1.10:2377");
    assert_eq!(
        (v["Nodes"].clone(), v["Managers"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(v["Cluster"]["ID"], "cluster1");
    let none = to_docker::swarm_info(None, LocalNodeState::Inactive, &[], None);
    let v = serde_json::to_value(&none).expect("json");
    assert_eq!(v["LocalNodeState"], "inactive");
    assert_eq!(v["ControlAvailable"], false);
    assert_eq!(v["RemoteManagers"], json!([]));
}

#[test]
fn version_and_responses_have_docker_shape() {
    let v = serde_json::to_value(Version::shoal("0.1.0", "linux", "amd64", "6.1")).expect("json");
    assert_eq!(v["ApiVersion"], API_VERSION);
    assert_eq!(v["MinAPIVersion"], MIN_API_VERSION);
    assert_eq!(v["Os"], "linux");
    let v = serde_json::to_value(ServiceCreateResponse {
        id: "x".into(),
        warnings: vec![],
    })
    .expect("json");
    assert_eq!(v, json!({"ID": "x", "Warnings": []}));
    let v = serde_json::to_value(ErrorResponse {
        message: "no such service: web".into(),
    })
    .expect("json");
    assert_eq!(v, json!({"message": "no such service: web"}));
}

#[test]
fn times_are_rfc3339_with_nanoseconds() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000000000Z");
    assert_eq!(rfc3339(1_709_251_199_001), "2024-02-29T23:59:59.001000000Z");
}

#[test]
fn filters_parse_in_both_forms() {
    let new = Filters::parse(r#"{"name":{"web":true,"db":true},"label":{"a=b":true}}"#)
        .expect("new form");
    let old = Filters::parse(r#"{"name":["web","db"],"label":["a=b"]}"#).expect("old form");
    assert_eq!(new, old);
    assert_eq!(new.values("name").collect::<Vec<_>>(), ["db", "web"]);
    assert!(Filters::parse("").expect("empty").is_empty());
    for (bad, says) in [
        ("{", "not JSON"),
        ("[1]", "expected a JSON object"),
        (r#"{"name":"web"}"#, r#"filter "name""#),
        (r#"{"name":[1]}"#, "is not a string"),
        (r#"{"name":{"web":"yes"}}"#, "must map to true"),
    ] {
        let err = Filters::parse(bad).expect_err(bad).to_string();
        assert!(
            err.starts_with("invalid filters") && err.contains(says),
            "{bad}: {err}"
        );
        assert!(!err.contains('\n'));
    }
}

#[test]
fn filters_match_prefixes_labels_and_known_keys() {
    let f = Filters::parse(r#"{"id":{"abc":true},"name":{"we":true}}"#).expect("filters");
    assert!(f.matches_prefix("id", &["abcdef"]));
    assert!(!f.matches_prefix("id", &["xabc"]));
    assert!(f.matches_prefix("name", &["web"]));
    assert!(f.matches_prefix("mode", &["anything"]), "unfiltered key");
    let labels = [
        ("a".to_string(), "b".to_string()),
        ("c".to_string(), String::new()),
    ]
    .into();
    for (filter, matches) in [
        (r#"{"label":{"a":true}}"#, true),
        (r#"{"label":{"a=b":true}}"#, true),
        (r#"{"label":{"a=x":true}}"#, false),
        (r#"{"label":{"a=b":true,"c":true}}"#, true),
        (r#"{"label":{"a=b":true,"z":true}}"#, false),
        ("{}", true),
    ] {
        let f = Filters::parse(filter).expect("filters");
        assert_eq!(f.matches_labels("label", &labels), matches, "{filter}");
    }
    let f = Filters::parse(r#"{"_up-to-date":{"true":true},"service":{"svc1":true}}"#)
        .expect("filters");
    assert!(f.check(TASK_FILTERS).is_ok());
    assert!(f.is_true("_up-to-date"));
    assert!(f.matches_exact("service", "svc1") && !f.matches_exact("service", "svc2"));
    assert_eq!(
        f.check(SERVICE_FILTERS).expect_err("unknown").to_string(),
        "invalid filter '_up-to-date'"
    );
    assert!(Filters::from_pairs([("node.label", "zone=a")])
        .check(NODE_FILTERS)
        .is_ok());
    let f = Filters::parse(r#"{"mode":{"jobs":true}}"#).expect("filters");
    assert_eq!(
        f.check_values("mode", &["replicated", "global"])
            .expect_err("bad")
            .to_string(),
        "invalid filter 'mode=jobs'"
    );
}

/// Every path to a key or list element of `v`, as JSON pointers.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

fn remove(v: &mut Value, pointer: &str) {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
    match v.pointer_mut(parent).expect("the parent") {
        Value::Object(o) => {
            o.remove(last);
        }
        Value::Array(a) => {
            a.remove(last.parse::<usize>().expect("an index"));
        }
        _ => unreachable!(),
    }
}

#[test]
fn with_any_one_field_left_out_a_spec_still_round_trips() {
    let full = full_spec();
    let mut all = Vec::new();
    pointers(&full, String::new(), &mut all);
    for p in all {
        let mut sent = full.clone();
        remove(&mut sent, &p);
        let spec = parse(&sent);
        // Labels, TaskTemplate and Mode are always written, as Docker writes them.
        for (key, empty) in [
            ("Labels", json!({})),
            ("TaskTemplate", json!({})),
            ("Mode", json!({})),
        ] {
            if sent.get(key).is_none() {
                sent[key] = empty;
            }
        }
        assert_eq!(serde_json::to_value(&spec).expect("json"), sent, "{p}");
        let Ok(c) = to_shoal::service_spec(&spec, None) else {
            continue;
        };
        let over = to_docker::service_spec(&c.spec, Some(&spec));
        // A spec is always written with its EndpointSpec (Traefik reads its Mode), and a
        // replicated mode with its count (the docker CLI's progress reads it), as Docker
        // writes them.
        let mut want = sent.clone();
        if want.get("EndpointSpec").is_none() {
            want["EndpointSpec"] = json!({"Mode": "vip"});
        }
        if let api::ServiceMode::Replicated { replicas } = c.spec.mode {
            if want["Mode"]["Replicated"].get("Replicas").is_none() {
                want["Mode"]["Replicated"]["Replicas"] = json!(replicas);
            }
        }
        assert_eq!(serde_json::to_value(&over).expect("json"), want, "{p}");
        let fresh = to_docker::service_spec(&c.spec, None);
        let again = to_shoal::service_spec(&fresh, None).expect("its own rendering converts");
        assert_eq!(again.spec, c.spec, "{p}");
        assert!(again.warnings.is_empty(), "{p}: {:?}", again.warnings);
    }
}

/// The fuzz target's property, on its seeds: each converts, and renders back (over itself
/// or from nothing) to a spec that converts to the same shoal spec.
#[test]
fn the_fuzz_seeds_convert_and_render_back() {
    for (name, body) in [
        (
            "cli_create",
            include_str!("../../../../fuzz/seeds/docker_spec/cli_create.json"),
        ),
        (
            "process",
            include_str!("../../../../fuzz/seeds/docker_spec/process.json"),
        ),
        (
            "stack",
            include_str!("../../../../fuzz/seeds/docker_spec/stack.json"),
        ),
    ] {
        let spec = parse_service_spec(body.as_bytes()).expect(name);
        let c = to_shoal::service_spec(&spec, None).expect(name);
        for base in [Some(&spec), None] {
            let rendered = to_docker::service_spec(&c.spec, base);
            let back = to_shoal::service_spec(&rendered, None).expect(name);
            assert_eq!(back.spec, c.spec, "{name}");
        }
    }
}

/// A number a client sent, kept among the keys shoal does not model, comes back exactly:
/// found by the fuzz target (a 60-digit integer read as a float lost its last digit when
/// written back, before `float_roundtrip`).
#[test]
fn a_big_number_in_an_unknown_key_round_trips_exactly() {
    let body = include_str!("../../../../fuzz/seeds/docker_spec/big_number.json");
    let spec = parse_service_spec(body.as_bytes()).expect("reads");
    let json = serde_json::to_vec(&spec).expect("writes");
    let again = parse_service_spec(&json).expect("reads again");
    assert_eq!(again, spec);
}

#[test]
fn network_requests_are_checked_at_the_edge() {
    let req = |v: Value| -> networks::NetworkCreateRequest {
        serde_json::from_value(v).expect("request")
    };
    let (n, warnings) = req(json!({"Name": "st_default", "Driver": "overlay",
        "Labels": {"com.docker.stack.namespace": "st"}}))
    .checked()
    .expect("a stack's network");
    assert_eq!(
        (n.name.as_str(), n.driver.as_str()),
        ("st_default", "overlay")
    );
    assert_eq!(n.labels["com.docker.stack.namespace"], "st");
    assert!(warnings.is_empty(), "{warnings:?}");
    let (_, warnings) = req(json!({"Name": "n", "EnableIPv6": true, "IPAM": {"Config": []}}))
        .checked()
        .expect("with warnings");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    for (body, names) in [
        (json!({"Name": "n", "Driver": "bridge"}), "Driver"),
        (json!({"Name": "n", "Scope": "local"}), "Scope"),
        (json!({"Name": "n", "Ingress": true}), "Ingress"),
        (json!({"Name": "-n"}), "network name"),
        (json!({"Name": ""}), "network name"),
    ] {
        let e = req(body.clone())
            .checked()
            .expect_err("refused")
            .to_string();
        assert!(e.contains(names), "{body}: {e}");
    }
}

#[test]
fn blob_specs_are_checked_and_a_secrets_data_is_never_shown() {
    let spec = |v: Value| -> blobs::BlobSpec { serde_json::from_value(v).expect("spec") };
    let s = spec(json!({"Name": "pw", "Data": "aHVudGVyMg==", "Labels": {"a": "b"}}))
        .checked::<api::SecretKind>()
        .expect("a secret");
    assert_eq!(s.data, b"hunter2");
    let shown = serde_json::to_value(blobs::blob(&s, 3, false)).expect("json");
    assert!(shown["Spec"].get("Data").is_none(), "{shown}");
    assert_eq!(shown["Version"]["Index"], 3);
    let shown = serde_json::to_value(blobs::blob(&s, 3, true)).expect("json");
    assert_eq!(shown["Spec"]["Data"], "aHVudGVyMg==");
    for (body, names) in [
        (json!({"Name": "pw", "Data": "***"}), "Data"),
        (json!({"Name": "pw", "Data": ""}), "empty"),
        (
            json!({"Name": "pw", "Data": "eA==", "Driver": {"Name": "vault"}}),
            "Driver",
        ),
        (json!({"Name": "p w", "Data": "eA=="}), "secret"),
        (
            json!({"Name": "pw", "Data": "eA==", "Templating": {"Name": "jinja"}}),
            "golang",
        ),
    ] {
        let e = spec(body.clone())
            .checked::<api::SecretKind>()
            .expect_err("refused")
            .to_string();
        assert!(e.contains(names), "{body}: {e}");
    }
}
