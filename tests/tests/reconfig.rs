//! Dynamic reconfiguration against real `corral serve` ensembles, driven by a
//! third-party client (the `zookeeper-client` crate).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use corral_store::Ensemble;
use corral_tests::ensemble::EnsembleProc;
use corral_tests::req::rt;
use zookeeper_client as zk;

/// kazoo's super user `super:test`, as ZooKeeper's `superDigest`.
const SUPER_DIGEST: &str = "\"super:D/InIHSb7yEEbrWz8b9l71RjZJU=\"";

async fn connect(addr: std::net::SocketAddr) -> Result<zk::Client> {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&addr.to_string())
        .await
        .context("connect")
}

fn parse(data: &[u8]) -> Result<Ensemble> {
    Ensemble::parse(std::str::from_utf8(data)?).map_err(|e| anyhow::anyhow!("{e}"))
}

#[test]
fn reconfig_adds_and_removes_observers_with_zookeepers_checks() -> Result<()> {
    // Goal: /zookeeper/config shows the ensemble; only a super user may
    // reconfig; adding and removing an observer commits on every server and
    // fires config watches; a stale fromConfig is BADVERSION, bad input
    // BADARGUMENTS, a second voter set without a synced quorum
    // NEWCONFIGNOQUORUM — as kazoo's TestReconfig and ZooKeeper expect.
    let e = EnsembleProc::builder(3)
        .set("reconfig_enabled", "true")
        .set("zk_super_digest", SUPER_DIGEST)
        .start()?;
    e.wait_serving(Duration::from_secs(20))?;
    rt().block_on(async {
        let anon = connect(e.addr(0)).await?;
        let (data, stat) = anon.get_config().await?;
        let initial = parse(&data)?;
        ensure!(
            initial.voters().len() == 3 && initial.version == 0,
            "{initial:?}"
        );
        ensure!(stat.version == 0, "{stat:?}");
        let joining = "server.100=0.0.0.0:1234:2345:observer;0.0.0.0:3456";
        let add = || zk::EnsembleUpdate::Incremental {
            joinings: vec![joining].into_iter(),
            leavings: Vec::new().into_iter(),
        };
        let r = anon.update_ensemble(add(), None).await;
        ensure!(r == Err(zk::Error::NoAuth), "anonymous reconfig: {r:?}");

        let admin = connect(e.addr(1)).await?;
        admin.auth("digest", b"super:test").await?;
        let (_, _, watch) = anon.get_and_watch_config().await?;
        let (data, stat) = admin.update_ensemble(add(), None).await?;
        let text = String::from_utf8(data.clone())?;
        ensure!(text.contains(joining), "{text}");
        ensure!(
            stat.version == -1,
            "ZooKeeper's reconfig stores data version -1: {stat:?}"
        );
        let added = parse(&data)?;
        ensure!(
            added.version == stat.mzxid,
            "version is the reconfig's zxid: {text}"
        );
        ensure!(
            added.voters() == initial.voters(),
            "an observer does not vote"
        );
        let ev = tokio::time::timeout(Duration::from_secs(5), watch.changed()).await?;
        ensure!(ev.event_type == zk::EventType::NodeDataChanged, "{ev:?}");
        for i in 0..3 {
            let c = connect(e.addr(i)).await?;
            c.sync("/").await?;
            let (d, _) = c.get_config().await?;
            ensure!(d == data, "node {i} shows another configuration");
        }

        let (data, _) = admin
            .update_ensemble(
                zk::EnsembleUpdate::Incremental {
                    joinings: Vec::new().into_iter(),
                    leavings: vec!["100"].into_iter(),
                },
                None,
            )
            .await?;
        ensure!(!String::from_utf8(data.clone())?.contains(joining));
        let current = parse(&data)?;
        let r = admin
            .update_ensemble(add(), Some(current.version + 1))
            .await;
        ensure!(r == Err(zk::Error::BadVersion), "future fromConfig: {r:?}");
        let r = admin
            .update_ensemble(
                zk::EnsembleUpdate::Incremental {
                    joinings: vec!["some thing"].into_iter(),
                    leavings: Vec::new().into_iter(),
                },
                None,
            )
            .await;
        ensure!(
            matches!(r, Err(zk::Error::BadArguments(_))),
            "bad joiner: {r:?}"
        );
        let r = admin
            .update_ensemble(
                zk::EnsembleUpdate::New {
                    ensemble: [
                        "server.7=127.0.0.1:7001:7002:participant;127.0.0.1:7003",
                        "server.8=127.0.0.1:8001:8002:participant;127.0.0.1:8003",
                    ]
                    .into_iter(),
                },
                Some(current.version),
            )
            .await;
        // The crate has no variant for NEWCONFIGNOQUORUM (-13).
        ensure!(
            r == Err(zk::Error::UnexpectedErrorCode(-13)),
            "absent voters: {r:?}"
        );
        // The configuration is unchanged by the refused attempts.
        let (d, _) = admin.get_config().await?;
        ensure!(parse(&d)? == current);
        Ok(())
    })
}

#[test]
fn reconfig_is_refused_when_disabled() -> Result<()> {
    // Goal: without reconfig_enabled an ensemble answers RECONFIGDISABLED, as ZooKeeper does by default.
    let e = EnsembleProc::builder(3)
        .set("zk_super_digest", SUPER_DIGEST)
        .start()?;
    e.wait_serving(Duration::from_secs(20))?;
    rt().block_on(async {
        let admin = connect(e.addr(0)).await?;
        admin.auth("digest", b"super:test").await?;
        let r = admin
            .update_ensemble(
                zk::EnsembleUpdate::Incremental {
                    joinings: Vec::new().into_iter(),
                    leavings: vec!["3"].into_iter(),
                },
                None,
            )
            .await;
        ensure!(r == Err(zk::Error::ReconfigDisabled), "{r:?}");
        Ok(())
    })
}
