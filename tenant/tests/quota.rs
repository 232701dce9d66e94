//! Quota decisions at the boundary, the rate limiter on a fake clock, and connection accounting.

use std::net::IpAddr;

use corral_proto::ErrorCode;
use corral_tenant::quota::{self, QuotaDimension, Quotas, Usage};
use corral_tenant::{ConnectionCounter, ConnectionRefused, RateLimiter, TenantError};

fn limits() -> Quotas {
    Quotas {
        max_znodes: Some(10),
        max_data_bytes: Some(100),
        max_ephemerals: Some(3),
        max_sessions: Some(2),
        max_connections: Some(4),
        max_watches: Some(5),
        max_request_rate: Some(50),
        max_bytes_per_znode: Some(40),
    }
}

fn dim(r: Result<(), quota::QuotaError>) -> QuotaDimension {
    let e = r.expect_err("should be refused");
    assert_eq!(e.code(), ErrorCode::QuotaExceeded);
    assert_eq!(TenantError::from(e).code(), ErrorCode::QuotaExceeded);
    e.dimension
}

#[test]
fn znode_count_exactly_at_limit_ok_one_over_refused() {
    // Goal: the 10th znode is allowed and the 11th refused.
    let q = limits();
    let u = Usage {
        znodes: 9,
        ..Usage::default()
    };
    assert!(quota::check_create(&q, &u, 0, false).is_ok());
    let u = Usage {
        znodes: 10,
        ..Usage::default()
    };
    assert_eq!(
        dim(quota::check_create(&q, &u, 0, false)),
        QuotaDimension::Znodes
    );
}

#[test]
fn data_bytes_boundary_on_create() {
    // Goal: data reaching exactly max_data_bytes is fine; one byte more is refused.
    let q = limits();
    let u = Usage {
        data_bytes: 60,
        ..Usage::default()
    };
    assert!(quota::check_create(&q, &u, 40, false).is_ok());
    let u = Usage {
        data_bytes: 61,
        ..Usage::default()
    };
    assert_eq!(
        dim(quota::check_create(&q, &u, 40, false)),
        QuotaDimension::DataBytes
    );
}

#[test]
fn bytes_per_znode_boundary() {
    // Goal: a znode of exactly max_bytes_per_znode is fine on create and setData; one more is refused.
    let q = limits();
    let u = Usage::default();
    assert!(quota::check_create(&q, &u, 40, false).is_ok());
    assert_eq!(
        dim(quota::check_create(&q, &u, 41, false)),
        QuotaDimension::BytesPerZnode
    );
    assert!(quota::check_set_data(&q, &u, 0, 40).is_ok());
    assert_eq!(
        dim(quota::check_set_data(&q, &u, 0, 41)),
        QuotaDimension::BytesPerZnode
    );
}

#[test]
fn ephemerals_only_count_for_ephemeral_creates() {
    // Goal: the 3rd ephemeral is allowed, the 4th refused, and persistent creates ignore the limit.
    let q = limits();
    let u = Usage {
        znodes: 2,
        ephemerals: 2,
        ..Usage::default()
    };
    assert!(quota::check_create(&q, &u, 0, true).is_ok());
    let u = Usage {
        znodes: 3,
        ephemerals: 3,
        ..Usage::default()
    };
    assert_eq!(
        dim(quota::check_create(&q, &u, 0, true)),
        QuotaDimension::Ephemerals
    );
    assert!(quota::check_create(&q, &u, 0, false).is_ok());
}

#[test]
fn set_data_counts_only_growth() {
    // Goal: setData is charged its size difference; shrinking passes even when already over.
    let q = limits();
    let u = Usage {
        data_bytes: 90,
        ..Usage::default()
    };
    assert!(
        quota::check_set_data(&q, &u, 10, 20).is_ok(),
        "90 + 10 = 100, at the limit"
    );
    let e = quota::check_set_data(&q, &u, 10, 21).expect_err("101");
    assert_eq!(
        (e.dimension, e.limit, e.would_be),
        (QuotaDimension::DataBytes, 100, 101)
    );
    let over = Usage {
        data_bytes: 500,
        ..Usage::default()
    };
    assert!(quota::check_set_data(&q, &over, 30, 10).is_ok());
    assert!(quota::check_set_data(&q, &over, 30, 30).is_ok());
}

#[test]
fn sessions_connections_watches_boundaries() {
    // Goal: sessions, connections and watches each allow reaching the limit and refuse passing it.
    let q = limits();
    let at = |sessions, connections, watches| Usage {
        sessions,
        connections,
        watches,
        ..Usage::default()
    };
    assert!(quota::check_session(&q, &at(1, 0, 0)).is_ok());
    assert_eq!(
        dim(quota::check_session(&q, &at(2, 0, 0))),
        QuotaDimension::Sessions
    );
    assert!(quota::check_connection(&q, &at(0, 3, 0)).is_ok());
    assert_eq!(
        dim(quota::check_connection(&q, &at(0, 4, 0))),
        QuotaDimension::Connections
    );
    assert!(quota::check_watches(&q, &at(0, 0, 3), 2).is_ok());
    assert_eq!(
        dim(quota::check_watches(&q, &at(0, 0, 3), 3)),
        QuotaDimension::Watches
    );
    assert!(
        quota::check_watches(&q, &at(0, 0, 5), 0).is_ok(),
        "re-registration adds nothing"
    );
}

