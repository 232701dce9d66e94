//! Connection accounting on one serving node: per client IP (ZooKeeper's
//! `maxClientCnxns`) and per tenant (the `max_connections` quota).
//!
//! The counter is explicit, not RAII: the connection task calls `acquire_*`
//! when it admits a connection and the matching `release_*` exactly once when it
//! ends, so the counts survive being moved across tasks and are easy to audit.
//! Limits are hard: a count never exceeds its bound, and `acquire_*` refuses at
//! the bound. Releasing what was never acquired is a bookkeeping bug and panics.
//! Entries are removed when their count reaches zero, so the maps hold only
//! addresses and tenants with live connections.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::quota::{check_limit, QuotaDimension, QuotaError};

/// Why a connection was refused at accept or at tenant bind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionRefused {
    /// The global per-IP bound (`maxClientCnxns` equivalent).
    #[error("too many connections from {ip} (limit {limit})")]
    PerIp { ip: IpAddr, limit: u64 },
    /// The tenant's `max_connections` quota.
    #[error(transparent)]
    TenantQuota(#[from] QuotaError),
}

/// Live connection counts per client IP and per tenant.
#[derive(Debug, Default)]
pub struct ConnectionCounter {
    per_ip_max: Option<u64>,
    by_ip: HashMap<IpAddr, u64>,
    by_tenant: HashMap<String, u64>,
}

impl ConnectionCounter {
    /// `per_ip_max` of `None` means unlimited (ZooKeeper's `maxClientCnxns=0`).
    pub fn new(per_ip_max: Option<u64>) -> ConnectionCounter {
        ConnectionCounter {
            per_ip_max,
            ..ConnectionCounter::default()
        }
    }

    /// Changes the per-IP bound; existing connections above it stay, new ones wait.
    pub fn set_per_ip_max(&mut self, per_ip_max: Option<u64>) {
        self.per_ip_max = per_ip_max;
    }

    /// Admits one more connection from `ip`, at accept time.
    pub fn acquire_ip(&mut self, ip: IpAddr) -> Result<(), ConnectionRefused> {
        let count = self.by_ip.get(&ip).copied().unwrap_or(0);
        if let Some(limit) = self.per_ip_max {
            if count >= limit {
                return Err(ConnectionRefused::PerIp { ip, limit });
            }
        }
        self.by_ip.insert(ip, count + 1);
        Ok(())
    }

    /// Releases one connection from `ip`.
    pub fn release_ip(&mut self, ip: IpAddr) {
        release(&mut self.by_ip, &ip, "ip");
    }

    /// Admits one more connection bound to `tenant`, at bind time, against the
    /// tenant's `max_connections` (`None` = unlimited).
    pub fn acquire_tenant(
        &mut self,
        tenant: &str,
        max_connections: Option<u64>,
    ) -> Result<(), ConnectionRefused> {
        let count = self.tenant_count(tenant);
        check_limit(QuotaDimension::Connections, max_connections, count, 1)?;
        self.by_tenant.insert(tenant.to_string(), count + 1);
        Ok(())
    }

    /// Releases one connection bound to `tenant`.
    pub fn release_tenant(&mut self, tenant: &str) {
        let Some(count) = self.by_tenant.get_mut(tenant) else {
            panic!("release of a tenant connection never acquired: {tenant:?}");
        };
        *count -= 1;
        if *count == 0 {
            self.by_tenant.remove(tenant);
        }
    }

    pub fn ip_count(&self, ip: IpAddr) -> u64 {
        self.by_ip.get(&ip).copied().unwrap_or(0)
    }

    pub fn tenant_count(&self, tenant: &str) -> u64 {
        self.by_tenant.get(tenant).copied().unwrap_or(0)
    }

    /// Connections counted over all addresses.
    pub fn total(&self) -> u64 {
        self.by_ip.values().sum()
    }

    /// Number of addresses with live connections (the map's size).
    pub fn distinct_ips(&self) -> usize {
        self.by_ip.len()
    }
}

fn release(map: &mut HashMap<IpAddr, u64>, key: &IpAddr, what: &str) {
    let Some(count) = map.get_mut(key) else {
        panic!("release of a {what} connection never acquired: {key}");
    };
    *count -= 1;
    if *count == 0 {
        map.remove(key);
    }
}
