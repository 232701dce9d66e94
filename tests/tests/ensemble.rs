//! Three `corral serve` voters as real processes over QUIC: replication,
//! failover after `kill -9` of the leader, catch-up of a restarted voter,
//! sessions that move between voters, and the four-letter words' modes.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use corral_proto::{Request, Response};
use corral_tests::ensemble::EnsembleProc;
use corral_tests::req::{create, get, read_after_sync, rt};
use corral_tests::{ConnectOptions, RawClient};

#[test]
fn three_voters_replicate_fail_over_and_catch_up() -> Result<()> {
    // Goal: writes through any voter are visible on all after sync; after
    // kill -9 of the leader the other two elect a leader, keep every
    // acknowledged write and take new ones; the killed voter restarts and
    // catches up; srvr shows leader/follower modes.
    let mut e = EnsembleProc::start(3)?;
    let leader = e.leader().context("a leader")?;
    let modes: Vec<_> = (0..3).map(|i| e.mode(i)).collect();
    assert_eq!(
        modes
            .iter()
            .filter(|m| m.as_deref() == Some("follower"))
            .count(),
        2,
        "{modes:?}"
    );
    // Both followers serve, but the leader counts one as synced only once
    // it acked NEWLEADER, which may come a moment later.
    let t0 = std::time::Instant::now();
    let mntr = loop {
        let mntr = corral_tests::four_letter_word(e.addr(leader), "mntr")?;
        if mntr.contains("zk_synced_followers\t2") || t0.elapsed() > Duration::from_secs(5) {
            break mntr;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(mntr.contains("zk_server_state\tleader"), "{mntr}");
    assert!(mntr.contains("zk_synced_followers\t2"), "{mntr}");
    let rt = rt();
    rt.block_on(async {
        for i in 0..3 {
            let c = RawClient::connect(e.addr(i), 4000).await?;
            let (h, _) = c.request(create(&format!("/n{i}"), b"v", 0)).await?;
            ensure!(h.err == 0, "create through node {i}: {}", h.err);
        }
        for i in 0..3 {
            let c = RawClient::connect(e.addr(i), 4000).await?;
            for j in 0..3 {
                ensure!(
                    read_after_sync(&c, &format!("/n{j}")).await?.as_deref() == Some(&b"v"[..]),
                    "node {i} misses /n{j}"
                );
            }
        }
        Ok(())
    })?;
    e.nodes[leader].kill9();
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let new_leader = e.wait_serving_among(&rest, Duration::from_secs(20))?;
    assert_ne!(new_leader, leader);
    rt.block_on(async {
        let c = RawClient::connect(e.addr(rest[0]), 4000).await?;
        for j in 0..3 {
            ensure!(
                read_after_sync(&c, &format!("/n{j}")).await?.is_some(),
                "lost /n{j}"
            );
        }
        let (h, _) = c.request(create("/after", b"x", 0)).await?;
        ensure!(h.err == 0, "write after failover: {}", h.err);
        Ok(())
    })?;
    e.nodes[leader].start_again()?;
    e.wait_serving(Duration::from_secs(30))?;
    rt.block_on(async {
        let c = RawClient::connect(e.addr(leader), 4000).await?;
        ensure!(
            read_after_sync(&c, "/after").await?.as_deref() == Some(&b"x"[..]),
            "restarted voter did not catch up"
        );
        Ok(())
    })?;
    Ok(())
}

#[test]
fn a_session_survives_moving_to_another_voter_and_its_old_server_is_refused() -> Result<()> {
    // Goal: a client resumes its session on another voter with its
    // ephemerals; a write still sent through the old voter gets
    // SESSIONMOVED (-118), as in ZooKeeper; the ephemeral goes when the
    // session closes.
    let e = EnsembleProc::start(3)?;
    rt().block_on(async {
        let first = RawClient::connect(e.addr(0), 6000).await?;
        let (h, _) = first.request(create("/eph", b"", 1)).await?;
        ensure!(h.err == 0, "create ephemeral: {}", h.err);
        let opts = ConnectOptions {
            session_id: first.session_id(),
            passwd: first.passwd().to_vec(),
            timeout_ms: 6000,
            ..ConnectOptions::default()
        };
        let moved = RawClient::connect_opts(e.addr(2), opts).await?;
        ensure!(moved.session_id() == first.session_id(), "session resumed");
        let (h, body) = moved.request(get("/eph", false)).await?;
        ensure!(h.err == 0, "ephemeral visible after the move: {}", h.err);
        if let Response::Data(_, stat) = body {
            ensure!(stat.ephemeral_owner == first.session_id(), "owner kept");
        }
        // The old connection is still open on voter 1; its writes are refused.
        let (h, _) = first.request(create("/stale", b"", 0)).await?;
        ensure!(
            h.err == -118,
            "write through the old voter: expected SESSIONMOVED, got {}",
            h.err
        );
        let (h, _) = moved.request(create("/fresh", b"", 0)).await?;
        ensure!(h.err == 0, "write through the new voter: {}", h.err);
        moved.close().await?;
        let other = RawClient::connect(e.addr(1), 4000).await?;
        ensure!(
            read_after_sync(&other, "/eph").await?.is_none(),
            "ephemeral outlived its session"
        );
        Ok(())
    })
}

#[test]
fn a_voter_without_quorum_serves_read_only_clients_when_enabled() -> Result<()> {
    // Goal: with read_only_mode on, a voter that lost its quorum accepts a
    // client asking for read-only mode (readOnly=true in the ConnectResponse),
    // answers reads from its data, fails writes and sync with NOTREADONLY
    // (-119), refuses read-write clients, says "ro" to isro, and drops its
    // read-only clients once it serves again.
    let mut e = EnsembleProc::builder(3)
        .set("read_only_mode", "true")
        .start()?;
    e.wait_serving(Duration::from_secs(30))?;
    let rt = rt();
    rt.block_on(async {
        let c = RawClient::connect(e.addr(0), 4000).await?;
        let (h, _) = c.request(create("/ro", b"kept", 0)).await?;
        ensure!(h.err == 0, "create: {}", h.err);
        // Make sure every voter has it before quorum goes.
        for i in 0..3 {
            let c = RawClient::connect(e.addr(i), 4000).await?;
            ensure!(read_after_sync(&c, "/ro").await?.is_some(), "node {i}");
        }
        Ok(())
    })?;
    e.nodes[1].kill9();
    e.nodes[2].kill9();
    let t0 = std::time::Instant::now();
    while e.mode(0).is_some() {
        ensure!(
            t0.elapsed() < Duration::from_secs(10),
            "node 1 kept serving without quorum"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ensure!(corral_tests::four_letter_word(e.addr(0), "isro")?.trim() == "ro");
    let ro = rt.block_on(corral_tests::req::check_read_only_session(
        e.addr(0),
        "/ro",
        b"kept",
    ))?;
    e.nodes[1].start_again()?;
    e.nodes[2].start_again()?;
    e.wait_serving(Duration::from_secs(30))?;
    rt.block_on(corral_tests::req::check_read_write_again(ro, e.addr(0)))
}

#[test]
fn a_lagging_voter_syncs_by_snapshot_and_a_full_restart_keeps_everything() -> Result<()> {
    // Goal: with snapshots every 100 txns, a voter that missed 1,500 writes
    // is brought up to date by a SNAP of the leader's snapshot file (plus the
    // txns after it), and after all three voters are killed and restarted,
    // every acknowledged write is still there on every voter.
    let mut e = EnsembleProc::builder(3).set("snap_count", "100").start()?;
    let leader = e.wait_serving(Duration::from_secs(30))?;
    let lagger = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    e.nodes[lagger].kill9();
    let rt = rt();
    rt.block_on(async {
        let c = RawClient::connect(e.addr(other), 8000).await?;
        let mut pending = Vec::new();
        for i in 0..1500 {
            pending.push(c.send(&create(&format!("/s{i:04}"), b"data", 0)).await?);
            if pending.len() >= 100 {
                for p in pending.drain(..) {
                    let r = p.wait().await?;
                    ensure!(r.header.err == 0, "create: {}", r.header.err);
                }
            }
        }
        for p in pending {
            let r = p.wait().await?;
            ensure!(r.header.err == 0, "create: {}", r.header.err);
        }
        Ok(())
    })?;
    e.nodes[lagger].start_again()?;
    e.wait_serving(Duration::from_secs(30))?;
    let synced_by_snap = e.nodes[lagger]
        .log_tail(400)
        .contains("installed the leader's snapshot");
    ensure!(
        synced_by_snap,
        "expected a SNAP sync; log:\n{}",
        e.nodes[lagger].log_tail(40)
    );
    let check_all = |e: &EnsembleProc| -> Result<()> {
        rt.block_on(async {
            for i in 0..3 {
                let c = RawClient::connect(e.addr(i), 8000).await?;
                c.request(Request::Sync("/".into())).await?;
                let (h, body) = c.request(Request::GetAllChildrenNumber("/".into())).await?;
                ensure!(h.err == 0, "node {i}: {}", h.err);
                let Response::Number(n) = body else {
                    anyhow::bail!("node {i}: {body:?}")
                };
                ensure!(n >= 1500, "node {i} has {n} descendants of /");
                ensure!(
                    read_after_sync(&c, "/s1499").await?.is_some(),
                    "node {i} misses /s1499"
                );
                ensure!(
                    read_after_sync(&c, "/s0000").await?.is_some(),
                    "node {i} misses /s0000"
                );
            }
            Ok(())
        })
    };
    check_all(&e)?;
    for n in &mut e.nodes {
        n.kill9();
    }
    for n in &mut e.nodes {
        n.start_again()?;
    }
    e.wait_serving(Duration::from_secs(30))?;
    check_all(&e)
}
