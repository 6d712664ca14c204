//! Mail wakes its worker (the mailboxes' wakers, `Registry::set_waker`),
//! on the sans-IO network of the other engine tests: two engines, the
//! publisher homed on worker 0 and the viewer on worker 1, so attaching
//! the viewer, its feedback and the DELETE of the publisher all travel
//! through mailboxes.
//!
//! The property checked after every step of the network: an engine that
//! has mail has been woken since the step before. A worker that sleeps
//! until a wake or its next timer (the dataplane's) therefore never leaves
//! mail waiting for a timer. And an engine is not woken again while its
//! mail is still waiting.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use common::net::{Net, TICK};
use common::registry;
use uturn_media::client::ClientConfig;
use uturn_media::{Kind, Signalling};

/// Counts the wakes of one worker.
#[derive(Debug, Default)]
struct Count(AtomicU64);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Two engines, each with a counting waker.
fn network() -> (Net, Vec<Arc<Count>>) {
    let net = Net::new(registry(2, 10), 2);
    let counts: Vec<Arc<Count>> = (0..2).map(|_| Arc::new(Count::default())).collect();
    for (w, c) in counts.iter().enumerate() {
        net.registry.set_waker(w, Some(Waker::from(c.clone())));
    }
    (net, counts)
}

fn wakes(counts: &[Arc<Count>]) -> Vec<u64> {
    counts.iter().map(|c| c.0.load(Ordering::SeqCst)).collect()
}

/// Steps `steps` times; after each, any engine with mail was woken during
/// that step. Returns the wakes per worker over these steps.
fn step_checked(net: &mut Net, counts: &[Arc<Count>], steps: usize) -> Vec<u64> {
    let start = wakes(counts);
    for _ in 0..steps {
        let before = wakes(counts);
        net.step();
        let after = wakes(counts);
        for (w, engine) in net.engines.iter().enumerate() {
            if engine.has_mail() {
                assert!(
                    after[w] > before[w],
                    "worker {w} has mail nobody woke it for"
                );
            }
        }
    }
    let end = wakes(counts);
    end.iter().zip(&start).map(|(e, s)| e - s).collect()
}

#[test]
fn mail_to_an_idle_worker_always_wakes_it() {
    let (mut net, counts) = network();
    net.publish("cam", ClientConfig::publisher(), 0);
    net.play("cam", ClientConfig::viewer(), 1);
    // Connect: the viewer's attach reaches the publisher's worker by mail.
    let mut connected = false;
    for _ in 0..1000 {
        step_checked(&mut net, &counts, 1);
        if net.peers.iter().all(|p| p.dtls_connected()) {
            connected = true;
            break;
        }
    }
    assert!(connected, "peers did not connect");
    step_checked(&mut net, &counts, 5);
    assert!(
        wakes(&counts)[0] >= 1,
        "the viewer's attach never woke the publisher's worker"
    );

    // Media flows to the viewer (its feedback goes by mail, each checked).
    for i in 0..10 {
        net.send_frame(0, i == 0, 800, true);
        step_checked(&mut net, &counts, 2);
    }
    assert!(
        net.peers[1].rtp().iter().any(|r| r.video),
        "no video reached the viewer"
    );

    // DELETE of the publisher from the HTTP thread: its worker is woken
    // for it, once, and the session ends (close_notify to the publisher,
    // and its viewer on worker 1 ended through worker 1's mailbox).
    let before = wakes(&counts);
    assert!(!net.engines[0].has_mail());
    let session = net.peers[0].created.session.clone();
    net.registry
        .delete(net.now, Kind::Publisher, "cam", &session)
        .unwrap();
    let after = wakes(&counts);
    assert_eq!(
        after[0],
        before[0] + 1,
        "the DELETE woke the publisher's worker once"
    );
    assert_eq!(
        after[1],
        before[1] + 1,
        "the viewer's end woke worker 1 once"
    );
    step_checked(&mut net, &counts, 5);
    assert!(net.peers[0].closed(), "publisher not closed");
    assert!(net.peers[1].closed(), "viewer not closed");
    assert_eq!(net.registry.session_count(), 0);
}

#[test]
fn pending_mail_is_not_woken_for_again() {
    let (mut net, counts) = network();
    net.publish("cam", ClientConfig::publisher(), 0);
    // Several commands for worker 0 with nobody taking its mail in
    // between: DELETEs of connected publishers homed there.
    let mut ids = Vec::new();
    for stream in ["s1", "s2", "s3"] {
        let p = net.publish(stream, ClientConfig::publisher(), 0);
        ids.push((stream, net.peers[p].created.session.clone()));
    }
    // Unclaimed sessions are dropped by the registry itself (no mail), so
    // claim them first: connect everyone.
    let mut connected = false;
    for _ in 0..1000 {
        net.step();
        if net
            .peers
            .iter()
            .filter(|p| p.kind == Kind::Publisher)
            .all(|p| p.dtls_connected())
        {
            connected = true;
            break;
        }
    }
    assert!(connected);
    net.run_for(TICK * 5);
    assert!(!net.engines[0].has_mail());
    let before = wakes(&counts)[0];
    for (stream, session) in &ids {
        net.registry
            .delete(net.now, Kind::Publisher, stream, session)
            .unwrap();
    }
    assert!(net.engines[0].has_mail());
    assert_eq!(
        wakes(&counts)[0],
        before + 1,
        "three commands while mail was pending: one wake"
    );
    // Taken: the next post wakes again.
    step_checked(&mut net, &counts, 3);
    let before = wakes(&counts)[0];
    let session = net.peers[0].created.session.clone();
    net.registry
        .delete(net.now, Kind::Publisher, "cam", &session)
        .unwrap();
    assert_eq!(wakes(&counts)[0], before + 1);
}
