//! Prep: turns a write request into a [`Txn`] (or an error txn) against the
//! latest state, which is the applied tree plus the changes of txns already
//! prepped but not yet applied (the pending overlay, ZooKeeper's
//! "outstanding changes"). Checks run in ZooKeeper's order so the first error
//! a client sees is the one ZooKeeper would give.
//!
//! Every failed write still becomes a txn (`Txn::Error`) and consumes a zxid,
//! as in ZooKeeper, so zxids stay comparable between the two servers.
//!
//! Tenancy rules (see [`crate::tenancy`]), after ZooKeeper's own checks:
//! - `/zookeeper/corral` and below are super's alone (`NoAuth` otherwise).
//! - A write of a tenant record `/zookeeper/corral/tenants/<name>` must parse,
//!   name its own node and fit the registry as it will be once the pending
//!   txns apply (`BadArguments` otherwise); the canonical JSON is stored.
//! - A create or setData below a tenant root is checked against the tenant's
//!   tree quotas with usage = the tree's counters plus the pending txns' net
//!   change (`QuotaExceeded`), so racing writers never pass a limit.
//!
//! - A session's tenant binding (`BindSession`, see
//!   [`crate::tenancy::bind`]) needs a live session; binding it again to its
//!   tenant changes nothing, to another is `AuthFailed`, as is a tenant that
//!   does not exist; the tenant's `max_sessions` counts the bound sessions
//!   in the tree plus the pending binds (`QuotaExceeded`), so binds racing
//!   in from every node never pass the limit. Pending closes are not
//!   credited: a slot frees when the close applies.
//!
//! ZooKeeper's own path quotas (`/zookeeper/quota`, see
//! [`corral_tenant::zk_quota`]) are checked as ZooKeeper 3.8 does with
//! `zookeeper.enforceQuota=true`, which corral always is: every create
//! (all create opcodes, in a multi too) and setData is judged against the
//! quota of the path's longest prefix with a limits node, in ZooKeeper's
//! place (a create after the ephemeral-parent check, a setData before the
//! version check). Over a hard limit is `QuotaExceeded`; over a soft one only
//! logs a warning. A limits text that does not parse fails the request with
//! `MarshallingError`, as ZooKeeper's unchecked parse exception does (for a
//! multi, the whole request). No stats node, no check. The limits and the
//! quota roots are read from the applied tree, as ZooKeeper reads its
//! `DataTree`; unlike ZooKeeper, the usage also counts the pending txns and
//! the earlier ops of the same multi, so pipelined writers or one multi cannot
//! pass a hard limit together. Path quotas and tenant quotas both apply.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use corral_auth::Principal;
use corral_proto::opcode::perms;
use corral_proto::request::{
    CheckVersionRequest, CreateRequest, DeleteRequest, ReconfigRequest, SetAclRequest,
    SetDataRequest,
};
use corral_proto::{Acl, CreateMode, ErrorCode, MultiOp, OpCode, Request, Stat};
use corral_store::ensemble::CONFIG_NODE;
use corral_store::{DataTree, NodeKind, Txn};
use corral_tenant::zk_quota::{self, StatsTrack, ZkQuotaOutcome};
use corral_tenant::{Quotas, Registry, Tenant, Usage, REGISTRY_ROOT};

use crate::tenancy::{is_reserved, is_super, Directory, DirectoryHandle};

/// What prep knows of a node: its stat (with the live child count), its ACL,
/// and the persisted cversion (the number of child creates, which drives
/// sequence numbers; clients see `2 * persisted - numChildren`).
#[derive(Clone, Debug)]
struct Rec {
    stat: Stat,
    acl: Arc<[Acl]>,
    cversion: i32,
}

/// Changes of prepped-but-unapplied txns, keyed by path (`None` = deleted),
/// each with the zxid of the txn that made it.
#[derive(Default, Clone)]
pub struct Pending {
    recs: HashMap<String, (i64, Option<Rec>)>,
    /// Ephemerals created by pending txns, per session, so a pending
    /// closeSession also hides them.
    ephemerals: HashMap<i64, Vec<(i64, String)>>,
    /// `recs` changes in zxid order, so applied ones can be dropped.
    order: VecDeque<(i64, String)>,
    /// Net usage change of pending txns per namespace root.
    usage: Charges,
    /// Net change of pending txns per ZooKeeper quota root (`znodes` is the
    /// stats `count`, `data_bytes` its `bytes`).
    zk_usage: Charges,
    /// Registry records written by pending txns (`None`: deleted), by name.
    tenants: HashMap<String, (i64, Option<Tenant>)>,
    tenants_order: VecDeque<(i64, String)>,
    /// The configuration text of a pending reconfig, with its zxid.
    config: Option<(i64, Vec<u8>)>,
    /// Session binds of pending txns.
    binds: PendingBinds,
}

/// Sessions bound by pending txns: by session, per tenant, and in zxid order
/// so applied ones can be taken out again.
#[derive(Default, Clone)]
struct PendingBinds {
    by_session: HashMap<i64, String>,
    per_tenant: HashMap<String, u64>,
    log: VecDeque<(i64, i64)>,
}

impl PendingBinds {
    fn bind(&mut self, zxid: i64, session_id: i64, tenant: &str) {
        self.by_session.insert(session_id, tenant.to_string());
        *self.per_tenant.entry(tenant.to_string()).or_insert(0) += 1;
        self.log.push_back((zxid, session_id));
    }

    fn count(&self, tenant: &str) -> u64 {
        self.per_tenant.get(tenant).copied().unwrap_or(0)
    }

    fn applied_through(&mut self, zxid: i64) {
        while self.log.front().is_some_and(|(z, _)| *z <= zxid) {
            let Some((_, session_id)) = self.log.pop_front() else {
                break;
            };
            let Some(tenant) = self.by_session.remove(&session_id) else {
                continue;
            };
            if let Some(n) = self.per_tenant.get_mut(&tenant) {
                *n -= 1;
                if *n == 0 {
                    self.per_tenant.remove(&tenant);
                }
            }
        }
    }
}

/// Net usage changes of pending txns per root, and the changes by zxid so
/// applied ones can be taken out again.
#[derive(Default, Clone)]
struct Charges {
    sum: HashMap<String, UsageDelta>,
    log: VecDeque<(i64, String, UsageDelta)>,
}

impl Charges {
    fn charge(&mut self, zxid: i64, root: &str, d: UsageDelta) {
        let sum = self.get(root).plus(d);
        self.sum.insert(root.to_string(), sum);
        self.log.push_back((zxid, root.to_string(), d));
    }

