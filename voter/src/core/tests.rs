//! Handler tests: feed one core inputs, assert on the outputs it emits.

use corral_store::{LogEntry, Txn, TxnHeader};

use super::leader::{choose_sync, SyncMode};
use super::log::Log;
use super::*;

const TICK: u64 = 100;

fn ids(n: u64) -> Vec<ServerId> {
    (1..=n).map(ServerId).collect()
}

fn core(id: u64, n: u64, recovered: Recovered) -> Core {
    Core::new(Config::new(ServerId(id), ids(n), id), recovered, 0)
}

fn entry(z: Zxid) -> LogEntry {
    LogEntry {
        hdr: TxnHeader {
            session_id: 7,
            cxid: z.counter() as i32,
            zxid: z.0,
            time_ms: 0,
        },
        txn: Txn::Error(0),
    }
}

fn drain(c: &mut Core) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn sends(out: &[Output]) -> Vec<(ServerId, Message)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg } => Some((*to, msg.clone())),
            _ => None,
        })
        .collect()
}

fn persist_ids(out: &[Output]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Persist { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn looking(vote: Vote) -> Message {
    Message::Notification(Notification {
        vote,
        state: PeerState::Looking,
        configs: vec![Membership::new(
            Zxid::ZERO,
            [ServerId(1), ServerId(2), ServerId(3)],
        )],
    })
}

/// Runs cores with instant delivery and instant fsync until `done` holds.
fn run(cores: &mut [Core], now: u64, done: impl Fn(&[Core]) -> bool) -> u64 {
    run_cut(cores, now, &[], done).expect("cluster did not reach the expected state")
}

/// As [`run`], dropping every message to or from the servers in `cut`;
/// `None` if `done` never held.
fn run_cut(
    cores: &mut [Core],
    mut now: u64,
    cut: &[u64],
    done: impl Fn(&[Core]) -> bool,
) -> Option<u64> {
    for _ in 0..200 {
        let mut progress = true;
        while progress {
            progress = false;
            for i in 0..cores.len() {
                for o in drain(&mut cores[i]) {
                    progress = true;
                    match o {
                        Output::Send { to, msg } => {
                            let from = cores[i].id();
                            if !cut.contains(&from.0) && !cut.contains(&to.0) {
                                cores[(to.0 - 1) as usize].handle_message(now, from, msg)
                            }
                        }
                        Output::Persist { id, .. } => cores[i].handle_persisted(now, id),
                        _ => {}
                    }
                }
            }
        }
        if done(cores) {
            return Some(now);
        }
        now += TICK;
        for c in cores.iter_mut() {
            c.handle_tick(now);
        }
    }
    None
}

fn established(cores: &[Core]) -> bool {
    cores.iter().all(|c| c.serving_epoch().is_some())
}

#[test]
fn a_looking_server_adopts_a_better_vote_and_rebroadcasts() {
    // Goal: a notification with a better candidate changes our proposal and
    // is told to every other voter.
    let mut c = core(1, 3, Recovered::default());
    let first = sends(&drain(&mut c));
    assert_eq!(first.len(), 2, "the first round goes to both peers");
    let better = Vote {
        leader: ServerId(3),
        zxid: Zxid::new(1, 4),
        election_epoch: 1,
        peer_epoch: 1,
    };
    c.handle_message(1, ServerId(3), looking(better));
    let out = sends(&drain(&mut c));
    assert_eq!(out.len(), 2);
    for (_, m) in &out {
        assert_eq!(*m, looking(better));
    }
    // A quorum (us and s3) agrees; after the final wait we follow s3.
    c.handle_tick(TICK * 2);
    let out = drain(&mut c);
    assert!(out.contains(&Output::Elected {
        vote: better,
        role: Role::Following {
            leader: ServerId(3)
        }
    }));
    assert_eq!(
        c.role(),
        Role::Following {
            leader: ServerId(3)
        }
    );
}

#[test]
fn a_worse_vote_in_our_round_gets_our_proposal_back_at_once() {
    // Goal: a peer that missed our broadcast (it was still following when we
    // sent it) learns our better vote from the reply to its own, not at our
    // next timed re-send, so failover is not held up by election timers.
    let mut c = core(2, 3, Recovered::default());
    drain(&mut c);
    let mut worse = c.own_vote();
    worse.leader = ServerId(1);
    c.handle_message(1, ServerId(1), looking(worse));
    let out = sends(&drain(&mut c));
    assert_eq!(out, vec![(ServerId(1), looking(c.own_vote()))]);
    // An equal vote is not answered (no ping-pong).
    c.handle_message(2, ServerId(1), looking(c.own_vote()));
    assert!(sends(&drain(&mut c)).is_empty());
}

#[test]
fn a_follower_told_its_leader_is_down_re_elects_at_once() {
    // Goal: the peer-down hint makes a follower of that leader LOOKING
    // immediately; a hint about another peer changes nothing.
    let mut cores: Vec<Core> = (1..=3).map(|i| core(i, 3, Recovered::default())).collect();
    let now = run(&mut cores, 0, established);
    let leader = cores
        .iter()
        .find(|c| c.role() == Role::Leading)
        .unwrap()
        .id();
    let f = cores
        .iter()
        .position(|c| c.role() != Role::Leading)
        .unwrap();
    let other = (1..=3)
        .map(ServerId)
        .find(|&s| s != leader && s != cores[f].id())
        .unwrap();
    cores[f].handle_peer_down(now, other);
    assert_eq!(cores[f].role(), Role::Following { leader });
    cores[f].handle_peer_down(now, leader);
    assert_eq!(cores[f].role(), Role::Looking);
    assert!(drain(&mut cores[f]).contains(&Output::RoleChanged(Role::Looking)));
}

#[test]
fn a_stale_round_is_answered_not_counted() {
    // Goal: a notification from an older round leaves our proposal alone and
    // gets our current vote back.
    let mut c = core(1, 3, Recovered::default());
    drain(&mut c);
    let mut stale = c.own_vote();
    stale.leader = ServerId(3);
    stale.zxid = Zxid::new(9, 9);
    stale.election_epoch = 0;
    c.handle_message(1, ServerId(3), looking(stale));
    let out = sends(&drain(&mut c));
    assert_eq!(out.len(), 1);
    let (to, Message::Notification(n)) = &out[0] else {
        panic!("expected a notification, got {out:?}");
    };
    assert_eq!(*to, ServerId(3));
    assert_eq!(n.vote.leader, ServerId(1), "our proposal did not change");
    assert_eq!(c.role(), Role::Looking);
}

#[test]
fn a_joiner_learns_the_leader_from_decided_peers() {
    // Goal: FOLLOWING/LEADING replies from a quorum, with the leader itself
    // saying LEADING, make a joiner follow that leader whatever its round.
    let mut c = core(3, 3, Recovered::default());
    drain(&mut c);
    let vote = Vote {
        leader: ServerId(1),
        zxid: Zxid::new(2, 5),
        election_epoch: 7,
        peer_epoch: 2,
    };
    let decided = |state| {
        Message::Notification(Notification {
            vote,
            state,
            configs: vec![Membership::new(
                Zxid::ZERO,
                [ServerId(1), ServerId(2), ServerId(3)],
            )],
        })
    };
    c.handle_message(1, ServerId(2), decided(PeerState::Following));
    assert_eq!(
        c.role(),
        Role::Looking,
        "no word from the leader itself yet"
    );
    c.handle_message(2, ServerId(1), decided(PeerState::Leading));
    assert_eq!(
        c.role(),
        Role::Following {
            leader: ServerId(1)
        }
    );
    assert_eq!(c.election_epoch(), 7);
    let out = sends(&drain(&mut c));
    assert!(matches!(
        out.last(),
        Some((ServerId(1), Message::FollowerInfo { .. }))
    ));
}

#[test]
fn three_servers_elect_the_most_up_to_date() {
    // Goal: the server with the highest (epoch, zxid) leads, and all serve.
    let rec = |last: u32| Recovered {
        accepted_epoch: 1,
        current_epoch: 1,
        snapshot: None,
        log: (1..=last).map(|c| entry(Zxid::new(1, c))).collect(),
        membership: None,
        configs: Vec::new(),
    };
    let mut cores = vec![core(1, 3, rec(3)), core(2, 3, rec(5)), core(3, 3, rec(4))];
    run(&mut cores, 0, established);
    assert_eq!(cores[1].role(), Role::Leading);
    assert_eq!(cores[1].serving_epoch(), Some(2));
    // The leader's whole history committed everywhere on establishment.
    for c in &cores {
        assert_eq!(c.committed_zxid(), Zxid::new(1, 5));
        assert_eq!(c.last_zxid(), Zxid::new(1, 5));
    }
}

#[test]
fn the_new_epoch_is_durable_before_leader_info() {
    // Goal: the leader proposes max(accepted epochs) + 1 and sends LEADERINFO
    // only after its accepted epoch is durable.
    let rec = Recovered {
        accepted_epoch: 3,
        current_epoch: 3,
        ..Recovered::default()
    };
    let mut c = core(3, 3, rec);
    drain(&mut c);
    let vote = c.own_vote();
    let agree = looking(vote);
    c.handle_message(1, ServerId(1), agree.clone());
    c.handle_tick(TICK * 3);
    assert_eq!(c.role(), Role::Leading);
    drain(&mut c);
    c.handle_message(
        TICK * 3,
        ServerId(1),
        Message::FollowerInfo {
            conn: 11,
            accepted_epoch: 5,
            last_zxid: Zxid::ZERO,
        },
    );
    let out = drain(&mut c);
    let persist = out
        .iter()
        .find_map(|o| match o {
            Output::Persist { id, ops } => Some((*id, ops.clone())),
            _ => None,
        })
        .expect("the new epoch is persisted");
    assert_eq!(persist.1, vec![PersistOp::AcceptedEpoch(6)]);
    assert!(sends(&out).is_empty(), "no LEADERINFO before the fsync");
    c.handle_persisted(TICK * 3, persist.0);
    assert_eq!(
        sends(&drain(&mut c)),
        vec![(ServerId(1), Message::LeaderInfo { conn: 11, epoch: 6 })]
    );
}

#[test]
fn a_follower_acks_the_epoch_only_once_durable() {
    // Goal: ACKEPOCH leaves after the accepted epoch's fsync, not before.
    let mut c = core(2, 3, Recovered::default());
    drain(&mut c);
    let vote = Vote {
        leader: ServerId(1),
        zxid: Zxid::ZERO,
        election_epoch: 1,
        peer_epoch: 0,
    };
    for (from, state) in [(1, PeerState::Leading), (3, PeerState::Following)] {
        let n = Message::Notification(Notification {
            vote,
            state,
            configs: vec![Membership::new(
                Zxid::ZERO,
                [ServerId(1), ServerId(2), ServerId(3)],
            )],
        });
        c.handle_message(1, ServerId(from), n);
    }
    let conn = sends(&drain(&mut c))
        .into_iter()
        .find_map(|(_, m)| match m {
            Message::FollowerInfo { conn, .. } => Some(conn),
            _ => None,
        })
        .expect("FOLLOWERINFO sent");
    c.handle_message(2, ServerId(1), Message::LeaderInfo { conn, epoch: 4 });
    let out = drain(&mut c);
    assert!(sends(&out).is_empty());
    let ids = persist_ids(&out);
    c.handle_persisted(3, ids[0]);
    let out = sends(&drain(&mut c));
    assert!(matches!(
        out.as_slice(),
        [(ServerId(1), Message::AckEpoch { epoch: 4, .. })]
    ));
    assert_eq!(c.accepted_epoch(), 4);
}

#[test]
fn sync_mode_follows_the_learners_position() {
    // Goal: DIFF, TRUNC, TRUNC+DIFF and SNAP are chosen as in ZooKeeper, with
    // the commit point as the safe truncation target across epochs.
    let z = Zxid::new;
    let entries = vec![
        entry(z(1, 5)),
        entry(z(1, 6)),
        entry(z(2, 1)),
        entry(z(2, 2)),
    ];
    let snap = Snapshot {
        zxid: z(1, 4),
        state: Vec::new().into(),
    };
    let log = Log::new(
        Some(snap),
        entries,
        Configs::new(Membership::new(Zxid::ZERO, [ServerId(1)])),
    );
    assert_eq!(choose_sync(&log, z(2, 2), z(2, 2)), SyncMode::Diff);
    assert_eq!(choose_sync(&log, z(1, 6), z(1, 5)), SyncMode::Diff);
    assert_eq!(choose_sync(&log, z(1, 4), z(1, 4)), SyncMode::Diff);
    assert_eq!(
        choose_sync(&log, z(2, 5), z(2, 1)),
        SyncMode::Trunc(z(2, 2))
    );
    // (2,1) was followed by an uncommitted (2,2)' elsewhere: (1,7) is not in
    // our log but the next entry after it is epoch 2, so fall back to c.
    assert_eq!(
        choose_sync(&log, z(1, 7), z(1, 5)),
        SyncMode::TruncDiff(z(1, 5))
    );
    // Same-epoch hole: TRUNC to the entry before, then DIFF.
    let log2 = Log::new(
        None,
        vec![entry(z(1, 1)), entry(z(1, 3))],
        Configs::new(Membership::new(Zxid::ZERO, [ServerId(1)])),
    );
    assert_eq!(
        choose_sync(&log2, z(1, 2), Zxid::ZERO),
        SyncMode::TruncDiff(z(1, 1))
    );
    // Older than the window: SNAP.
    assert_eq!(choose_sync(&log, z(1, 2), z(1, 2)), SyncMode::Snap);
    // Past our end in a later epoch, commit point unknown to the window: SNAP.
    assert_eq!(choose_sync(&log, z(3, 1), z(1, 1)), SyncMode::Snap);
}

#[test]
fn commits_wait_for_a_durable_quorum_and_go_in_zxid_order() {
    // Goal: a proposal commits only when a quorum, counting the leader's own
    // fsync, has it durably; commits come out in zxid order.
    let mut cores = vec![
        core(1, 3, Recovered::default()),
        core(2, 3, Recovered::default()),
        core(3, 3, Recovered::default()),
    ];
    let now = run(&mut cores, 0, established);
    let li = cores
        .iter()
        .position(|c| c.role() == Role::Leading)
        .expect("a leader");
    let leader = &mut cores[li];
    let epoch = leader.serving_epoch().expect("established");
    let req = |cxid| Request {
        session_id: 1,
        cxid,
        time_ms: 0,
        txn: Txn::Error(0),
    };
    let z1 = leader.handle_submit(now, req(1)).expect("accepted");
    let z2 = leader.handle_submit(now, req(2)).expect("accepted");
    assert_eq!((z1, z2), (Zxid::new(epoch, 1), Zxid::new(epoch, 2)));
    let out = drain(leader);
    let pids = persist_ids(&out);
    assert_eq!(pids.len(), 2);
    let proposals = sends(&out)
        .iter()
        .filter(|(_, m)| matches!(m, Message::Proposal { .. }))
        .count();
    assert_eq!(proposals, 4, "two proposals to each of two learners");
    // A learner's ACK of z2 alone is not a quorum: our own log is not durable.
    let f = cores[(li + 1) % 3].id();
    let leader = &mut cores[li];
    leader.handle_message(now, f, Message::Ack { epoch, zxid: z2 });
    assert!(!drain(leader).iter().any(|o| matches!(o, Output::Commit(_))));
    // Our fsync of z1 completes: z1 commits (quorum: us + the learner), z2 not.
    leader.handle_persisted(now, pids[0]);
    let out = drain(leader);
    let commits: Vec<Zxid> = out
        .iter()
        .filter_map(|o| match o {
            Output::Commit(e) => Some(Zxid(e.hdr.zxid)),
            _ => None,
        })
        .collect();
    assert_eq!(commits, vec![z1]);
    assert!(sends(&out).contains(&(f, Message::Commit { epoch, zxid: z1 })));
    leader.handle_persisted(now, pids[1]);
    let commits: Vec<Zxid> = drain(leader)
        .iter()
        .filter_map(|o| match o {
            Output::Commit(e) => Some(Zxid(e.hdr.zxid)),
            _ => None,
        })
        .collect();
    assert_eq!(commits, vec![z2]);
    assert_eq!(leader.committed_zxid(), z2);
}

#[test]
fn a_follower_acks_a_proposal_only_after_its_fsync() {
    // Goal: PROPOSAL -> Persist, and the ACK leaves only at handle_persisted.
    let mut cores = vec![
        core(1, 3, Recovered::default()),
        core(2, 3, Recovered::default()),
        core(3, 3, Recovered::default()),
    ];
    let now = run(&mut cores, 0, established);
    let fi = cores
        .iter()
        .position(|c| matches!(c.role(), Role::Following { .. }))
        .expect("a follower");
    let Role::Following { leader } = cores[fi].role() else {
        unreachable!()
    };
    let f = &mut cores[fi];
    let epoch = f.serving_epoch().expect("serving");
    let z = Zxid::new(epoch, 1);
    let prev = f.last_zxid();
    f.handle_message(
        now,
        leader,
        Message::Proposal {
            epoch,
            prev_zxid: prev,
            entry: entry(z),
        },
    );
    let out = drain(f);
    assert!(sends(&out).is_empty(), "no ACK before the fsync");
    let pids = persist_ids(&out);
    assert_eq!(pids.len(), 1);
    f.handle_persisted(now, pids[0]);
    assert_eq!(
        sends(&drain(f)),
        vec![(leader, Message::Ack { epoch, zxid: z })]
    );
    // A proposal that does not follow our log end starts a new handshake.
    f.handle_message(
        now,
        leader,
        Message::Proposal {
            epoch,
            prev_zxid: Zxid::new(epoch, 5),
            entry: entry(Zxid::new(epoch, 6)),
        },
    );
    assert!(matches!(
        sends(&drain(f)).as_slice(),
        [(_, Message::FollowerInfo { .. })]
    ));
}

#[test]
fn counter_rollover_forces_an_election() {
    // Goal: when the epoch's counter is exhausted the leader refuses and
    // goes back to LOOKING, abandoning nothing committed.
    let rec = |last: u32| Recovered {
        accepted_epoch: 1,
        current_epoch: 1,
        snapshot: None,
        log: vec![entry(Zxid::new(1, last))],
        membership: None,
        configs: Vec::new(),
    };
    let mut cores = vec![core(1, 3, rec(1)), core(2, 3, rec(1)), core(3, 3, rec(2))];
    let now = run(&mut cores, 0, established);
    let leader = &mut cores[2];
    assert_eq!(leader.role(), Role::Leading);
    let epoch = leader.serving_epoch().expect("established");
    // Pretend the epoch's counter is at its end.
    leader.log.append(entry(Zxid::new(epoch, u32::MAX)));
    let r = leader.handle_submit(
        now,
        Request {
            session_id: 1,
            cxid: 1,
            time_ms: 0,
            txn: Txn::Error(0),
        },
    );
    assert_eq!(r, Err(SubmitError::Rollover));
    assert_eq!(leader.role(), Role::Looking);
    assert_eq!(SubmitError::Rollover.code(), -4);
}

fn reconfig_to(voters: &[u64]) -> Request {
    let text: String = voters
        .iter()
        .map(|v| {
            format!(
                "server.{v}=127.0.0.1:{}:{};{}\n",
                2000 + v,
                3000 + v,
                4000 + v
            )
        })
        .collect();
    Request {
        session_id: 1,
        cxid: 1,
        time_ms: 0,
        txn: Txn::Reconfig {
            data: text.into_bytes(),
        },
    }
}

fn leader_index(cores: &[Core]) -> usize {
    cores
        .iter()
        .position(|c| c.role() == Role::Leading)
        .expect("a leader")
}

fn voters_of(c: &Core) -> Vec<u64> {
    c.active_config().voters.iter().map(|s| s.0).collect()
}

#[test]
fn a_synced_joiner_is_added_by_reconfig_and_every_server_activates_it() {
    // Goal: a server outside the configuration follows as a learner, a
    // reconfig adding it commits, and every server then votes by the new
    // configuration.
    let mut cores: Vec<Core> = (1..=3).map(|i| core(i, 3, Recovered::default())).collect();
    // The joiner is configured, as in ZooKeeper, with the ensemble and itself.
    cores.push(core(4, 4, Recovered::default()));
    let now = run(&mut cores, 0, established);
    assert!(cores[3].role() != Role::Leading);
    assert_eq!(
        voters_of(&cores[3]),
        vec![1, 2, 3],
        "the joiner learned the real config"
    );
    let l = leader_index(&cores);
    let z = cores[l]
        .handle_submit(now, reconfig_to(&[1, 2, 3, 4]))
        .expect("proposed");
    let now = run(&mut cores, now, |cs| {
        cs.iter().all(|c| c.committed_zxid() >= z)
    });
    for c in &cores {
        assert_eq!(voters_of(c), vec![1, 2, 3, 4]);
        assert_eq!(c.active_config().version, z);
        assert!(!c.reconfig_pending());
    }
    // Ordinary writes keep committing under the new configuration.
    let w = cores[l]
        .handle_submit(
            now,
            Request {
                session_id: 1,
                cxid: 2,
                time_ms: 0,
                txn: Txn::Error(0),
            },
        )
        .expect("proposed");
    run(&mut cores, now, |cs| {
        cs.iter().all(|c| c.committed_zxid() >= w)
    });
}

#[test]
fn reconfigs_need_a_synced_quorum_of_the_new_config_and_one_at_a_time() {
    // Goal: NewConfigNoQuorum when the new configuration's quorum is not
    // synced with the leader, ReconfigInProgress while one is pending.
    let mut cores: Vec<Core> = (1..=3).map(|i| core(i, 3, Recovered::default())).collect();
    let now = run(&mut cores, 0, established);
    let l = leader_index(&cores);
    let me = l as u64 + 1;
    assert_eq!(
        cores[l].handle_submit(now, reconfig_to(&[me, 8, 9])),
        Err(SubmitError::NewConfigNoQuorum)
    );
    let others: Vec<u64> = (1..=3).filter(|&i| i != me).collect();
    cores[l]
        .handle_submit(now, reconfig_to(&[me, others[0]]))
        .expect("proposed");
    assert!(cores[l].reconfig_pending());
    assert_eq!(
        cores[l].handle_submit(now, reconfig_to(&[1, 2, 3])),
        Err(SubmitError::ReconfigInProgress)
    );
    let bad = Request {
        txn: Txn::Reconfig {
            data: b"not a config".to_vec(),
        },
        ..reconfig_to(&[1])
    };
    let now = run(&mut cores, now, |cs| !cs[l].reconfig_pending());
    assert_eq!(
        cores[l].handle_submit(now, bad),
        Err(SubmitError::BadReconfig)
    );
}

#[test]
fn a_leader_removed_by_reconfig_steps_down_and_the_remaining_voters_elect() {
    // Goal: the leader commits a configuration without itself, steps down,
    // the new voters elect one of them, and the old leader follows as a
    // non-voting learner that can never be elected again.
    let mut cores: Vec<Core> = (1..=3).map(|i| core(i, 3, Recovered::default())).collect();
    let now = run(&mut cores, 0, established);
    let l = leader_index(&cores);
    let me = l as u64 + 1;
    let rest: Vec<u64> = (1..=3).filter(|&i| i != me).collect();
    let z = cores[l]
        .handle_submit(now, reconfig_to(&rest))
        .expect("proposed");
    let now = run(&mut cores, now, |cs| {
        cs.iter()
            .all(|c| c.committed_zxid() >= z && c.serving_epoch().is_some())
            && cs.iter().any(|c| c.role() == Role::Leading)
    });
    let l2 = leader_index(&cores);
    assert_ne!(l2, l, "the removed leader stepped down");
    assert!(rest.contains(&(l2 as u64 + 1)));
    assert_eq!(
        cores[l].role(),
        Role::Following {
            leader: ServerId(l2 as u64 + 1)
        }
    );
    // The new leader commits with the two remaining voters alone.
    let w = cores[l2]
        .handle_submit(
            now,
            Request {
                session_id: 1,
                cxid: 3,
                time_ms: 0,
                txn: Txn::Error(0),
            },
        )
        .expect("proposed");
    run(&mut cores, now, |cs| cs[l2].committed_zxid() >= w);
}

#[test]
fn a_reconfig_commits_only_with_a_quorum_of_the_old_and_of_the_new_config() {
    // Goal: joint consensus. With the new configuration's other voters cut
    // off, the old configuration's quorum alone commits nothing from the
    // reconfig on, and no leader is elected; once they are back it commits.
    let mut cores: Vec<Core> = (1..=3).map(|i| core(i, 3, Recovered::default())).collect();
    cores.push(core(4, 4, Recovered::default()));
    cores.push(core(5, 5, Recovered::default()));
    let now = run(&mut cores, 0, established);
    let l = leader_index(&cores);
    let me = l as u64 + 1;
    let z = cores[l]
        .handle_submit(now, reconfig_to(&[me, 4, 5]))
        .expect("proposed");
    let after = cores[l]
        .handle_submit(
            now,
            Request {
                session_id: 1,
                cxid: 9,
                time_ms: 0,
                txn: Txn::Error(0),
            },
        )
        .expect("proposed");
    let cut = run_cut(&mut cores, now, &[4, 5], |cs| {
        cs.iter().any(|c| c.committed_zxid() >= z)
    });
    assert_eq!(
        cut, None,
        "committed without the new configuration's quorum"
    );
    let old: Vec<usize> = (0..3).collect();
    assert!(old.iter().all(|&i| cores[i].last_zxid() >= after));
    let now = 200 * TICK + now;
    run(&mut cores, now, |cs| {
        cs.iter()
            .all(|c| c.committed_zxid() >= after && c.serving_epoch().is_some())
    });
    for c in &cores {
        assert_eq!(voters_of(c), vec![me, 4, 5]);
    }
}
