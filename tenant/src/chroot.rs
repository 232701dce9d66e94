//! Path translation in and out of a tenant namespace (the enforced chroot).
//!
//! A tenant-bound client names paths relative to its namespace: client `/` is
//! the tenant root, client `/x` is `<root>/x`. Every path that enters is passed
//! through [`to_inner`] (or [`to_inner_sequential`] for sequential creates), and
//! every server path that leaves through [`to_outer`] or one of its helpers.
//!
//! # Why a client cannot escape
//!
//! - The client path must be a valid ZooKeeper path
//!   ([`corral_store::validate_path`]): absolute, no empty segments, and no `.`
//!   or `..` segments. So joining it under the root can only go deeper.
//! - After joining, the result is checked again to lie within the root by whole
//!   segments ([`is_within`]); a failure there is refused, never passed on.
//! - Outgoing paths outside the namespace translate to `None`: the caller must
//!   drop the event, list entry or result rather than show it. `within` compares
//!   whole segments, so `/tenants/ab` is never inside `/tenants/a`.
//!
//! A root of `/` (super users, or an untenanted deployment) translates every
//! path to itself, after the same validation.

use corral_proto::ErrorCode;
use corral_store::validate_path;

/// Placeholder for a server path outside the namespace in text meant for a client.
pub const HIDDEN_PATH: &str = "<hidden>";

/// Whether `server_path` is `root` or below it, comparing whole segments.
pub fn is_within(root: &str, server_path: &str) -> bool {
    if root == "/" {
        return server_path.starts_with('/');
    }
    match server_path.strip_prefix(root) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Translates a client path into the server path under `root`.
///
/// Invalid client paths (including any `.`/`..` segment) are `BadArguments`, as
/// ZooKeeper answers them.
pub fn to_inner(root: &str, client_path: &str) -> Result<String, ErrorCode> {
    validate_path(client_path, false).map_err(|e| e.code())?;
    join_checked(root, client_path)
}

/// Like [`to_inner`] for a sequential create, whose path may end in `/`
/// (client `/` becomes `<root>/`, so the sequence node lands directly under the
/// root).
pub fn to_inner_sequential(root: &str, client_path: &str) -> Result<String, ErrorCode> {
    validate_path(client_path, true).map_err(|e| e.code())?;
    if client_path == "/" && root != "/" {
        // The server appends the sequence number to this prefix.
        return join_checked(root, "/").map(|r| r + "/");
    }
    join_checked(root, client_path)
}

/// Translates every client path of a list (setWatches, multiRead); the first
/// invalid one fails the whole list.
pub fn paths_to_inner<I, S>(root: &str, client_paths: I) -> Result<Vec<String>, ErrorCode>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    client_paths
        .into_iter()
        .map(|p| to_inner(root, p.as_ref()))
        .collect()
}

/// Translates a server path back to the client's view; `None` when it is outside
/// the namespace, and the caller must then hide whatever carried it.
pub fn to_outer(root: &str, server_path: &str) -> Option<String> {
    if root == "/" {
        return server_path
            .starts_with('/')
            .then(|| server_path.to_string());
    }
    let rest = server_path.strip_prefix(root)?;
    if rest.is_empty() {
        Some("/".to_string())
    } else if rest.starts_with('/') {
        Some(rest.to_string())
    } else {
        None
    }
}

/// The path of a watch event as the watching client must see it, or `None` if
/// the event must not be delivered at all. Persistent-recursive watches set on
/// client `/` sit on the root, and events for the root itself read `/`.
pub fn event_path(root: &str, server_path: &str) -> Option<String> {
    to_outer(root, server_path)
}

/// A server-generated path for an error message or log line shown to the
/// client: the client's view of it, or [`HIDDEN_PATH`] if it lies outside.
/// Prefer echoing the client's own request path where there is one.
pub fn error_path(root: &str, server_path: &str) -> String {
    to_outer(root, server_path).unwrap_or_else(|| HIDDEN_PATH.to_string())
}

/// Translates a list of server paths, dropping those outside the namespace.
pub fn paths_to_outer<I, S>(root: &str, server_paths: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    server_paths
        .into_iter()
        .filter_map(|p| to_outer(root, p.as_ref()))
        .collect()
}

/// The answer to `getEphemerals(client_prefix)`: the session's ephemerals in the
/// client's view, keeping those whose *client* path starts with `client_prefix`
/// as a plain string prefix (ZooKeeper's rule; `/`, empty or blank means all).
///
/// Filtering on client paths, after dropping outside ones, is what keeps the
/// root's string prefix from matching a sibling namespace (`/tenants/a` would
/// match `/tenants/ab/x` as a string).
pub fn ephemerals_to_outer<I, S>(root: &str, client_prefix: &str, server_paths: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let prefix = client_prefix.trim();
    let all = prefix.is_empty() || prefix == "/";
    server_paths
        .into_iter()
        .filter_map(|p| to_outer(root, p.as_ref()))
        .filter(|p| all || p.starts_with(client_prefix))
        .collect()
}

/// `root` + `client_path` (client `/` is the root itself), refused unless the
/// result lies within the root.
fn join_checked(root: &str, client_path: &str) -> Result<String, ErrorCode> {
    debug_assert!(
        root == "/" || validate_path(root, false).is_ok(),
        "tenant root {root:?} was not validated"
    );
    let inner = if root == "/" {
        client_path.to_string()
    } else if client_path == "/" {
        root.to_string()
    } else {
        let mut s = String::with_capacity(root.len() + client_path.len());
        s.push_str(root);
        s.push_str(client_path);
        s
    };
    // Defense in depth: validation already makes escaping impossible.
    if is_within(root, &inner) {
        Ok(inner)
    } else {
        Err(ErrorCode::BadArguments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_maps_both_ways() {
        // Goal: client "/" is the tenant root, and the root reads back as "/".
        assert_eq!(to_inner("/tenants/a", "/").as_deref(), Ok("/tenants/a"));
        assert_eq!(to_outer("/tenants/a", "/tenants/a").as_deref(), Some("/"));
    }

    #[test]
    fn identity_root() {
        // Goal: root "/" translates valid paths to themselves and still rejects bad ones.
        assert_eq!(to_inner("/", "/x/y").as_deref(), Ok("/x/y"));
        assert_eq!(to_inner("/", "/").as_deref(), Ok("/"));
        assert_eq!(to_inner("/", "/../x"), Err(ErrorCode::BadArguments));
        assert_eq!(to_outer("/", "/zookeeper").as_deref(), Some("/zookeeper"));
        assert_eq!(to_inner_sequential("/", "/").as_deref(), Ok("/"));
    }

    #[test]
    fn sequential_paths_may_end_in_slash() {
        // Goal: a sequential create under client "/" or "/x/" lands under the root.
        assert_eq!(
            to_inner_sequential("/tenants/a", "/").as_deref(),
            Ok("/tenants/a/")
        );
        assert_eq!(
            to_inner_sequential("/tenants/a", "/x/").as_deref(),
            Ok("/tenants/a/x/")
        );
        assert_eq!(
            to_inner_sequential("/tenants/a", "/x-").as_deref(),
            Ok("/tenants/a/x-")
        );
        assert_eq!(to_inner("/tenants/a", "/x/"), Err(ErrorCode::BadArguments));
        assert_eq!(
            to_inner_sequential("/tenants/a", "/x//"),
            Err(ErrorCode::BadArguments)
        );
    }
}
