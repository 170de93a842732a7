//! Task logs from every node: the leader's meeting point between readers (`service logs`)
//! and the nodes that hold the logs.
//!
//! A reader subscribes with the tasks it wants, grouped by node. Every node keeps a
//! `LogSubscriptions` stream open to the leader (see the dispatcher) and sees the
//! subscriptions naming it; it reads its own log files and sends the lines back with
//! `PublishLogs`, which the broker hands to the reader. Nothing is read on the leader's
//! disk for another node, and no log is held whole anywhere: every hop is a bounded
//! channel, so a slow reader slows the nodes' reading. A node that is not connected, or
//! whose connection drops, is reported to the reader instead of waited for.

use shoal_api::task_log::{LogLine, LogRequest};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

/// Batches of lines queued for one reader at most.
const QUEUED_BATCHES: usize = 8;

/// Tasks to read, by node ID.
pub type TasksByNode = BTreeMap<String, Vec<String>>;

/// What the nodes see of one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub id: String,
    pub tasks: TasksByNode,
    pub request: LogRequest,
}

/// What a reader receives.
#[derive(Debug, PartialEq, Eq)]
pub enum LogEvent {
    Lines {
        node: String,
        lines: Vec<LogLine>,
    },
    /// The node sent all it had (only without `follow`).
    Done {
        node: String,
    },
    /// The node cannot send (not connected, or its connection dropped).
    Unavailable {
        node: String,
        reason: String,
    },
}

#[derive(Debug)]
struct Route {
    tx: mpsc::Sender<LogEvent>,
    /// Where `Done` and `Unavailable` go: a few per node at most, never waiting for room.
    notices: mpsc::UnboundedSender<LogEvent>,
    /// Nodes asked and not finished yet.
    waiting: std::collections::BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Inner {
    routes: HashMap<String, Route>,
    /// Nodes with a subscriptions stream open, each with the number of its latest stream.
    listening: HashMap<String, u64>,
}

/// One per daemon: shared by its control API (readers) and its dispatcher (nodes).
#[derive(Debug)]
pub struct LogBroker {
    inner: Mutex<Inner>,
    subscribed: watch::Sender<Arc<BTreeMap<String, Subscribed>>>,
    next: AtomicU64,
}

impl Default for LogBroker {
    fn default() -> Self {
        LogBroker {
            inner: Mutex::default(),
            subscribed: watch::channel(Arc::default()).0,
            next: AtomicU64::new(1),
        }
    }
}

/// A reader's subscription; dropping it tells the nodes to stop.
///
/// Lines arrive on `events`; `Done` and `Unavailable` on `notices`. A node's lines are all
/// queued on `events` before its `Done` is sent, so a reader that has heard every node is
/// done takes what is left on `events` without waiting.
#[derive(Debug)]
pub struct Subscription {
    id: String,
    broker: Arc<LogBroker>,
    pub events: mpsc::Receiver<LogEvent>,
    pub notices: mpsc::UnboundedReceiver<LogEvent>,
}

impl Subscription {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Read the tasks `tasks` names too (following: tasks started after the subscription).
    pub fn update(&self, tasks: TasksByNode) {
        self.broker.update(&self.id, tasks);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.broker.cancel(&self.id);
    }
}

impl LogBroker {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask the nodes in `tasks` for their logs.
    pub fn subscribe(self: &Arc<Self>, tasks: TasksByNode, request: LogRequest) -> Subscription {
        let id = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, events) = mpsc::channel(QUEUED_BATCHES);
        let (notices_tx, notices) = mpsc::unbounded_channel();
        self.inner().routes.insert(
            id.clone(),
            Route {
                tx,
                notices: notices_tx,
                waiting: Default::default(),
            },
        );
        let sub = Subscription {
            id: id.clone(),
            broker: self.clone(),
            events,
            notices,
        };
        self.subscribed.send_modify(|all| {
            Arc::make_mut(all).insert(
                id.clone(),
                Subscribed {
                    id: id.clone(),
                    tasks: BTreeMap::new(),
                    request,
                },
            );
        });
        self.update(&id, tasks);
        sub
    }

    fn update(&self, id: &str, tasks: TasksByNode) {
        {
            let mut inner = self.inner();
            let Inner { routes, listening } = &mut *inner;
            let Some(route) = routes.get_mut(id) else {
                return;
            };
            let known = self
                .subscribed
                .borrow()
                .get(id)
                .map(|s| s.tasks.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            for node in tasks.keys().filter(|n| !known.contains(n)) {
                if listening.contains_key(node) {
                    route.waiting.insert(node.clone());
                } else {
                    let _ = route.notices.send(LogEvent::Unavailable {
                        node: node.clone(),
                        reason: "the node is not connected".into(),
                    });
                }
            }
        }
        self.subscribed
            .send_if_modified(|all| match Arc::make_mut(all).get_mut(id) {
                Some(s) if s.tasks != tasks => {
                    s.tasks = tasks;
                    true
                }
                _ => false,
            });
    }

    fn cancel(&self, id: &str) {
        self.inner().routes.remove(id);
        self.subscribed.send_if_modified(|all| {
            if all.contains_key(id) {
                Arc::make_mut(all).remove(id);
                true
            } else {
                false
            }
        });
    }

    /// A node opened its subscriptions stream: its number (for [`LogBroker::unlisten`])
    /// and the subscriptions, as they change.
    pub fn listen(&self, node: &str) -> (u64, watch::Receiver<Arc<BTreeMap<String, Subscribed>>>) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let subscribed = self.subscribed.borrow().clone();
        let mut inner = self.inner();
        inner.listening.insert(node.to_string(), n);
        // A node back after losing its connection serves what it was asked for again.
        for (id, route) in inner.routes.iter_mut() {
            if subscribed
                .get(id)
                .is_some_and(|s| s.tasks.contains_key(node))
            {
                route.waiting.insert(node.to_string());
            }
        }
        (n, self.subscribed.subscribe())
    }

