//! Server composition: the daemon's start-up (data dir, lock, identity, store, data key),
//! the local API (control routes, forwarding to the leader, the node's own routes and
//! their guards), the health endpoint, and shutdown on SIGTERM or SIGINT.

use crate::addr;
use crate::api::{locked_guard, router as node_router, worker_guard};
use crate::data_plane::DataPlaneStatus;
use crate::forward::{self, Forward};
use crate::health;
use crate::identity;
use crate::membership::Membership;
use crate::runtime::Runtime;
use crate::state_key;
use crate::DaemonConfig;
use anyhow::{bail, Context};
use shoal_api::EngineInfo;
use shoal_manager::control::{router as control_router, ControlState};
use shoal_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Run a node until SIGTERM or SIGINT.
pub async fn run(cfg: DaemonConfig) -> anyhow::Result<()> {
    crate::private::restrict_new_files();
    let cfg = crate::limits::apply(cfg);
    std::fs::create_dir_all(cfg.logs_dir())
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    crate::private::tighten(&cfg.data_dir)?;
    let lock_path = cfg.data_dir.join("daemon.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "another shoal daemon is using data dir {}: stop it first",
            cfg.data_dir.display()
        );
    }
    if cfg.vip_interface.is_some() {
        // A table a killed daemon left forwards by rules nobody keeps up: gone until this
        // node's data plane writes its own.
        tokio::task::spawn_blocking(crate::nat::remove).await?;
    }
    let node_id = identity::node_id(&cfg.data_dir)?;
    let hostname = identity::hostname();
    let (store, data_key) = match state_key::load_or_create(&cfg.data_dir)? {
        state_key::Found::Open(k) => (
            Store::open_with(&cfg.state_path(), Some(k.sealer()?))?,
            Some(k),
        ),
        state_key::Found::Locked { kek_id } => {
            tracing::warn!(unlock_key_id = %kek_id, "this manager is locked (autolock): run `shoal unlock` to start it");
            (Store::open_locked(&cfg.state_path())?, None)
        }
    };
    let store = Arc::new(store);
    store.set_min_free(cfg.min_free_disk);
    let listener = bind_socket(&cfg.socket).await?;
    let health_listener = match cfg.health_addr {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on health address {a}"))?,
        ),
        None => None,
    };
    let (status, status_rx) = watch::channel(DataPlaneStatus::default());
    // Reported with the node's description; the agent connects its own container executor
    // to the same engine.
    let engine = shoal_agent::engine_version(&cfg.docker_host)
        .await
        .ok()
        .map(|version| EngineInfo { version });
    let rt = Arc::new(Runtime::new(
        cfg.clone(),
        store.clone(),
        node_id.clone(),
        hostname,
        engine,
        status,
        data_key,
    )?);
    if !store.is_locked() {
        rt.resume().await?;
    }
    tokio::spawn(rt.clone().keep_data_key());

    let control = ControlState {
        store: store.clone(),
        logs: rt.logs.clone(),
        events: rt.events.clone(),
    };
    let app = control_router(control.clone())
        .merge(shoal_manager::docker::router(control))
        .layer(axum::middleware::from_fn_with_state(
            Forward {
                store: store.clone(),
                tls: rt.forward_tls.subscribe(),
            },
            forward::to_leader,
        ))
        .merge(node_router(rt.clone()))
        .merge(crate::docker::router(rt.clone()))
        .fallback(shoal_manager::docker::not_found)
        .layer(axum::middleware::from_fn_with_state(
            rt.clone(),
            worker_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            rt.clone(),
            locked_guard,
        ));
    // Around the router, so a Docker API version prefix is gone before routing.
    let app = shoal_manager::docker::versioned(app);
    let (stop_api, mut stop_api_rx) = watch::channel(false);
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_api_rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "local API stopped");
        }
    });
    if let Some(l) = health_listener {
        tokio::spawn(health::serve(l, status_rx));
    }
    tracing::info!(node = %node_id, socket = %cfg.socket.display(), "daemon listening");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    if cfg.vip_interface.is_some() {
        // The kernel would go on forwarding to tasks about to stop, by a table nobody keeps
        // up: from now on the proxy takes those connections.
        tokio::task::spawn_blocking(crate::nat::remove).await?;
    }
    tracing::info!("shutting down: stopping tasks");
    rt.shutdown().await;
    stop_api.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    let _ = std::fs::remove_file(&cfg.socket);
    Ok(())
}

/// Bind a manager's control port.
pub(crate) async fn bind_control(m: &Membership) -> anyhow::Result<tokio::net::TcpListener> {
    let listen = addr::listen_addr(m.listen_addr.as_deref())?;
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
}

/// Bind the API socket, refusing to steal it from a live daemon.
async fn bind_socket(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!("another shoal daemon is listening on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))
}