#[test]
fn multi_threads_usage_and_stops_at_the_limit() {
    // Goal: prep threading usage through a multi refuses the op that would cross the limit.
    let q = Quotas {
        max_znodes: Some(3),
        ..Quotas::default()
    };
    let mut u = Usage {
        znodes: 1,
        ..Usage::default()
    };
    let mut accepted = 0;
    for _ in 0..5 {
        if quota::check_create(&q, &u, 1, false).is_err() {
            break;
        }
        u = u.after_create(1, false);
        accepted += 1;
    }
    assert_eq!(accepted, 2);
    assert_eq!(u.znodes, 3);
}

#[test]
fn rate_limiter_burst_then_refill_on_fake_clock() {
    // Goal: a full bucket serves `rate` requests at once, then refills at rate/second of fake time.
    let mut r = RateLimiter::new(10, 1_000);
    for i in 0..10 {
        assert!(r.try_acquire(1_000), "token {i}");
    }
    assert!(!r.try_acquire(1_000), "bucket empty");
    assert!(!r.try_acquire(1_099), "0.99 token after 99 ms");
    assert!(r.try_acquire(1_100), "one token after 100 ms");
    assert!(!r.try_acquire(1_100));
    // A long idle period refills only to capacity.
    let later = 1_000_000;
    let granted = (0..100).filter(|_| r.try_acquire(later)).count();
    assert_eq!(granted, 10);
}

#[test]
fn rate_limiter_sub_second_rates_accumulate_fractions() {
    // Goal: at 3/s the fractional refills add up rather than rounding away.
    let mut r = RateLimiter::new(3, 0);
    assert_eq!((0..3).filter(|_| r.try_acquire(0)).count(), 3);
    let mut granted = 0;
    for t in 1..=1_000u64 {
        if r.try_acquire(t) {
            granted += 1;
        }
    }
    assert_eq!(granted, 3, "three tokens over one second, one per ~333 ms");
}

#[test]
fn rate_limiter_ignores_clock_going_back() {
    // Goal: a backwards step refills nothing and does not reset the reference time.
    let mut r = RateLimiter::new(1, 10_000);
    assert!(r.try_acquire(10_000));
    assert!(!r.try_acquire(5_000));
    assert!(!r.try_acquire(10_999));
    assert!(r.try_acquire(11_000));
}

#[test]
fn rate_limiter_throttled_code_and_rate_change() {
    // Goal: refusal maps to ThrottledOp, and lowering the rate clamps saved-up tokens.
    let mut r = RateLimiter::new(100, 0);
    r.set_rate(2, 0);
    assert_eq!(r.available(), 2);
    assert!(r.acquire(0).is_ok());
    assert!(r.acquire(0).is_ok());
    assert_eq!(
        r.acquire(0).expect_err("empty").code(),
        ErrorCode::ThrottledOp
    );
    r.set_rate(100, 0);
    assert_eq!(
        r.available(),
        0,
        "raising the rate does not grant tokens by itself"
    );
    assert!(r.try_acquire(10), "10 ms at 100/s is one token");
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn per_ip_limit_is_hard_and_released() {
    // Goal: the per-IP bound admits exactly N connections from one address and frees a slot on release.
    let mut c = ConnectionCounter::new(Some(2));
    let a = ip("10.0.0.1");
    c.acquire_ip(a).expect("1");
    c.acquire_ip(a).expect("2");
    assert_eq!(
        c.acquire_ip(a),
        Err(ConnectionRefused::PerIp { ip: a, limit: 2 })
    );
    c.acquire_ip(ip("10.0.0.2"))
        .expect("other address unaffected");
    assert_eq!(c.ip_count(a), 2);
    c.release_ip(a);
    c.acquire_ip(a).expect("slot freed");
    assert_eq!(c.total(), 3);
    c.release_ip(a);
    c.release_ip(a);
    c.release_ip(ip("10.0.0.2"));
    assert_eq!(
        (c.total(), c.distinct_ips()),
        (0, 0),
        "maps shrink to live entries"
    );
}

#[test]
fn unlimited_per_ip() {
    // Goal: no per-IP bound admits many connections from one address.
    let mut c = ConnectionCounter::new(None);
    for _ in 0..1000 {
        c.acquire_ip(ip("::1")).expect("unlimited");
    }
    assert_eq!(c.ip_count(ip("::1")), 1000);
}

#[test]
fn per_tenant_limit_uses_quota() {
    // Goal: a tenant's max_connections is exact and independent of other tenants.
    let mut c = ConnectionCounter::new(None);
    for _ in 0..3 {
        c.acquire_tenant("a", Some(3)).expect("within quota");
    }
    match c.acquire_tenant("a", Some(3)) {
        Err(ConnectionRefused::TenantQuota(e)) => {
            assert_eq!(
                (e.dimension, e.limit, e.would_be),
                (QuotaDimension::Connections, 3, 4)
            );
        }
        other => panic!("expected a quota refusal, got {other:?}"),
    }
    c.acquire_tenant("b", Some(1)).expect("other tenant");
    c.release_tenant("a");
    c.acquire_tenant("a", Some(3)).expect("slot freed");
    assert_eq!(c.tenant_count("a"), 3);
}

#[test]
#[should_panic(expected = "never acquired")]
fn release_without_acquire_panics() {
    // Goal: a double release is a bookkeeping bug and crashes loudly.
    let mut c = ConnectionCounter::new(None);
    c.release_ip(ip("10.0.0.1"));
}
