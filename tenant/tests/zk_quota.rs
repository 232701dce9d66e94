//! ZooKeeper's `/zookeeper/quota` format: round trips against strings zkCli writes, and hard/soft checks.

use corral_proto::ErrorCode;
use corral_tenant::zk_quota::{self, StatsTrack, ZkQuotaOutcome};
use corral_tenant::QuotaDimension;

#[test]
fn zkcli_strings_round_trip_exactly() {
    // Goal: every string zkCli / the server writes parses and prints back byte for byte.
    for s in [
        // zkCli 3.4-3.6 `setquota -n 10` and `-b 1000`.
        "count=10,bytes=-1",
        "count=-1,bytes=1000",
        // The stats node.
        "count=0,bytes=0",
        "count=1,bytes=5",
        // zkCli 3.7+ `setquota -n 10`, `-N 10`, `-B 1024`.
        "count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
        "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=10",
        "count=-1,bytes=-1=;byteHardLimit=1024;countHardLimit=-1",
    ] {
        let t = StatsTrack::parse(s).expect(s);
        assert_eq!(t.to_string(), s);
        assert_eq!(StatsTrack::parse_bytes(&t.to_bytes()).expect("bytes"), t);
    }
}

#[test]
fn builders_match_what_zkcli_writes() {
    // Goal: the limits/stats constructors produce zkCli 3.7's exact text.
    assert_eq!(
        StatsTrack::limits(Some(10), None, None, None).to_string(),
        "count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"
    );
    assert_eq!(
        StatsTrack::limits(None, None, Some(5), Some(2048)).to_string(),
        "count=-1,bytes=-1=;byteHardLimit=2048;countHardLimit=5"
    );
    assert_eq!(StatsTrack::stats(3, 12).to_string(), "count=3,bytes=12");
}

#[test]
fn accessors_read_the_fields() {
    // Goal: values come out of the right keys, and missing keys read as -1.
    let t = StatsTrack::parse("count=-1,bytes=-1=;byteHardLimit=1024;countHardLimit=10")
        .expect("parse");
    assert_eq!(
        (
            t.count(),
            t.bytes(),
            t.count_hard_limit(),
            t.byte_hard_limit()
        ),
        (-1, -1, 10, 1024)
    );
    let old = StatsTrack::parse("count=10,bytes=-1").expect("parse");
    assert_eq!((old.count_hard_limit(), old.byte_hard_limit()), (-1, -1));
    let empty = StatsTrack::parse("").expect("empty");
    assert_eq!(empty.count(), -1);
    assert_eq!(empty.to_string(), "count=-1,bytes=-1");
}

#[test]
fn lenient_forms_parse_like_zookeeper() {
    // Goal: ';' and ',' runs separate, an empty value is -1, unknown keys survive sorted.
    let t = StatsTrack::parse("count=1;;bytes=2,,zeta=9;alpha=+3").expect("parse");
    assert_eq!(
        (t.count(), t.bytes(), t.get("zeta"), t.get("alpha")),
        (1, 2, 9, 3)
    );
    assert_eq!(t.to_string(), "count=1,bytes=2=;alpha=3;zeta=9");
    assert_eq!(
        StatsTrack::parse("count==5,bytes=1")
            .expect("parse")
            .count(),
        -1
    );
    assert_eq!(
        StatsTrack::parse("count=4,bytes=5,")
            .expect("trailing")
            .bytes(),
        5
    );
}

#[test]
fn malformed_strings_are_refused() {
    // Goal: text ZooKeeper's parser would throw on is an error, never a silent default.
    for bad in [
        "count",
        "count=x",
        ",count=1",
        "count=1,bytes",
        "count=9223372036854775808",
        "count=1.5",
    ] {
        let e = StatsTrack::parse(bad).expect_err(bad);
        assert_eq!(e.code(), ErrorCode::BadArguments, "{bad}");
    }
    assert!(StatsTrack::parse_bytes(&[0xff, 0xfe]).is_err());
}

