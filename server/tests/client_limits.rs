//! Limits and robustness: unknown opcodes, oversized and malformed frames,
//! the per-IP connection limit, and four-letter words.

mod common;

use std::time::Duration;

use common::{client, code, four_letter, persistent, within, Raw, TestNode};
use corral_proto::{OpCode, Request};
use tokio::io::AsyncWriteExt;
use zookeeper_client as zk;

#[test]
fn unknown_opcode_gets_unimplemented_and_the_connection_stays() {
    // Goal: an unknown opcode is answered Unimplemented with its xid, and the same connection keeps working.
    common::run(async {
        let node = TestNode::start();
        let mut raw = Raw::connect(node.addr, 4000).await;
        raw.send_with(77, 999, |w| w.write_string("/whatever"))
            .await;
        let (_, h, body) = raw.reply_to(77).await;
        assert_eq!(h.err, code::UNIMPLEMENTED);
        assert!(body.is_empty());
        let (_, h, _) = raw
            .call(&Request::Exists(common::path_watch("/", false)))
            .await;
        assert_eq!(h.err, code::OK, "connection still usable");
        // SASL is not offered either: also Unimplemented, connection kept.
        raw.send_with(78, OpCode::Sasl.code(), |w| w.write_buffer(b"token"))
            .await;
        let (_, h, _) = raw.reply_to(78).await;
        assert_eq!(h.err, code::UNIMPLEMENTED);
        let (_, h, _) = raw
            .call(&Request::Exists(common::path_watch("/", false)))
            .await;
        assert_eq!(h.err, code::OK);
    });
}

#[test]
fn oversized_frame_closes_only_that_connection() {
    // Goal: a frame above max_frame_bytes closes its connection; other clients are unaffected.
    common::run(async {
        let node = TestNode::start_with(|o| o.max_frame_bytes = 4096);
        let c = client(&node).await;
        c.create("/big", b"", &persistent()).await.unwrap();
        let mut raw = Raw::connect(node.addr, 4000).await;
        let mut frame = 5000i32.to_be_bytes().to_vec();
        frame.extend(vec![0u8; 5000]);
        let _ = raw.stream.write_all(&frame).await;
        assert!(
            raw.closed_by_server().await,
            "oversized frame closes the connection"
        );
        // An oversized ConnectRequest is refused the same way.
        let mut s = within("connect", tokio::net::TcpStream::connect(node.addr))
            .await
            .unwrap();
        let _ = s.write_all(&(1i32 << 21).to_be_bytes()).await;
        assert!(common::closed_by_server(&mut s).await);
        // The crate's client kept its session and can still write small data.
        c.set_data("/big", &[1u8; 1000], None).await.unwrap();
        let other = client(&node).await;
        assert_eq!(other.get_data("/big").await.unwrap().0.len(), 1000);
    });
}

#[test]
fn oversized_write_from_the_crate_loses_only_its_connection() {
    // Goal: a client that sends too big a setData loses its connection, reconnects its session, and nothing was applied.
    common::run(async {
        let node = TestNode::start_with(|o| o.max_frame_bytes = 4096);
        let c = client(&node).await;
        c.create("/big", b"small", &persistent()).await.unwrap();
        let r = within("big setData", c.set_data("/big", &[7u8; 8192], None)).await;
        // The crate reports the reset socket (ConnectionLoss or the raw I/O error).
        assert!(r.is_err(), "an oversized write cannot succeed");
        let id = c.session_id();
        common::eventually("reconnected", Duration::from_secs(8), || async {
            c.get_data("/big").await.is_ok()
        })
        .await;
        assert_eq!(c.session_id(), id);
        assert_eq!(c.get_data("/big").await.unwrap().0, b"small");
    });
}

#[test]
fn malformed_frame_closes_only_that_connection() {
    // Goal: a frame whose body cannot be decoded closes that connection; the rest of the node serves on.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        let mut raw = Raw::connect(node.addr, 4000).await;
        // A create whose path length runs past the end of the frame.
        raw.send_with(5, OpCode::Create.code(), |w| {
            w.write_i32(1000);
            w.write_raw(b"/short");
        })
        .await;
        assert!(
            raw.closed_by_server().await,
            "malformed frame closes the connection"
        );
        // A truncated request header is malformed too.
        let mut raw = Raw::connect(node.addr, 4000).await;
        let _ = raw.stream.write_all(&[0, 0, 0, 3, 1, 2, 3]).await;
        assert!(raw.closed_by_server().await);
        c.create("/fine", b"", &persistent()).await.unwrap();
        let mntr = four_letter(node.addr, "mntr").await;
        assert!(mntr.contains("zk_malformed_frames\t2"), "{mntr}");
    });
}

