//! Request builders and small client steps the cross-crate tests share.

use anyhow::{bail, ensure, Result};
use corral_proto::request::{CreateRequest, PathWatch};
use corral_proto::{Acl, OpCode, Request, Response};

use crate::RawClient;

/// A two-worker tokio runtime for a synchronous test body.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `create` with an open ACL and `flags` (1 ephemeral, 2 sequential).
pub fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(
        OpCode::Create,
        CreateRequest {
            path: path.into(),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            flags,
            ttl: -1,
        },
    )
}

pub fn get(path: &str, watch: bool) -> Request {
    Request::GetData(PathWatch {
        path: path.into(),
        watch,
    })
}

pub fn children(path: &str) -> Request {
    Request::GetChildren(PathWatch {
        path: path.into(),
        watch: false,
    })
}

/// `sync` then `getData`: the data (`None` when the node does not exist).
pub async fn read_after_sync(c: &RawClient, path: &str) -> Result<Option<Vec<u8>>> {
    let (h, _) = c.request(Request::Sync("/".into())).await?;
    ensure!(h.err == 0, "sync failed: {}", h.err);
    let (h, body) = c.request(get(path, false)).await?;
    match (h.err, body) {
        (0, Response::Data(d, _)) => Ok(d),
        (-101, _) => Ok(None),
        (e, b) => bail!("getData {path}: err {e} {b:?}"),
    }
}

/// Opens a read-only session on `addr` (a server without quorum, in
/// read-only mode) and checks it: the ConnectResponse says read-only,
/// `path` reads as `data`, and a write and a `sync` get NOTREADONLY (-119).
/// A read-write client must be refused there first.
pub async fn check_read_only_session(
    addr: std::net::SocketAddr,
    path: &str,
    data: &[u8],
) -> Result<RawClient> {
    ensure!(
        RawClient::connect(addr, 4000).await.is_err(),
        "a read-write client must be refused without quorum"
    );
    let opts = crate::ConnectOptions {
        timeout_ms: 4000,
        read_only: Some(true),
        ..crate::ConnectOptions::default()
    };
    let ro = RawClient::connect_opts(addr, opts).await?;
    ensure!(
        ro.connect_response().read_only,
        "readOnly flag in the ConnectResponse"
    );
    let (h, body) = ro.request(get(path, false)).await?;
    ensure!(h.err == 0, "read in read-only mode: {}", h.err);
    ensure!(
        matches!(body, Response::Data(Some(ref d), _) if d == data),
        "{body:?}"
    );
    let (h, _) = ro.request(create("/nope", b"", 0)).await?;
    ensure!(h.err == -119, "write in read-only mode: {}", h.err);
    let (h, _) = ro.request(Request::Sync("/".into())).await?;
    ensure!(h.err == -119, "sync in read-only mode: {}", h.err);
    Ok(ro)
}

/// Once quorum is back: the read-only session is closed within 10 s, and a
/// read-write client can write on `addr` again.
pub async fn check_read_write_again(ro: RawClient, addr: std::net::SocketAddr) -> Result<()> {
    let t0 = std::time::Instant::now();
    while ro.closed_reason().is_none() && ro.ping().await.is_ok() {
        ensure!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "read-only client kept after quorum returned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let c = RawClient::connect(addr, 4000).await?;
    let (h, _) = c.request(create("/rw-again", b"", 0)).await?;
    ensure!(h.err == 0, "read-write again: {}", h.err);
    Ok(())
}