#[test]
fn quota_paths() {
    // Goal: the limit and stat node paths follow ZooKeeper's Quotas layout.
    assert_eq!(
        zk_quota::limit_path("/app"),
        "/zookeeper/quota/app/zookeeper_limits"
    );
    assert_eq!(
        zk_quota::stat_path("/app/x"),
        "/zookeeper/quota/app/x/zookeeper_stats"
    );
}

#[test]
fn hard_count_limit_refuses_one_over() {
    // Goal: with countHardLimit=3, reaching 3 is fine and the 4th create is QuotaExceeded.
    let limits = StatsTrack::limits(None, None, Some(3), None);
    assert_eq!(
        zk_quota::check_zk_quota(&limits, &StatsTrack::stats(2, 0), 1, 0),
        Ok(ZkQuotaOutcome::Ok)
    );
    let e = zk_quota::check_zk_quota(&limits, &StatsTrack::stats(3, 0), 1, 0).expect_err("over");
    assert_eq!(
        (e.dimension, e.limit, e.would_be),
        (QuotaDimension::ZkCount, 3, 4)
    );
    assert_eq!(e.code(), ErrorCode::QuotaExceeded);
}

#[test]
fn hard_byte_limit_on_set_data() {
    // Goal: byteHardLimit refuses a new total past it (even a shrink, as ZooKeeper does) but never a zero diff.
    let limits =
        StatsTrack::parse("count=-1,bytes=-1=;byteHardLimit=100;countHardLimit=-1").expect("parse");
    let stats = StatsTrack::stats(5, 90);
    assert_eq!(
        zk_quota::check_zk_quota(&limits, &stats, 0, 10),
        Ok(ZkQuotaOutcome::Ok)
    );
    let e = zk_quota::check_zk_quota(&limits, &stats, 0, 11).expect_err("over");
    assert_eq!(e.dimension, QuotaDimension::ZkBytes);
    let over = StatsTrack::stats(5, 500);
    assert!(
        zk_quota::check_zk_quota(&limits, &over, 0, -10).is_err(),
        "490 is still over 100"
    );
    assert_eq!(
        zk_quota::check_zk_quota(&limits, &stats, 0, -10),
        Ok(ZkQuotaOutcome::Ok)
    );
    assert_eq!(
        zk_quota::check_zk_quota(&limits, &over, 0, 0),
        Ok(ZkQuotaOutcome::Ok)
    );
}

#[test]
fn soft_limits_only_warn_and_hard_takes_precedence() {
    // Goal: a soft limit reports but allows; when both are set the hard one decides.
    let soft = StatsTrack::parse("count=2,bytes=-1").expect("parse");
    assert_eq!(
        zk_quota::check_zk_quota(&soft, &StatsTrack::stats(2, 0), 1, 0),
        Ok(ZkQuotaOutcome::SoftExceeded {
            dimension: QuotaDimension::ZkCount,
            limit: 2,
            would_be: 3
        })
    );
    let both = StatsTrack::limits(Some(2), None, Some(5), None);
    assert_eq!(
        zk_quota::check_zk_quota(&both, &StatsTrack::stats(2, 0), 1, 0),
        Ok(ZkQuotaOutcome::Ok)
    );
    assert!(zk_quota::check_zk_quota(&both, &StatsTrack::stats(5, 0), 1, 0).is_err());
    let none = StatsTrack::parse("count=-1,bytes=-1").expect("parse");
    assert_eq!(
        zk_quota::check_zk_quota(&none, &StatsTrack::stats(1_000, 1_000), 1, 1),
        Ok(ZkQuotaOutcome::Ok)
    );
}

#[test]
fn longest_quota_prefix_first() {
    // Goal: candidates for the governing quota run from the path itself up to its top segment.
    let v: Vec<&str> = zk_quota::quota_prefixes("/app/x/y").collect();
    assert_eq!(v, ["/app/x/y", "/app/x", "/app"]);
}