#[test]
fn per_ip_connection_limit_refuses_the_extra_connection() {
    // Goal: with max_client_cnxns = 3, a 4th connection from 127.0.0.1 is closed; a slot frees when one leaves.
    common::run(async {
        let node = TestNode::start_with(|o| o.max_client_cnxns = 3);
        let a = Raw::connect(node.addr, 4000).await;
        let _b = Raw::connect(node.addr, 4000).await;
        let c = client(&node).await;
        let refused = Raw::handshake(node.addr, 4000, 0, vec![0; 16]).await;
        assert!(
            refused.is_err(),
            "4th connection must be closed, got {:?}",
            refused.map(|r| r.1)
        );
        let r = zk::Client::connector()
            .with_session_timeout(Duration::from_millis(1500))
            .with_fail_eagerly()
            .connect(&node.connect_string())
            .await;
        assert!(r.is_err(), "the crate cannot connect either");
        // The connections already open are unaffected.
        c.create("/still", b"", &persistent()).await.unwrap();
        drop(a);
        common::eventually("a slot frees up", Duration::from_secs(5), || async {
            Raw::handshake(node.addr, 4000, 0, vec![0; 16])
                .await
                .is_ok()
        })
        .await;
        // mntr needs a connection slot too; the probe connections above may
        // still hold one for a moment, so ask until it is answered.
        let mut mntr = String::new();
        for _ in 0..100 {
            // A connection over the limit is reset: try again.
            mntr = common::try_four_letter(node.addr, "mntr")
                .await
                .unwrap_or_default();
            if mntr.contains("zk_connections_refused") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refused: u64 = mntr
            .lines()
            .find_map(|l| l.strip_prefix("zk_connections_refused\t"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(refused >= 2, "{mntr}");
    });
}

#[test]
fn four_letter_words_answer_like_zookeeper() {
    // Goal: ruok/srvr/stat/envi/mntr/isro/conf/cons/wchs/dump answer on the client port in ZooKeeper's shapes.
    common::run(async {
        let node = TestNode::start();
        let c = client(&node).await;
        c.create("/4lw", b"", &persistent()).await.unwrap();
        let _w = c.get_and_watch_data("/4lw").await.unwrap();
        assert_eq!(four_letter(node.addr, "ruok").await, "imok");
        let srvr = four_letter(node.addr, "srvr").await;
        assert!(srvr.contains("Mode: standalone"), "{srvr}");
        assert!(srvr.starts_with("Zookeeper version: 3.9"), "{srvr}");
        assert!(srvr.contains("Node count:"), "{srvr}");
        let stat = four_letter(node.addr, "stat").await;
        assert!(stat.contains("Clients:"), "{stat}");
        assert!(stat.contains("Mode: standalone"), "{stat}");
        let envi = four_letter(node.addr, "envi").await;
        assert!(envi.contains("zookeeper.version=3.9"), "{envi}");
        let mntr = four_letter(node.addr, "mntr").await;
        assert!(mntr.contains("zk_server_state\tstandalone"), "{mntr}");
        assert!(mntr.contains("zk_version\t3.9"), "{mntr}");
        assert_eq!(four_letter(node.addr, "isro").await, "rw");
        let wchs = four_letter(node.addr, "wchs").await;
        assert!(wchs.contains("Total watches:1"), "{wchs}");
        let dump = four_letter(node.addr, "dump").await;
        assert!(!dump.is_empty());
        assert!(!four_letter(node.addr, "conf").await.is_empty());
        assert!(!four_letter(node.addr, "cons").await.is_empty());
        // The session is untouched by all that.
        c.get_data("/4lw").await.unwrap();
    });
}

#[test]
fn four_letter_whitelist_is_enforced() {
    // Goal: a word outside the whitelist gets ZooKeeper's refusal text; whitelisted ones still answer.
    common::run(async {
        let node = TestNode::start_with(|o| o.four_letter_words = vec!["ruok".into()]);
        assert_eq!(four_letter(node.addr, "ruok").await, "imok");
        let envi = four_letter(node.addr, "envi").await;
        assert_eq!(
            envi,
            "envi is not executed because it is not in the whitelist.\n"
        );
        let c = client(&node).await;
        c.create("/after", b"", &persistent()).await.unwrap();
    });
}
