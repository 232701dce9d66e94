//! LogEntry encoding: round trips, a golden vector, and hostile input.

use corral_proto::Acl;
use corral_store::{LogEntry, Txn, TxnHeader, CONTAINER_OWNER};
use proptest::prelude::*;

fn entry(txn: Txn) -> LogEntry {
    LogEntry {
        hdr: TxnHeader {
            session_id: 0x1234_5678_9abc,
            cxid: -7,
            zxid: 0x5_0000_0009,
            time_ms: 1_700_000_000_000,
        },
        txn,
    }
}

fn every_variant() -> Vec<Txn> {
    let acl = vec![
        Acl::new(31, "world", "anyone"),
        Acl::new(1, "digest", "bob:xyz="),
    ];
    vec![
        Txn::CreateSession {
            timeout_ms: 30_000,
            passwd: vec![9; 16],
        },
        Txn::CloseSession,
        Txn::BindSession {
            tenant: "team-a".into(),
        },
        Txn::Create {
            path: "/a/b-0000000001".into(),
            data: Some(b"data".to_vec()),
            acl: acl.clone(),
            ephemeral_owner: CONTAINER_OWNER,
            parent_cversion: 2,
        },
        Txn::Delete { path: "/a".into() },
        Txn::SetData {
            path: "/a".into(),
            data: Some(vec![]),
            version: 3,
        },
        Txn::SetAcl {
            path: "/a".into(),
            acl: acl.clone(),
            version: 4,
        },
        Txn::Check {
            path: "/a".into(),
            version: -1,
        },
        Txn::Error(-101),
        Txn::Reconfig {
            data: b"server.1=h:1:2:participant;0.0.0.0:3\nversion=500000009".to_vec(),
        },
        Txn::Multi(vec![]),
        Txn::Multi(vec![
            Txn::Check {
                path: "/a".into(),
                version: 1,
            },
            Txn::Create {
                path: "/m".into(),
                data: Some(vec![0, 1]),
                acl,
                ephemeral_owner: 0,
                parent_cversion: 9,
            },
            Txn::Error(-2),
        ]),
    ]
}

#[test]
fn every_txn_variant_round_trips() {
    // Goal: decode(encode(e)) == e for every Txn shape.
    for txn in every_variant() {
        let e = entry(txn);
        assert_eq!(LogEntry::decode(&e.encode()).unwrap(), e);
    }
}

/// Checks that `txn` under a fixed header encodes to the header's bytes
/// followed by `body`, and decodes back.
fn assert_golden(txn: Txn, body: &[u8]) {
    let e = LogEntry {
        hdr: TxnHeader {
            session_id: 1,
            cxid: 2,
            zxid: 0x1_0000_0003,
            time_ms: 4,
        },
        txn,
    };
    let mut want: Vec<u8> = vec![
        1, // format
        0, 0, 0, 0, 0, 0, 0, 1, // session
        0, 0, 0, 2, // cxid
        0, 0, 0, 1, 0, 0, 0, 3, // zxid
        0, 0, 0, 0, 0, 0, 0, 4, // time
    ];
    want.extend_from_slice(body);
    assert_eq!(e.encode(), want);
    assert_eq!(LogEntry::decode(&want).unwrap(), e);
}

#[test]
fn golden_vector_pins_the_format() {
    // Goal: the on-disk format does not drift silently.
    assert_golden(
        Txn::Delete { path: "/a".into() },
        &[
            0, 0, 0, 2, // tag: delete
            0, 0, 0, 2, b'/', b'a',
        ],
    );
}

#[test]
fn golden_vector_pins_the_bind_session_format() {
    // Goal: BindSession is corral's tag -101 plus the tenant name, and is refused inside a multi.
    assert_golden(
        Txn::BindSession { tenant: "t".into() },
        &[
            0xff, 0xff, 0xff, 0x9b, // tag: bind session (-101)
            0, 0, 0, 1, b't',
        ],
    );
    let in_multi = entry(Txn::Multi(vec![Txn::BindSession { tenant: "t".into() }]));
    assert!(LogEntry::decode(&in_multi.encode()).is_err());
}

#[test]
fn truncated_or_extended_input_is_an_error() {
    // Goal: every strict prefix and any trailing byte is refused.
    for txn in every_variant() {
        let b = entry(txn).encode();
        for n in 0..b.len() {
            assert!(LogEntry::decode(&b[..n]).is_err(), "prefix {n} of {b:?}");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(LogEntry::decode(&longer).is_err());
    }
}

#[test]
fn nested_multi_and_unknown_tags_are_refused() {
    // Goal: sub-txns are never Multi; unknown formats and tags are errors.
    let nested = entry(Txn::Multi(vec![Txn::Multi(vec![])])).encode();
    assert!(LogEntry::decode(&nested).is_err());
    let mut b = entry(Txn::CloseSession).encode();
    b[0] = 2;
    assert!(LogEntry::decode(&b).is_err());
    let mut b = entry(Txn::CloseSession).encode();
    let n = b.len();
    b[n - 1] = 99;
    assert!(LogEntry::decode(&b).is_err());
}

proptest! {
    #[test]
    fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        // Goal: decode is total on arbitrary input.
        let _ = LogEntry::decode(&bytes);
        let mut framed = vec![1u8];
        framed.extend_from_slice(&bytes);
        let _ = LogEntry::decode(&framed);
    }

    #[test]
    fn decode_never_panics_on_mutated_entries(idx in 0usize..10, pos in any::<usize>(), val in any::<u8>()) {
        // Goal: single-byte corruption of a valid entry errors or decodes, never panics.
        let mut b = entry(every_variant()[idx].clone()).encode();
        let p = pos % b.len();
        b[p] = val;
        let _ = LogEntry::decode(&b);
    }
}

#[test]
fn null_data_stays_null_through_log_and_apply() {
    // Goal: ZooKeeper keeps null data distinct from empty data; so must the log and the tree.
    use corral_store::{DataTree, LogEntry, Txn, TxnHeader};
    let hdr = TxnHeader {
        session_id: 1,
        cxid: 1,
        zxid: 1,
        time_ms: 5,
    };
    let txn = Txn::Create {
        path: "/n".into(),
        data: None,
        acl: corral_proto::Acl::open_unsafe(),
        ephemeral_owner: 0,
        parent_cversion: 1,
    };
    let e = LogEntry { hdr, txn };
    let back = LogEntry::decode(&e.encode()).unwrap();
    assert_eq!(back, e);
    let mut t = DataTree::new();
    t.apply(&back.hdr, &back.txn);
    assert_eq!(t.get("/n").unwrap().data(), None);
    assert_eq!(t.get("/n").unwrap().stat().data_length, 0);
}
