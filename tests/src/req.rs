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