    /// The net change of `root`.
    fn get(&self, root: &str) -> UsageDelta {
        self.sum.get(root).copied().unwrap_or_default()
    }

    fn applied_through(&mut self, zxid: i64) {
        while self.log.front().is_some_and(|(z, _, _)| *z <= zxid) {
            let Some((_, root, d)) = self.log.pop_front() else {
                break;
            };
            let left = self.get(&root).minus(d);
            if left == UsageDelta::default() {
                self.sum.remove(&root);
            } else {
                self.sum.insert(root, left);
            }
        }
    }

    fn clear(&mut self) {
        self.sum.clear();
        self.log.clear();
    }
}

/// A change of a namespace's usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct UsageDelta {
    znodes: i64,
    data_bytes: i64,
    ephemerals: i64,
}

impl UsageDelta {
    fn plus(self, o: UsageDelta) -> UsageDelta {
        UsageDelta {
            znodes: self.znodes + o.znodes,
            data_bytes: self.data_bytes + o.data_bytes,
            ephemerals: self.ephemerals + o.ephemerals,
        }
    }

    fn minus(self, o: UsageDelta) -> UsageDelta {
        self.plus(UsageDelta {
            znodes: -o.znodes,
            data_bytes: -o.data_bytes,
            ephemerals: -o.ephemerals,
        })
    }

    fn applied_to(self, u: corral_store::NamespaceUsage) -> Usage {
        let add = |base: u64, d: i64| base.saturating_add_signed(d);
        Usage {
            znodes: add(u.znodes, self.znodes),
            data_bytes: add(u.data_bytes, self.data_bytes),
            ephemerals: add(u.ephemerals, self.ephemerals),
            ..Usage::default()
        }
    }
}

impl Pending {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn clear(&mut self) {
        self.recs.clear();
        self.ephemerals.clear();
        self.order.clear();
        self.usage.clear();
        self.zk_usage.clear();
        self.tenants.clear();
        self.tenants_order.clear();
        self.config = None;
        self.binds = PendingBinds::default();
    }

    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.recs.len()
    }

    /// Forgets the changes of txns up to `zxid`: the tree now shows them.
    /// A leader with proposals in flight calls this as each commits
    /// (ZooKeeper drops its outstanding changes the same way).
    pub fn applied_through(&mut self, zxid: i64) {
        if self.config.as_ref().is_some_and(|(z, _)| *z <= zxid) {
            self.config = None;
        }
        while self.order.front().is_some_and(|(z, _)| *z <= zxid) {
            let Some((_, path)) = self.order.pop_front() else {
                break;
            };
            if self.recs.get(&path).is_some_and(|(z, _)| *z <= zxid) {
                self.recs.remove(&path);
            }
        }
        self.ephemerals.retain(|_, paths| {
            paths.retain(|(z, _)| *z > zxid);
            !paths.is_empty()
        });
        self.usage.applied_through(zxid);
        self.zk_usage.applied_through(zxid);
        self.binds.applied_through(zxid);
        while self.tenants_order.front().is_some_and(|(z, _)| *z <= zxid) {
            let Some((_, name)) = self.tenants_order.pop_front() else {
                break;
            };
            if self.tenants.get(&name).is_some_and(|(z, _)| *z <= zxid) {
                self.tenants.remove(&name);
            }
        }
    }

    fn get(&self, tree: &DataTree, path: &str) -> Option<Rec> {
        match self.recs.get(path) {
            Some((_, r)) => r.clone(),
            None => tree.get(path).map(|n| Rec {
                stat: n.stat(),
                acl: n.acl().clone(),
                cversion: n.persisted_cversion(),
            }),
        }
    }
}

/// Options that change prep's answers.
#[derive(Clone, Debug)]
pub struct PrepOptions {
    pub ttl_enabled: bool,
    /// The tenant registry, for record validation and tree quotas.
    pub directory: DirectoryHandle,
    /// `reconfig` is allowed (ZooKeeper's `reconfigEnabled`).
    pub reconfig_enabled: bool,
    /// The ensemble the node started with; `None` standalone.
    pub ensemble: Option<Arc<corral_store::Ensemble>>,
}

impl PrepOptions {
    /// No tenants; TTL nodes as given.
    pub fn new(ttl_enabled: bool) -> PrepOptions {
        PrepOptions {
            ttl_enabled,
            directory: Default::default(),
            reconfig_enabled: false,
            ensemble: None,
        }
    }

    /// The options of a node: its TTL setting and its tenant registry.
    pub fn for_node(shared: &crate::state::Shared) -> PrepOptions {
        PrepOptions {
            ttl_enabled: shared.opts.ttl_nodes_enabled,
            directory: shared.tenancy.directory_handle(),
            reconfig_enabled: shared.opts.reconfig_enabled,
            ensemble: shared.opts.ensemble.clone(),
        }
    }

    fn directory(&self) -> Arc<Directory> {
        self.directory.read().map(|d| d.clone()).unwrap_or_default()
    }
}

type PrepResult<T> = Result<T, ErrorCode>;

/// The paths ZooKeeper refuses to delete.
fn is_special(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

/// One prep context: a tree (read-locked by the caller) plus the overlay.
pub struct Prep<'a> {
    pub tree: &'a DataTree,
    pub pending: &'a mut Pending,
    pub opts: &'a PrepOptions,
    pub session_id: i64,
    pub principals: &'a [Principal],
    pub zxid: i64,
    pub time_ms: i64,
}

fn check_version(current: i32, expected: i32) -> PrepResult<i32> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    // ZOOKEEPER-4743: never hand out -1 as a version.
    Ok(match current.wrapping_add(1) {
        -1 => 0,
        v => v,
    })
}

fn validate(path: &str) -> PrepResult<()> {
    corral_store::validate_path(path, false).map_err(|_| ErrorCode::BadArguments)
}

/// Parent of `path` for create/delete, with ZooKeeper's light checks.
fn parent_of(path: &str) -> PrepResult<&str> {
    if !path.contains('/') || path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    Ok(corral_store::parent(path))
}

impl<'a> Prep<'a> {
    fn get(&self, path: &str) -> PrepResult<Rec> {
        self.pending.get(self.tree, path).ok_or(ErrorCode::NoNode)
    }

    fn exists(&self, path: &str) -> bool {
        self.pending.get(self.tree, path).is_some()
    }