    /// The node's stream number `n` closed: subscriptions still waiting for it hear that it
    /// cannot send (unless a newer stream of the node took over).
    pub fn unlisten(&self, node: &str, n: u64) {
        let mut inner = self.inner();
        if inner.listening.get(node) != Some(&n) {
            return;
        }
        inner.listening.remove(node);
        for route in inner.routes.values_mut() {
            if route.waiting.remove(node) {
                let _ = route.notices.send(LogEvent::Unavailable {
                    node: node.to_string(),
                    reason: "the node's connection was lost".into(),
                });
            }
        }
    }

    /// Where `node`'s lines for subscription `id` go; none once the reader has gone, or if
    /// the subscription does not wait for that node.
    pub fn sender(&self, id: &str, node: &str) -> Option<mpsc::Sender<LogEvent>> {
        let inner = self.inner();
        let route = inner.routes.get(id)?;
        route.waiting.contains(node).then(|| route.tx.clone())
    }

    /// The node has sent all it will for subscription `id`; `failed` says why it stopped
    /// early, if it did.
    pub fn finished(&self, id: &str, node: &str, failed: Option<String>) {
        let mut inner = self.inner();
        let Some(route) = inner.routes.get_mut(id) else {
            return;
        };
        if route.waiting.remove(node) {
            let event = match failed {
                None => LogEvent::Done {
                    node: node.to_string(),
                },
                Some(reason) => LogEvent::Unavailable {
                    node: node.to_string(),
                    reason,
                },
            };
            let _ = route.notices.send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(pairs: &[(&str, &[&str])]) -> TasksByNode {
        pairs
            .iter()
            .map(|(n, ts)| (n.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn line(task: &str, text: &str) -> LogLine {
        LogLine {
            task_id: task.into(),
            time: Some(1),
            line: text.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn lines_from_nodes_reach_the_reader_and_absent_nodes_are_named() {
        let broker = Arc::new(LogBroker::default());
        let (n1, mut seen) = broker.listen("n1");
        let mut sub = broker.subscribe(
            tasks(&[("n1", &["t1"]), ("n2", &["t2"])]),
            LogRequest::default(),
        );
        // n2 has no stream open: the reader hears so at once.
        assert_eq!(
            sub.notices.recv().await,
            Some(LogEvent::Unavailable {
                node: "n2".into(),
                reason: "the node is not connected".into()
            })
        );
        // n1 sees the subscription naming its task, and answers.
        let all = seen.borrow_and_update().clone();
        let s = all.values().next().expect("one subscription");
        assert_eq!(s.tasks.get("n1"), Some(&vec!["t1".to_string()]));
        assert!(broker.sender(&s.id, "n2").is_none(), "n2 was not asked");
        let tx = broker.sender(&s.id, "n1").expect("reader there");
        tx.send(LogEvent::Lines {
            node: "n1".into(),
            lines: vec![line("t1", "hello")],
        })
        .await
        .expect("sent");
        broker.finished(&s.id, "n1", None);
        assert!(matches!(
            sub.events.recv().await,
            Some(LogEvent::Lines { .. })
        ));
        assert_eq!(
            sub.notices.recv().await,
            Some(LogEvent::Done { node: "n1".into() })
        );
        // The reader goes: the nodes see the subscription gone and lines have nowhere to go.
        let id = s.id.clone();
        drop(sub);
        assert!(seen.borrow_and_update().is_empty());
        assert!(broker.sender(&id, "n1").is_none());
        broker.unlisten("n1", n1);
    }

    #[tokio::test]
    async fn a_node_that_drops_its_stream_is_reported_once() {
        let broker = Arc::new(LogBroker::default());
        let (old, _) = broker.listen("n1");
        let (new, _) = broker.listen("n1");
        let mut sub = broker.subscribe(tasks(&[("n1", &["t1"])]), LogRequest::default());
        // An older stream closing does not matter while a newer one is open.
        broker.unlisten("n1", old);
        assert!(sub.notices.try_recv().is_err());
        broker.unlisten("n1", new);
        assert_eq!(
            sub.notices.recv().await,
            Some(LogEvent::Unavailable {
                node: "n1".into(),
                reason: "the node's connection was lost".into()
            })
        );
        // Finishing after that adds nothing.
        broker.finished(sub.id(), "n1", None);
        assert!(sub.notices.try_recv().is_err());
    }

    #[tokio::test]
    async fn following_adds_tasks_and_new_nodes() {
        let broker = Arc::new(LogBroker::default());
        let (_n, mut seen) = broker.listen("n1");
        let (_m, _) = broker.listen("n2");
        let sub = broker.subscribe(
            tasks(&[("n1", &["t1"])]),
            LogRequest {
                follow: true,
                ..LogRequest::default()
            },
        );
        seen.borrow_and_update();
        sub.update(tasks(&[("n1", &["t1", "t3"]), ("n2", &["t2"])]));
        assert!(seen.has_changed().expect("open"));
        let all = seen.borrow_and_update().clone();
        let s = all.values().next().expect("one subscription");
        assert_eq!(s.tasks.len(), 2);
        assert_eq!(s.tasks["n1"], vec!["t1".to_string(), "t3".to_string()]);
        // The same tasks again change nothing.
        sub.update(s.tasks.clone());
        assert!(!seen.has_changed().expect("open"));
    }
}
