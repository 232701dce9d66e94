//! `corral-voter`: ZAB for corral's voting core.
//!
//! # Module structure
//!
//! - [`core`]: the sans-IO state machine of one voter. It never reads the
//!   clock, spawns tasks or touches sockets or disks: inputs arrive through
//!   [`core::Core::handle_message`], [`core::Core::handle_tick`],
//!   [`core::Core::handle_persisted`], [`core::Core::handle_snapshot`] and
//!   [`core::Core::handle_submit`], each with `now_ms`; everything it wants
//!   done comes out of [`core::Core::poll_output`] as data ([`core::Output`]:
//!   `Send`, `Persist`, `Commit`, `InstallSnapshot`, `Elected`,
//!   `RoleChanged`, `Serving`, `Abandoned`). Randomness (election jitter,
//!   handshake numbers) comes from a ChaCha PRNG seeded by
//!   [`core::Config::seed`], so a whole cluster replays exactly in one thread.
//!   - `core::types`: `ServerId`, `Zxid` (`epoch << 32 | counter`), `Vote` and
//!     its total order (peer epoch, then zxid, then server id).
//!   - `core::message`: the peer messages (election notifications,
//!     discovery, sync, broadcast, ping).
//!   - `core::election`: fast leader election.
//!   - `core::leader` / `core::follower`: discovery, sync (DIFF, TRUNC,
//!     TRUNC+DIFF, SNAP) and broadcast on each side.
//! - [`wire`]: the binary encoding of core messages (a version byte, a tag,
//!   jute fields; log entries in the store's own format). It lives here, not
//!   in `proto/` as DESIGN.md first drew it, because `Message` is a voter
//!   type built on the store's `LogEntry`.
//! - [`net`]: the QUIC transport (quinn + rustls with the ring provider,
//!   mutual TLS). One connection per peer pair (the smaller id dials), one
//!   stream per [`net::Channel`] (election, learner feed, forwarded
//!   requests) and direction, bounded per-peer queues that refuse rather
//!   than grow, reconnect with backoff. A peer's certificate must carry the
//!   URI SAN `corral://server/<id>` of the id it is configured as.
//! - [`certs`]: the dev PKI behind `corral cert` (rcgen) and peer identity.
//! - [`liveness`]: one-byte UDP probes whose ICMP refusal tells a follower at
//!   once that its leader's process died (a hint fed to
//!   [`core::Core::handle_peer_down`]; the sync limit still decides for hosts
//!   that vanish silently).
//! - [`node`]: the driver that makes a voter a running node: one thread owns
//!   the core, the txn log (one fsync per round of outputs) and leader prep,
//!   applies commits to the data tree and completes waiting clients, and
//!   implements `corral_server`'s `Replicator` (forwarded writes, sessions
//!   across the ensemble with SESSIONMOVED, `sync` to the leader's commit
//!   point).
//!
//! # Ordering rules (asserted or enforced in the core)
//!
//! 1. **Persists complete in order.** The driver applies the ops of each
//!    `Output::Persist` in order, fsyncs, and reports `handle_persisted(id)`
//!    in issue order. Reporting `id` means every earlier persist is durable.
//! 2. **No ACK before the txn is durable.** A learner sends `Ack{zxid}` only
//!    after a completed persist shows its log durable through `zxid` and the
//!    leader's epoch durable as its current epoch. The leader counts its own
//!    vote the same way (its durable log end), never its in-memory log.
//! 3. **No `AckEpoch` before the accepted epoch is durable**, and a leader
//!    sends `LeaderInfo` only once the new epoch is durably its own accepted
//!    epoch.
//! 4. **Commit in zxid order.** `Output::Commit` is emitted in strictly
//!    increasing zxid order, each zxid once (an `InstallSnapshot` restarts
//!    the sequence from the snapshot's zxid). A committed entry is never
//!    truncated (asserted in the log).
//! 5. **Nothing commits before the leader is established**: a quorum has
//!    acked its whole history in the new epoch. That history commits first.
//! 6. **zxids strictly increase** in every log (asserted on append).
//!
//! # Counter rollover
//!
//! When the 32-bit counter of the current epoch is exhausted, the leader
//! refuses the request ([`core::SubmitError::Rollover`]) and goes back to
//! LOOKING, as ZooKeeper's `XidRolloverException` does; the next leader
//! proposes a new epoch, whose counter starts at 1.
//!
//! # Testing
//!
//! - Handler tests (`core::tests`) feed one core inputs and assert on the
//!   outputs it emits: election, epoch negotiation, durability before
//!   ACKEPOCH/ACK, sync-mode choice, commit order, counter rollover.
//! - `tests/sim/` is the deterministic cluster simulator: 3- and 5-voter
//!   clusters of real cores in one thread under a seed, with a faulty
//!   network (drop, duplicate, delay, reorder, symmetric and asymmetric
//!   partitions), a `MemTxnLog` disk per node (crashes lose unsynced writes,
//!   sometimes tearing the last record), crash/restart, ticks and random
//!   client writes. Phase 1 checks safety continuously; phase 2 heals and
//!   demands liveness. `CORRAL_SIM_SEED=n` replays one seed,
//!   `CORRAL_SIM_SEEDS=n` / `CORRAL_SIM_FIRST=n` choose the range,
//!   `CORRAL_SIM_TRACE=id` prints one node's messages.
//!
//! - [`feed`]: the observer feed. The upstream side ([`feed::Hub`]: DIFF or
//!   SNAP catch-up, then every applied txn, bounded per-feed queues), the
//!   downstream side as a sans-IO state machine ([`feed::downstream`]), and
//!   the QUIC link ([`feed::link`], ALPN `corral-feed/1`; a voter takes feeds
//!   on its peer port). Observers' requests travel up as relayed envelopes
//!   and each hop routes the answers back down. The observer itself is the
//!   `corral-observer` crate.
//!
//! # Not yet here
//!
//! Dynamic reconfiguration (issue 7).

pub mod certs;
pub mod core;
pub mod feed;
pub mod liveness;
pub mod net;
pub mod node;
pub mod wire;