    fn check_acl(&self, acl: &[Acl], perm: i32) -> PrepResult<()> {
        if corral_auth::check(acl, perm, self.principals) {
            Ok(())
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    fn put(&mut self, path: &str, rec: Option<Rec>) {
        self.pending.recs.insert(path.to_string(), (self.zxid, rec));
        self.pending.order.push_back((self.zxid, path.to_string()));
    }

    /// Preps one client write. Never fails: errors become `Txn::Error`.
    pub fn request(&mut self, op: OpCode, req: &Request) -> Txn {
        let r = match req {
            Request::Create(op, c) => self.create(*op, c),
            Request::Delete(d) => self.delete(d),
            Request::DeleteContainer(p) => self.delete_container(p),
            Request::SetData(s) => self.set_data(s),
            Request::SetAcl(s) => self.set_acl(s),
            Request::Check(c) => self.check(c),
            Request::Multi(ops) => return self.multi(ops),
            Request::Reconfig(r) => self.reconfig(r),
            Request::CloseSession => Ok(self.close_session(self.session_id)),
            _ => {
                debug_assert!(false, "prep given a non-write {op:?}");
                Err(ErrorCode::Unimplemented)
            }
        };
        r.unwrap_or_else(|e| Txn::Error(e.code()))
    }

    fn create(&mut self, op: OpCode, c: &CreateRequest) -> PrepResult<Txn> {
        let mode = CreateMode::from_flags(c.flags).ok_or(ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.opts.ttl_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl = if op == OpCode::CreateTtl { c.ttl } else { -1 };
        let ttl_owner = validate_ttl(mode, ttl)?;
        let parent_path = parent_of(&c.path)?;
        self.guard_reserved(&c.path)?;
        let acl = corral_auth::fixup_acl(&c.acl, self.principals).map_err(|e| e.code())?;
        let mut parent = self.get(if parent_path.is_empty() {
            "/"
        } else {
            parent_path
        })?;
        self.check_acl(&parent.acl, perms::CREATE)?;
        let path = if mode.is_sequential() {
            format!("{}{:010}", c.path, parent.cversion)
        } else {
            c.path.clone()
        };
        validate(&path)?;
        if self.exists(&path) {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(
            NodeKind::from_owner(parent.stat.ephemeral_owner),
            NodeKind::Ephemeral(_)
        ) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let owner = match (op, ttl_owner) {
            (OpCode::CreateContainer, _) => corral_store::CONTAINER_OWNER,
            (OpCode::CreateTtl, Some(o)) => o,
            _ if mode.is_ephemeral() => self.session_id,
            _ => 0,
        };
        let data = match self.record(&path, c.data.as_deref(), Some(mode))? {
            Some(canonical) => Some(canonical),
            None => c.data.clone(),
        };
        let ephemeral = matches!(NodeKind::from_owner(owner), NodeKind::Ephemeral(_));
        let data_len = data.as_ref().map_or(0, |d| d.len()) as u64;
        let zk_charge = self.check_path_quota(&path, 1, data_len as i64)?;
        self.charge_create(&path, data_len, ephemeral)?;
        self.charge_path_quota(zk_charge);
        let parent_cversion = parent.cversion.wrapping_add(1);
        parent.cversion = parent_cversion;
        parent.stat.num_children += 1;
        parent.stat.pzxid = self.zxid;
        let parent_key = corral_store::parent(&path).to_string();
        self.put(&parent_key, Some(parent));
        let stat = Stat {
            czxid: self.zxid,
            mzxid: self.zxid,
            ctime: self.time_ms,
            mtime: self.time_ms,
            ephemeral_owner: owner,
            data_length: data_len as i32,
            pzxid: self.zxid,
            ..Stat::default()
        };
        let acl_arc: Arc<[Acl]> = acl.clone().into();
        self.put(
            &path,
            Some(Rec {
                stat,
                acl: acl_arc,
                cversion: 0,
            }),
        );
        if owner == self.session_id && owner != 0 {
            self.pending
                .ephemerals
                .entry(owner)
                .or_default()
                .push((self.zxid, path.clone()));
        }
        Ok(Txn::Create {
            path,
            data,
            acl,
            ephemeral_owner: owner,
            parent_cversion,
        })
    }

    fn remove_node(&mut self, path: &str) -> PrepResult<()> {
        if let Ok(node) = self.get(path) {
            self.credit_delete(path, &node.stat);
        }
        self.forget_record(path);
        let parent_key = corral_store::parent(path).to_string();
        let mut parent = self.get(&parent_key)?;
        parent.stat.num_children -= 1;
        parent.stat.pzxid = self.zxid;
        self.put(&parent_key, Some(parent));
        self.put(path, None);
        Ok(())
    }

    fn delete(&mut self, d: &DeleteRequest) -> PrepResult<Txn> {
        let parent_path = parent_of(&d.path)?;
        if is_special(&d.path) {
            return Err(ErrorCode::BadArguments);
        }
        self.guard_reserved(&d.path)?;
        let parent = self.get(if parent_path.is_empty() {
            "/"
        } else {
            parent_path
        })?;
        self.check_acl(&parent.acl, perms::DELETE)?;
        let node = self.get(&d.path)?;
        check_version(node.stat.version, d.version)?;
        if node.stat.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove_node(&d.path)?;
        Ok(Txn::Delete {
            path: d.path.clone(),
        })
    }

    fn delete_container(&mut self, path: &str) -> PrepResult<Txn> {
        parent_of(path)?;
        if is_special(path) {
            return Err(ErrorCode::BadArguments);
        }
        self.guard_reserved(path)?;
        let node = self.get(path)?;
        if node.stat.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        if matches!(
            NodeKind::from_owner(node.stat.ephemeral_owner),
            NodeKind::Ephemeral(_)
        ) {
            return Err(ErrorCode::BadVersion);
        }
        self.remove_node(path)?;
        Ok(Txn::Delete {
            path: path.to_string(),
        })
    }

    fn set_data(&mut self, s: &SetDataRequest) -> PrepResult<Txn> {
        validate(&s.path)?;
        self.guard_reserved(&s.path)?;
        let mut node = self.get(&s.path)?;
        self.check_acl(&node.acl, perms::WRITE)?;
        let old_len = node.stat.data_length.max(0) as u64;
        let request_len = s.data.as_ref().map_or(0, |d| d.len()) as i64;
        // ZooKeeper checks the quota on the request's data, before the version.
        let zk_charge = self.check_path_quota(&s.path, 0, request_len - old_len as i64)?;
        let version = check_version(node.stat.version, s.version)?;
        let data = match self.record(&s.path, s.data.as_deref(), None)? {
            Some(canonical) => Some(canonical),
            None => s.data.clone(),
        };
        let new_len = data.as_ref().map_or(0, |d| d.len()) as u64;
        self.charge_set_data(&s.path, old_len, new_len)?;
        // What apply will count (a tenant record is stored canonical).
        self.charge_path_quota(zk_charge.map(|(root, mut d)| {
            d.data_bytes = new_len as i64 - old_len as i64;
            (root, d)
        }));
        node.stat.version = version;
        node.stat.mzxid = self.zxid;
        node.stat.mtime = self.time_ms;
        node.stat.data_length = new_len as i32;
        self.put(&s.path, Some(node));
        Ok(Txn::SetData {
            path: s.path.clone(),
            data,
            version,
        })
    }

    /// See [`crate::reconfig`].
    fn reconfig(&mut self, r: &ReconfigRequest) -> PrepResult<Txn> {
        if !self.opts.reconfig_enabled {
            return Err(ErrorCode::ReconfigDisabled);
        }
        // ZooKeeper: "standalone mode - reconfiguration currently not supported".
        let Some(bootstrap) = self.opts.ensemble.clone() else {
            return Err(ErrorCode::Unimplemented);
        };
        let text = match &self.pending.config {
            Some((_, pending)) => Some(pending.as_slice()),
            None => self.tree.config_data(),
        };
        let current = crate::reconfig::current(text, &bootstrap);
        let mut next = crate::reconfig::next(&current, r)?;
        next.version = self.zxid;
        let mut node = self.get(CONFIG_NODE)?;
        self.check_acl(&node.acl, perms::WRITE)?;
        let data = next.to_text().into_bytes();
        node.stat.version = -1;
        node.stat.mzxid = self.zxid;
        node.stat.mtime = self.time_ms;
        node.stat.data_length = data.len() as i32;
        self.put(CONFIG_NODE, Some(node));
        self.pending.config = Some((self.zxid, data.clone()));
        Ok(Txn::Reconfig { data })
    }

    fn set_acl(&mut self, s: &SetAclRequest) -> PrepResult<Txn> {
        validate(&s.path)?;
        self.guard_reserved(&s.path)?;
        let acl = corral_auth::fixup_acl(&s.acl, self.principals).map_err(|e| e.code())?;
        let mut node = self.get(&s.path)?;
        self.check_acl(&node.acl, perms::ADMIN)?;
        let version = check_version(node.stat.aversion, s.version)?;
        node.stat.aversion = version;
        node.acl = acl.clone().into();
        self.put(&s.path, Some(node));
        Ok(Txn::SetAcl {
            path: s.path.clone(),
            acl,
            version,
        })
    }

    fn check(&mut self, c: &CheckVersionRequest) -> PrepResult<Txn> {
        validate(&c.path)?;
        self.guard_reserved(&c.path)?;
        let node = self.get(&c.path)?;
        self.check_acl(&node.acl, perms::READ)?;
        check_version(node.stat.version, c.version)?;
        Ok(Txn::Check {
            path: c.path.clone(),
            version: c.version,
        })
    }

    /// corral's reserved subtree is super's alone, whatever its ACLs say.
    fn guard_reserved(&self, path: &str) -> PrepResult<()> {
        if is_reserved(path) && !is_super(self.principals) {
            return Err(ErrorCode::NoAuth);
        }
        Ok(())
    }

    /// Validates a write of `data` to `path` when `path` is a tenant record
    /// (`mode` given for creates); returns the record's canonical JSON, which
    /// is what gets stored. `None` when `path` is not a record. Anything else
    /// below the registry root is refused: the subtree holds records only.
    fn record(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        mode: Option<CreateMode>,
    ) -> PrepResult<Option<Vec<u8>>> {
        let Some(name) = record_name(path)? else {
            return Ok(None);
        };
        if mode.is_some_and(|m| m != CreateMode::Persistent) {
            return Err(ErrorCode::BadArguments);
        }
        let bad = |e: corral_tenant::TenantError| {
            tracing::info!(record = %path, error = %e, "refusing a tenant record");
            ErrorCode::BadArguments
        };
        let tenant = Tenant::from_json(data.unwrap_or_default()).map_err(bad)?;
        if tenant.name != name {
            return Err(ErrorCode::BadArguments);
        }
        let mut view = self.registry_view();
        let stored = if mode.is_some() {
            view.create(tenant).map_err(bad)?.clone()
        } else {
            view.update(tenant).map_err(bad)?;
            view.get(name).cloned().ok_or(ErrorCode::BadArguments)?
        };
        let json = stored.to_json();
        self.pending
            .tenants
            .insert(name.to_string(), (self.zxid, Some(stored)));
        self.pending
            .tenants_order
            .push_back((self.zxid, name.to_string()));
        Ok(Some(json))
    }

    /// A deleted record leaves the pending registry view.
    fn forget_record(&mut self, path: &str) {
        if let Ok(Some(name)) = record_name(path) {
            self.pending
                .tenants
                .insert(name.to_string(), (self.zxid, None));
            self.pending
                .tenants_order
                .push_back((self.zxid, name.to_string()));
        }
    }

    /// The registry as it will be once the pending txns apply. Pending
    /// records were validated one after the other, so dropping every
    /// pending name and adding back the live ones cannot conflict.
    fn registry_view(&self) -> Registry {
        let dir = self.opts.directory();
        let mut view = dir.registry().clone();
        if self.pending.tenants.is_empty() {
            return view;
        }
        for name in self.pending.tenants.keys() {
            let _ = view.delete(name);
        }
        for (_, t) in self.pending.tenants.values() {
            if let Some(t) = t {
                let _ = view.create(t.clone());
            }
        }
        view
    }

    /// The namespace `path` lies below, with its quotas and its usage as of
    /// the pending txns.
    fn namespace(&self, dir: &Directory, path: &str) -> Option<(String, Quotas, Usage)> {
        let t = dir.namespace_of(path)?;
        let base = self
            .tree
            .usage(&t.root)
            .unwrap_or_else(|| self.tree.count_usage(&t.root));
        let pending = self.pending.usage.get(&t.root);
        Some((t.root.clone(), t.quotas, pending.applied_to(base)))
    }

    /// Checks a create against its namespace's quotas and counts it.
    fn charge_create(&mut self, path: &str, data_len: u64, ephemeral: bool) -> PrepResult<()> {
        let dir = self.opts.directory();
        let Some((root, quotas, usage)) = self.namespace(&dir, path) else {
            return Ok(());
        };
        corral_tenant::quota::check_create(&quotas, &usage, data_len, ephemeral)
            .map_err(|e| e.code())?;
        let d = UsageDelta {
            znodes: 1,
            data_bytes: data_len as i64,
            ephemerals: i64::from(ephemeral),
        };
        self.pending.usage.charge(self.zxid, &root, d);
        Ok(())
    }

    /// Checks a setData against its namespace's quotas and counts it.
    fn charge_set_data(&mut self, path: &str, old_len: u64, new_len: u64) -> PrepResult<()> {
        let dir = self.opts.directory();
        let Some((root, quotas, usage)) = self.namespace(&dir, path) else {
            return Ok(());
        };
        corral_tenant::quota::check_set_data(&quotas, &usage, old_len, new_len)
            .map_err(|e| e.code())?;
        let d = UsageDelta {
            data_bytes: new_len as i64 - old_len as i64,
            ..UsageDelta::default()
        };
        self.pending.usage.charge(self.zxid, &root, d);
        Ok(())
    }

    /// Counts a delete (never refused).
    fn credit_delete(&mut self, path: &str, stat: &Stat) {
        if let Some(root) = self.tree.zk_quota_root_of(path) {
            let d = UsageDelta {
                znodes: -1,
                data_bytes: -i64::from(stat.data_length.max(0)),
                ephemerals: 0,
            };
            self.pending.zk_usage.charge(self.zxid, root, d);
        }
        let dir = self.opts.directory();
        let Some(t) = dir.namespace_of(path) else {
            return;
        };
        let ephemeral = matches!(
            NodeKind::from_owner(stat.ephemeral_owner),
            NodeKind::Ephemeral(_)
        );
        let d = UsageDelta {
            znodes: -1,
            data_bytes: -i64::from(stat.data_length.max(0)),
            ephemerals: -i64::from(ephemeral),
        };
        let root = t.root.clone();
        self.pending.usage.charge(self.zxid, &root, d);
    }

    /// ZooKeeper's `checkQuota` for a change of `count_diff` znodes and
    /// `bytes_diff` bytes at `path` (see the module docs). On success, what to
    /// charge to the pending usage once every other check has passed.
    fn check_path_quota(
        &self,
        path: &str,
        count_diff: i64,
        bytes_diff: i64,
    ) -> PrepResult<Option<(String, UsageDelta)>> {
        let Some(root) = self.tree.zk_quota_root_of(path) else {
            return Ok(None);
        };
        let limits = self
            .tree
            .get(&zk_quota::limit_path(root))
            .map_or(Ok(StatsTrack::default()), |n| {
                StatsTrack::parse_bytes(n.data_bytes())
            })
            .map_err(|e| {
                tracing::warn!(quota = %root, error = %e, "unreadable zookeeper_limits refuses the write");
                ErrorCode::MarshallingError
            })?;
        let charge = Some((
            root.to_string(),
            UsageDelta {
                znodes: count_diff,
                data_bytes: bytes_diff,
                ephemerals: 0,
            },
        ));
        let stats_node = self.tree.get(&zk_quota::stat_path(root));
        let (Some(usage), Some(_)) = (self.tree.zk_quota_usage(root), stats_node) else {
            return Ok(charge);
        };
        let pending = self.pending.zk_usage.get(root);
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let stats = StatsTrack::stats(
            as_i64(usage.count).saturating_add(pending.znodes),
            as_i64(usage.bytes).saturating_add(pending.data_bytes),
        );
        match zk_quota::check_zk_quota(&limits, &stats, count_diff, bytes_diff) {
            Ok(ZkQuotaOutcome::Ok) => Ok(charge),
            Ok(ZkQuotaOutcome::SoftExceeded {
                dimension,
                limit,
                would_be,
            }) => {
                tracing::warn!(
                    quota = %root,
                    dimension = dimension.as_str(),
                    limit,
                    would_be,
                    "soft quota exceeded"
                );
                Ok(charge)
            }
            Err(e) => {
                tracing::info!(quota = %root, path, error = %e, "hard quota refuses a write");
                Err(e.code())
            }
        }
    }

    fn charge_path_quota(&mut self, charge: Option<(String, UsageDelta)>) {
        if let Some((root, d)) = charge {
            self.pending.zk_usage.charge(self.zxid, &root, d);
        }
    }

    /// Multi: every op is prepped in order against the overlay; on the first
    /// failure the overlay is rolled back and the rest become RuntimeInconsistency.
    fn multi(&mut self, ops: &[MultiOp]) -> Txn {
        let mut normalized = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                MultiOp::Create(code, c) => match multi_create(*code, c) {
                    Some(x) => normalized.push(x),
                    None => return Txn::Error(ErrorCode::MarshallingError.code()),
                },
                other => normalized.push(other.clone()),
            }
        }
        let ops = &normalized;
        let saved = self.pending.clone();
        let mut txns = Vec::with_capacity(ops.len());
        let mut failed = false;
        for op in ops {
            if failed {
                txns.push(Txn::Error(ErrorCode::RuntimeInconsistency.code()));
                continue;
            }
            let r = match op {
                MultiOp::Create(code, c) => self.create(*code, c),
                MultiOp::Delete(d) => self.delete(d),
                MultiOp::SetData(s) => self.set_data(s),
                MultiOp::Check(c) => self.check(c),
                // A read inside a write multi: ZooKeeper refuses the whole request.
                MultiOp::GetData(_) | MultiOp::GetChildren(_) => Err(ErrorCode::BadArguments),
            };
            match r {
                Ok(t) => txns.push(t),
                // Only an unreadable zookeeper_limits fails an op this way:
                // ZooKeeper's parse exception fails the whole request.
                Err(ErrorCode::MarshallingError) => {
                    *self.pending = saved;
                    return Txn::Error(ErrorCode::MarshallingError.code());
                }
                Err(e) => {
                    failed = true;
                    *self.pending = saved.clone();
                    txns.push(Txn::Error(e.code()));
                }
            }
        }
        Txn::Multi(txns)
    }

    /// Binds this prep's session to `tenant` (see the module docs).
    pub fn bind_session(&mut self, tenant: &str) -> Txn {
        self.try_bind_session(tenant)
            .unwrap_or_else(|e| Txn::Error(e.code()))
    }

    fn try_bind_session(&mut self, tenant: &str) -> PrepResult<Txn> {
        let session_id = self.session_id;
        if !self.tree.sessions().contains_key(&session_id) {
            return Err(ErrorCode::SessionExpired);
        }
        let bound = match self.pending.binds.by_session.get(&session_id) {
            Some(t) => Some(t.as_str()),
            None => self.tree.session_tenant(session_id),
        };
        let txn = Txn::BindSession {
            tenant: tenant.to_string(),
        };
        match bound {
            Some(t) if t == tenant => return Ok(txn),
            Some(t) => {
                tracing::info!(
                    session = format_args!("0x{session_id:x}"),
                    bound = t,
                    asked = tenant,
                    "refusing to bind a session already bound to another tenant"
                );
                return Err(ErrorCode::AuthFailed);
            }
            None => {}
        }
        let view = self.registry_view();
        let quotas = view.get(tenant).ok_or(ErrorCode::AuthFailed)?.quotas;
        let usage = Usage {
            sessions: self.tree.tenant_session_count(tenant) + self.pending.binds.count(tenant),
            ..Usage::default()
        };
        corral_tenant::quota::check_session(&quotas, &usage).map_err(|e| {
            tracing::info!(tenant, error = %e, "hard quota refuses a session bind");
            e.code()
        })?;
        self.pending.binds.bind(self.zxid, session_id, tenant);
        Ok(txn)
    }

    /// closeSession: hides the session's ephemerals (applied and pending).
    pub fn close_session(&mut self, session_id: i64) -> Txn {
        let mut paths = self.tree.ephemerals(session_id);
        if let Some(p) = self.pending.ephemerals.remove(&session_id) {
            paths.extend(p.into_iter().map(|(_, path)| path));
        }
        paths.sort();
        paths.dedup();
        for p in paths {
            if let Ok(rec) = self.get(&p) {
                if rec.stat.ephemeral_owner == session_id {
                    let _ = self.remove_node(&p);
                }
            }
        }
        Txn::CloseSession
    }
}

/// The tenant name when `path` is a record `/zookeeper/corral/tenants/<name>`;
/// `BadArguments` for anything deeper (the registry holds records only).
fn record_name(path: &str) -> PrepResult<Option<&str>> {
    let Some(rest) = path
        .strip_prefix(REGISTRY_ROOT)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return Ok(None);
    };
    if rest.is_empty() || rest.contains('/') {
        return Err(ErrorCode::BadArguments);
    }
    Ok(Some(rest))
}

/// How ZooKeeper re-reads a create inside a multi: the op type follows the
/// flags, not the wire opcode (create2 answers like create, unknown flags mean
/// persistent, a createTTL without a TTL mode is a plain create). `None`: a
/// non-TTL opcode with TTL flags, which ZooKeeper fails as a marshalling error.
pub fn multi_create(code: OpCode, c: &CreateRequest) -> Option<MultiOp> {
    let mode = CreateMode::from_flags(c.flags).unwrap_or(CreateMode::Persistent);
    let op = if mode.is_ttl() {
        if code != OpCode::CreateTtl {
            return None;
        }
        OpCode::CreateTtl
    } else if mode.is_container() {
        OpCode::CreateContainer
    } else {
        OpCode::Create
    };
    let mut c = c.clone();
    c.flags = mode.flags();
    if op != OpCode::CreateTtl {
        c.ttl = -1;
    }
    Some(MultiOp::Create(op, c))
}

/// ZooKeeper's TTL rules: TTL modes need a TTL in range; other modes must not carry one.
fn validate_ttl(mode: CreateMode, ttl: i64) -> PrepResult<Option<i64>> {
    if mode.is_ttl() {
        corral_store::ttl_owner(ttl)
            .map(Some)
            .ok_or(ErrorCode::BadArguments)
    } else if ttl >= 0 {
        Err(ErrorCode::BadArguments)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::request::CreateRequest;
    use corral_store::TxnHeader;

    fn opts() -> PrepOptions {
        PrepOptions::new(true)
    }

    fn create(path: &str, flags: i32) -> Request {
        Request::Create(
            OpCode::Create,
            CreateRequest {
                path: path.into(),
                data: Some(b"d".to_vec()),
                acl: Acl::open_unsafe(),
                flags,
                ttl: -1,
            },
        )
    }

    /// Preps `reqs` in one batch (no apply in between), as group commit does.
    fn prep_batch(tree: &DataTree, session: i64, reqs: &[Request]) -> Vec<Txn> {
        let mut pending = Pending::new();
        let principals = corral_auth::connect_principals("127.0.0.1".parse().unwrap());
        reqs.iter()
            .enumerate()
            .map(|(i, r)| {
                Prep {
                    tree,
                    pending: &mut pending,
                    opts: &opts(),
                    session_id: session,
                    principals: &principals,
                    zxid: 100 + i as i64,
                    time_ms: 1,
                }
                .request(r.opcode(), r)
            })
            .collect()
    }

    fn apply_all(tree: &mut DataTree, session: i64, txns: &[Txn]) {
        for (i, t) in txns.iter().enumerate() {
            let hdr = TxnHeader {
                session_id: session,
                cxid: i as i32,
                zxid: tree.last_zxid() + 1,
                time_ms: 1,
            };
            tree.apply(&hdr, t);
        }
    }

    fn path_of(t: &Txn) -> &str {
        match t {
            Txn::Create { path, .. } => path,
            other => panic!("expected a create, got {other:?}"),
        }
    }

    #[test]
    fn pending_creates_see_each_other() {
        // Goal: within one batch, sequence numbers advance and a second create of a path is NodeExists.
        let tree = DataTree::new();
        let txns = prep_batch(
            &tree,
            1,
            &[
                create("/q-", 2),
                create("/q-", 2),
                create("/a", 0),
                create("/a", 0),
            ],
        );
        assert_eq!(path_of(&txns[0]), "/q-0000000000");
        assert_eq!(path_of(&txns[1]), "/q-0000000001");
        assert_eq!(path_of(&txns[2]), "/a");
        assert_eq!(txns[3], Txn::Error(ErrorCode::NodeExists.code()));
    }

    #[test]
    fn sequence_numbers_count_creates_not_deletes() {
        // Goal: the suffix comes from the persisted cversion, which deletes do not lower.
        let mut tree = DataTree::new();
        let t = prep_batch(&tree, 1, &[create("/p", 0)]);
        apply_all(&mut tree, 1, &t);
        let t = prep_batch(&tree, 1, &[create("/p/s-", 2)]);
        apply_all(&mut tree, 1, &t);
        let del = Request::Delete(corral_proto::request::DeleteRequest {
            path: "/p/s-0000000000".into(),
            version: -1,
        });
        let t = prep_batch(&tree, 1, &[del]);
        apply_all(&mut tree, 1, &t);
        let t = prep_batch(&tree, 1, &[create("/p/s-", 2)]);
        assert_eq!(path_of(&t[0]), "/p/s-0000000001");
    }

    #[test]
    fn ephemerals_cannot_have_children_even_when_pending() {
        // Goal: a child of an ephemeral created earlier in the same batch is refused.
        let tree = DataTree::new();
        let t = prep_batch(&tree, 7, &[create("/e", 1), create("/e/c", 0)]);
        assert!(matches!(
            t[0],
            Txn::Create {
                ephemeral_owner: 7,
                ..
            }
        ));
        assert_eq!(t[1], Txn::Error(ErrorCode::NoChildrenForEphemerals.code()));
    }

    #[test]
    fn failed_multi_rolls_back_its_pending_changes() {
        // Goal: after a failed multi, a later request does not see the multi's creates.
        let tree = DataTree::new();
        let multi = Request::Multi(vec![
            MultiOp::Create(
                OpCode::Create,
                CreateRequest {
                    path: "/m".into(),
                    data: None,
                    acl: Acl::open_unsafe(),
                    flags: 0,
                    ttl: -1,
                },
            ),
            MultiOp::Check(CheckVersionRequest {
                path: "/missing".into(),
                version: 0,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/m".into(),
                version: -1,
            }),
        ]);
        let t = prep_batch(&tree, 1, &[multi, create("/m", 0)]);
        match &t[0] {
            Txn::Multi(sub) => {
                assert!(matches!(sub[0], Txn::Create { .. }));
                assert_eq!(sub[1], Txn::Error(ErrorCode::NoNode.code()));
                assert_eq!(sub[2], Txn::Error(ErrorCode::RuntimeInconsistency.code()));
            }
            other => panic!("expected a multi, got {other:?}"),
        }
        assert_eq!(path_of(&t[1]), "/m");
    }

    #[test]
    fn version_checks_and_version_wrap() {
        // Goal: BadVersion on mismatch; -1 skips the check; versions never become -1.
        assert_eq!(check_version(3, 2), Err(ErrorCode::BadVersion));
        assert_eq!(check_version(3, -1), Ok(4));
        assert_eq!(check_version(3, 3), Ok(4));
        assert_eq!(check_version(-2, -1), Ok(0));
        assert_eq!(check_version(i32::MAX, -1), Ok(i32::MIN));
    }

    #[test]
    fn close_session_hides_pending_ephemerals() {
        // Goal: after a pending closeSession, the session's new ephemeral path is free again.
        let tree = DataTree::new();
        let principals = corral_auth::connect_principals("127.0.0.1".parse().unwrap());
        let mut pending = Pending::new();
        let mut prep = |session: i64, zxid: i64, r: &Request| {
            Prep {
                tree: &tree,
                pending: &mut pending,
                opts: &opts(),
                session_id: session,
                principals: &principals,
                zxid,
                time_ms: 1,
            }
            .request(r.opcode(), r)
        };
        assert!(matches!(
            prep(5, 1, &create("/lock", 1)),
            Txn::Create { .. }
        ));
        assert_eq!(prep(5, 2, &Request::CloseSession), Txn::CloseSession);
        assert!(matches!(
            prep(6, 3, &create("/lock", 1)),
            Txn::Create { .. }
        ));
    }

    #[test]
    fn pending_changes_are_dropped_once_applied_and_later_ones_stay() {
        // Goal: a leader with txns in flight keeps seeing its own unapplied
        // changes, and forgets each one once the tree has applied it.
        use corral_store::TxnHeader;
        let mut tree = DataTree::new();
        let principals = corral_auth::connect_principals("127.0.0.1".parse().unwrap());
        let mut pending = Pending::new();
        let mut prepped = Vec::new();
        for (zxid, path) in [(1, "/a"), (2, "/b"), (3, "/c")] {
            let txn = Prep {
                tree: &tree,
                pending: &mut pending,
                opts: &opts(),
                session_id: 5,
                principals: &principals,
                zxid,
                time_ms: 1,
            }
            .request(OpCode::Create, &create(path, 1));
            assert!(matches!(txn, Txn::Create { .. }), "{path}: {txn:?}");
            prepped.push((zxid, txn));
        }
        assert_eq!(pending.len(), 4, "three nodes and the root");
        // The first two commit and apply; the third is still in flight.
        for (zxid, txn) in &prepped[..2] {
            let hdr = TxnHeader {
                session_id: 5,
                cxid: 0,
                zxid: *zxid,
                time_ms: 1,
            };
            tree.apply(&hdr, txn);
        }
        pending.applied_through(2);
        assert!(pending.recs.contains_key("/c"), "/c is still in flight");
        assert!(!pending.recs.contains_key("/a") && !pending.recs.contains_key("/b"));
        assert!(
            pending.recs.contains_key("/"),
            "the root changed again at zxid 3, so it stays"
        );
        assert_eq!(
            pending.ephemerals.get(&5).map(|v| v.len()),
            Some(1),
            "only /c's ephemeral is pending"
        );
        // A create of /c again still sees the pending one.
        let again = Prep {
            tree: &tree,
            pending: &mut pending,
            opts: &opts(),
            session_id: 5,
            principals: &principals,
            zxid: 4,
            time_ms: 1,
        }
        .request(OpCode::Create, &create("/c", 1));
        assert_eq!(again, Txn::Error(ErrorCode::NodeExists.code()));
        pending.applied_through(4);
        assert!(pending.is_empty() && pending.ephemerals.is_empty());
    }

    #[test]
    fn path_quota_counts_pending_creates_and_deletes() {
        // Goal: creates and deletes prepped in one batch, none applied yet, count against a zookeeper_limits hard limit together.
        let mut tree = DataTree::new();
        let setup = prep_batch(
            &tree,
            1,
            &[
                create("/app", 0),
                create("/zookeeper/quota/app", 0),
                Request::Create(
                    OpCode::Create,
                    CreateRequest {
                        path: zk_quota::limit_path("/app"),
                        data: Some(
                            b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3".to_vec(),
                        ),
                        acl: Acl::open_unsafe(),
                        flags: 0,
                        ttl: -1,
                    },
                ),
                create(&zk_quota::stat_path("/app"), 0),
            ],
        );
        apply_all(&mut tree, 1, &setup);
        assert_eq!(tree.zk_quota_usage("/app").map(|u| u.count), Some(1));
        let del = Request::Delete(DeleteRequest {
            path: "/app/a".into(),
            version: -1,
        });
        let t = prep_batch(
            &tree,
            1,
            &[
                create("/app/a", 0),
                create("/app/b", 0),
                create("/app/c", 0),
                del,
                create("/app/c", 0),
            ],
        );
        assert!(matches!(t[0], Txn::Create { .. }));
        assert!(matches!(t[1], Txn::Create { .. }));
        assert_eq!(t[2], Txn::Error(ErrorCode::QuotaExceeded.code()));
        assert!(matches!(t[3], Txn::Delete { .. }));
        assert!(matches!(t[4], Txn::Create { .. }), "the delete made room");
    }

    #[test]
    fn creates_inside_multi_follow_their_flags() {
        // Goal: ZooKeeper re-reads multi creates by flags: create2 answers as create, TTL flags need createTTL.
        let c = |flags: i32, ttl: i64| CreateRequest {
            path: "/x".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags,
            ttl,
        };
        let op = |m: Option<MultiOp>| m.map(|m| m.opcode());
        assert_eq!(
            op(multi_create(OpCode::Create2, &c(0, -1))),
            Some(OpCode::Create)
        );
        assert_eq!(
            op(multi_create(OpCode::Create, &c(4, -1))),
            Some(OpCode::CreateContainer)
        );
        assert_eq!(
            op(multi_create(OpCode::CreateTtl, &c(5, 10))),
            Some(OpCode::CreateTtl)
        );
        assert_eq!(
            op(multi_create(OpCode::CreateTtl, &c(1, 10))),
            Some(OpCode::Create)
        );
        assert_eq!(op(multi_create(OpCode::Create, &c(5, -1))), None);
        assert_eq!(
            op(multi_create(OpCode::Create, &c(42, -1))),
            Some(OpCode::Create)
        );
    }

    /// A tree with sessions 1..=n and options whose registry holds tenants
    /// `a` (at most `max_a` sessions) and `b` (no limit).
    fn bind_setup(n: i64, max_a: u64) -> (DataTree, PrepOptions) {
        let mut tree = DataTree::new();
        for s in 1..=n {
            let hdr = TxnHeader {
                session_id: s,
                cxid: 0,
                zxid: tree.last_zxid() + 1,
                time_ms: 1,
            };
            tree.apply(
                &hdr,
                &Txn::CreateSession {
                    timeout_ms: 4000,
                    passwd: vec![0; 16],
                },
            );
        }
        let mut a = Tenant::new("a");
        a.quotas.max_sessions = Some(max_a);
        let registry = Registry::from_tenants([a, Tenant::new("b")]).unwrap();
        let mut opts = opts();
        opts.directory = Arc::new(std::sync::RwLock::new(Arc::new(Directory::new(registry))));
        (tree, opts)
    }

    fn bind(
        tree: &DataTree,
        pending: &mut Pending,
        opts: &PrepOptions,
        session: i64,
        tenant: &str,
    ) -> Txn {
        let zxid = tree.last_zxid() + 1 + pending.binds.log.len() as i64;
        Prep {
            tree,
            pending,
            opts,
            session_id: session,
            principals: &[],
            zxid,
            time_ms: 1,
        }
        .bind_session(tenant)
    }

    fn bound(tenant: &str) -> Txn {
        Txn::BindSession {
            tenant: tenant.into(),
        }
    }

    #[test]
    fn bind_session_is_idempotent_for_its_tenant_and_refuses_another() {
        // Goal: a session bound to a (applied or pending) binds to a again with no new count, to b is AuthFailed; unknown sessions and tenants are refused.
        let (mut tree, opts) = bind_setup(2, 1);
        let mut pending = Pending::new();
        assert_eq!(bind(&tree, &mut pending, &opts, 1, "a"), bound("a"));
        // Pending: the same tenant again takes no second slot, another is refused.
        assert_eq!(bind(&tree, &mut pending, &opts, 1, "a"), bound("a"));
        assert_eq!(pending.binds.count("a"), 1);
        let auth_failed = Txn::Error(ErrorCode::AuthFailed.code());
        assert_eq!(bind(&tree, &mut pending, &opts, 1, "b"), auth_failed);
        apply_all(&mut tree, 1, &[bound("a")]);
        pending.applied_through(tree.last_zxid() + 10);
        assert_eq!(pending.binds.count("a"), 0);
        // Applied: the same answers from the tree.
        assert_eq!(bind(&tree, &mut pending, &opts, 1, "a"), bound("a"));
        assert_eq!(bind(&tree, &mut pending, &opts, 1, "b"), auth_failed);
        assert_eq!(
            bind(&tree, &mut pending, &opts, 1, "a"),
            bound("a"),
            "a full tenant still rebinds its own session"
        );
        assert_eq!(
            bind(&tree, &mut pending, &opts, 9, "a"),
            Txn::Error(ErrorCode::SessionExpired.code())
        );
        assert_eq!(bind(&tree, &mut pending, &opts, 2, "nope"), auth_failed);
        assert_eq!(bind(&tree, &mut pending, &opts, 2, "b"), bound("b"));
    }

    #[test]
    fn session_quota_counts_applied_and_pending_binds() {
        // Goal: max_sessions holds against bound sessions plus pending binds, so a batch of racing binds never passes it; a close frees a slot once applied.
        let (mut tree, opts) = bind_setup(5, 3);
        apply_all(&mut tree, 1, &[bound("a")]);
        let mut pending = Pending::new();
        let quota = Txn::Error(ErrorCode::QuotaExceeded.code());
        let got: Vec<Txn> = (2..=5)
            .map(|s| bind(&tree, &mut pending, &opts, s, "a"))
            .collect();
        assert_eq!(
            got,
            vec![bound("a"), bound("a"), quota.clone(), quota.clone()]
        );
        // The unlimited tenant is not affected.
        assert_eq!(bind(&tree, &mut pending, &opts, 4, "b"), bound("b"));
        // Apply the two accepted binds (sessions 2 and 3): the tree now counts them.
        for s in [2, 3] {
            let hdr = TxnHeader {
                session_id: s,
                cxid: 0,
                zxid: tree.last_zxid() + 1,
                time_ms: 1,
            };
            tree.apply(&hdr, &bound("a"));
        }
        pending.clear();
        assert_eq!(tree.tenant_session_count("a"), 3);
        assert_eq!(bind(&tree, &mut pending, &opts, 5, "a"), quota);
        apply_all(&mut tree, 2, &[Txn::CloseSession]);
        assert_eq!(bind(&tree, &mut pending, &opts, 5, "a"), bound("a"));
    }
}
