//! Audit record encodings (golden lines) and the file and queued sinks.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use corral_proto::{Acl, CreateMode, Id};
use corral_tenant::audit_file::{tenant_log_name, MAIN_LOG};
use corral_tenant::{
    acl_string, principal_for_audit, znode_type, AuditFormat, AuditOp, AuditRecord, AuditResult,
    AuditSink, AuditWriter, FileSink, FileSinkConfig, QueuedSink,
};

fn create_record() -> AuditRecord {
    let mut r = AuditRecord::new(
        1_700_000_000_000,
        "1",
        AuditOp::Create,
        AuditResult::Success,
    );
    r.tenant = Some("team-a".into());
    r.session = Some(0x19344730000);
    r.principals = vec!["ip:192.168.1.2".into(), "x509:CN=svc,O=corp".into()];
    r.client_ip = Some("192.168.1.2".parse().expect("ip"));
    r.path_relative = Some("/a".into());
    r.path_absolute = Some("/tenants/team-a/a".into());
    r.znode_type = Some(znode_type(CreateMode::Persistent).into());
    r.zxid = Some(0x1_0000_0005);
    r
}

#[test]
fn json_golden_line() {
    // Goal: the JSON-lines encoding is stable, hex-encodes ids, omits absent fields and parses back.
    let r = create_record();
    let line = r.to_json_line();
    assert_eq!(
        line,
        r#"{"time_ms":1700000000000,"server":"1","tenant":"team-a","session":"0x19344730000","principals":["ip:192.168.1.2","x509:CN=svc,O=corp"],"client_ip":"192.168.1.2","operation":"create","path_relative":"/a","path_absolute":"/tenants/team-a/a","znode_type":"persistent","zxid":"0x100000005","result":"success","error_code":0}"#
    );
    assert_eq!(AuditRecord::from_json_line(&line).expect("parse"), r);
    assert_eq!(r.encode(AuditFormat::JsonLines), line);
}

#[test]
fn key_value_golden_line() {
    // Goal: key=value keeps ZooKeeper's field order and names, with corral's keys before result.
    let line = create_record().to_key_value_line();
    assert_eq!(
        line,
        "session=0x19344730000\tuser=192.168.1.2,CN=svc,O=corp\tip=192.168.1.2\toperation=create\t\
         znode=/tenants/team-a/a\tznode_type=persistent\ttenant=team-a\tznode_relative=/a\t\
         zxid=0x100000005\tserver=1\ttime_ms=1700000000000\tresult=success"
    );
}

#[test]
fn key_value_without_corral_keys_is_zookeepers_line() {
    // Goal: dropping corral's extra keys yields exactly the line ZooKeeper's docs show.
    let mut r = create_record();
    r.principals = vec!["ip:192.168.1.2".into(), "sasl:zkcli@HADOOP.COM".into()];
    r.path_absolute = Some("/a".into());
    let extras = [
        "tenant=",
        "znode_relative=",
        "zxid=",
        "error_code=",
        "server=",
        "time_ms=",
    ];
    let line = r.to_key_value_line();
    let zk_only: Vec<&str> = line
        .split('\t')
        .filter(|kv| !extras.iter().any(|e| kv.starts_with(e)))
        .collect();
    assert_eq!(
        zk_only.join("\t"),
        "session=0x19344730000\tuser=192.168.1.2,zkcli@HADOOP.COM\tip=192.168.1.2\toperation=create\tznode=/a\tznode_type=persistent\tresult=success"
    );
}

#[test]
fn key_value_failure_set_acl_and_minimal_records() {
    // Goal: failures carry error_code, setAcl carries ZooKeeper's acl text, absent fields vanish.
    let mut r = AuditRecord::new(5, "2", AuditOp::SetAcl, AuditResult::Failure);
    r.session = Some(-1);
    r.acl = Some(acl_string(&[Acl::new(31, "world", "anyone")]));
    r.path_absolute = Some("/a".into());
    r.error_code = -102;
    assert_eq!(
        r.to_key_value_line(),
        "session=0xffffffffffffffff\toperation=setAcl\tznode=/a\tacl=world:anyone:cdrwa\terror_code=-102\tserver=2\ttime_ms=5\tresult=failure"
    );
    let start = AuditRecord::new(0, "1", AuditOp::ServerStart, AuditResult::Invoked);
    assert_eq!(
        start.to_key_value_line(),
        "operation=serverStart\tserver=1\ttime_ms=0\tresult=invoked"
    );
    assert_eq!(
        start.to_json_line(),
        r#"{"time_ms":0,"server":"1","principals":[],"operation":"serverStart","result":"invoked","error_code":0}"#
    );
}

#[test]
fn zookeeper_operation_names() {
    // Goal: operations ZooKeeper audits keep its AuditConstants names in both formats.
    for (op, name) in [
        (AuditOp::Create, "create"),
        (AuditOp::Delete, "delete"),
        (AuditOp::SetData, "setData"),
        (AuditOp::SetAcl, "setAcl"),
        (AuditOp::Multi, "multiOperation"),
        (AuditOp::Reconfig, "reconfig"),
        (
            AuditOp::EphemeralDeletion,
            "ephemeralZNodeDeletionOnSessionCloseOrExpire",
        ),
        (AuditOp::ServerStart, "serverStart"),
        (AuditOp::QuotaRejected, "quotaRejected"),
    ] {
        assert_eq!(op.as_str(), name);
        assert_eq!(
            serde_json::to_string(&op).expect("json"),
            format!("\"{name}\"")
        );
    }
}

#[test]
fn values_cannot_forge_lines() {
    // Goal: tabs and newlines inside values are escaped, so one record is one line in both formats.
    let mut r = create_record();
    r.principals = vec!["x509:CN=a\nresult=success\tuser=admin".into()];
    r.path_relative = Some("/x\r".into());
    let kv = r.to_key_value_line();
    assert!(!kv.contains('\n') && !kv.contains('\r'), "{kv}");
    assert_eq!(kv.matches('\t').count(), 11, "only the separators: {kv}");
    assert!(kv.contains("user=CN=a\\nresult=success\\tuser=admin"));
    let json = r.to_json_line();
    assert!(!json.contains('\n'));
    assert_eq!(AuditRecord::from_json_line(&json).expect("parse"), r);
}

#[test]
fn principals_and_acl_text() {
    // Goal: digest principals lose their hash; ACL text is ZooKeeper's concatenated cdrwa form.
    assert_eq!(
        principal_for_audit(&Id::new("digest", "bob:X1a2b3=")),
        "digest:bob"
    );
    assert_eq!(
        principal_for_audit(&Id::new("ip", "10.0.0.1")),
        "ip:10.0.0.1"
    );
    assert_eq!(
        principal_for_audit(&Id::new("x509", "CN=a,O=b")),
        "x509:CN=a,O=b"
    );
    let acl = [
        Acl::new(1, "digest", "bob:hash"),
        Acl::new(4 | 8, "ip", "10.0.0.0/8"),
    ];
    assert_eq!(acl_string(&acl), "digest:bob:hash:rip:10.0.0.0/8:cd");
    assert_eq!(acl_string(&[]), "");
}

#[test]
fn znode_types_are_zookeeper_names() {
    // Goal: create modes print as ZooKeeper's lowercased CreateMode names.
    assert_eq!(
        znode_type(CreateMode::EphemeralSequential),
        "ephemeral_sequential"
    );
    assert_eq!(znode_type(CreateMode::Container), "container");
    assert_eq!(
        znode_type(CreateMode::PersistentSequentialWithTtl),
        "persistent_sequential_with_ttl"
    );
}

fn read_lines(path: &Path) -> Vec<String> {
    match fs::read_to_string(path) {
        Ok(s) => s.lines().map(str::to_string).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn numbered_record(i: u64) -> AuditRecord {
    // Same width for every i below 10, so every line has the same length.
    AuditRecord::new(1_000 + i, "1", AuditOp::Delete, AuditResult::Success)
}

#[test]
fn file_sink_rotates_by_size_and_keeps_n_files() {
    // Goal: with room for 3 lines per file and 2 kept, 10 records leave 1 + 3 + 3 lines and no third file.
    let dir = tempfile::tempdir().expect("tempdir");
    let line_len = numbered_record(0).to_json_line().len() as u64 + 1;
    let mut cfg = FileSinkConfig::new(dir.path());
    cfg.max_file_bytes = 3 * line_len;
    cfg.keep_files = 2;
    let sink = FileSink::open(cfg).expect("open");
    for i in 0..10 {
        sink.record(numbered_record(i));
        // Flush each so nothing is dropped and the order of rotation is exact.
        sink.flush();
    }
    assert_eq!((sink.written(), sink.dropped()), (10, 0));
    sink.close();
    let times = |name: &str| -> Vec<u64> {
        read_lines(&dir.path().join(name))
            .iter()
            .map(|l| AuditRecord::from_json_line(l).expect("json").time_ms - 1_000)
            .collect()
    };
    assert_eq!(times(MAIN_LOG), [9]);
    assert_eq!(times("audit.log.1"), [6, 7, 8]);
    assert_eq!(times("audit.log.2"), [3, 4, 5]);
    assert!(!dir.path().join("audit.log.3").exists());
    let files = fs::read_dir(dir.path()).expect("dir").count();
    assert_eq!(files, 3);
}

#[test]
fn file_sink_keep_zero_and_oversized_lines() {
    // Goal: keep_files=0 keeps no rotated file, and a line longer than the limit is still written.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = FileSinkConfig::new(dir.path());
    cfg.max_file_bytes = 10;
    cfg.keep_files = 0;
    cfg.format = AuditFormat::KeyValue;
    let sink = FileSink::open(cfg).expect("open");
    for i in 0..3 {
        sink.record(numbered_record(i));
        sink.flush();
    }
    sink.close();
    let lines = read_lines(&dir.path().join(MAIN_LOG));
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("time_ms=1002"), "{lines:?}");
    assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 1);
}

#[test]
fn file_sink_per_tenant_files() {
    // Goal: per-tenant mode splits by tenant; untenanted and unsafe tenant names go to the main file.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = FileSinkConfig::new(dir.path());
    cfg.per_tenant = true;
    cfg.format = AuditFormat::KeyValue;
    let sink = FileSink::open(cfg).expect("open");
    for tenant in [
        Some("a"),
        Some("b"),
        Some("a"),
        None,
        Some("../evil"),
        Some(""),
    ] {
        let mut r = numbered_record(0);
        r.tenant = tenant.map(str::to_string);
        sink.record(r);
    }
    sink.close();
    assert_eq!(read_lines(&dir.path().join(tenant_log_name("a"))).len(), 2);
    assert_eq!(read_lines(&dir.path().join(tenant_log_name("b"))).len(), 1);
    assert_eq!(read_lines(&dir.path().join(MAIN_LOG)).len(), 3);
    assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 3);
    assert!(!dir.path().parent().expect("parent").join("evil").exists());
}

#[test]
fn file_sink_appends_across_reopen() {
    // Goal: a restarted sink appends to the existing file and counts its size toward rotation.
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..2 {
        let sink = FileSink::open(FileSinkConfig::new(dir.path())).expect("open");
        sink.record(numbered_record(i));
        sink.close();
    }
    assert_eq!(read_lines(&dir.path().join(MAIN_LOG)).len(), 2);
}

#[test]
fn file_sink_tiny_queue_accounts_for_every_record() {
    // Goal: under a burst into a 1-slot queue, every record is either written or counted as dropped.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = FileSinkConfig::new(dir.path());
    cfg.queue_len = 1;
    let sink = FileSink::open(cfg).expect("open");
    let total = 2_000u64;
    for i in 0..total {
        sink.record(numbered_record(i % 10));
    }
    sink.flush();
    let (written, dropped) = (sink.written(), sink.dropped());
    sink.close();
    assert_eq!(written + dropped, total);
    assert_eq!(read_lines(&dir.path().join(MAIN_LOG)).len() as u64, written);
}

/// A writer that signals each write and then waits for permission to finish it.
struct GatedWriter {
    started: mpsc::Sender<()>,
    gate: mpsc::Receiver<()>,
    out: Arc<Mutex<Vec<u64>>>,
}

impl AuditWriter for GatedWriter {
    fn write(&mut self, record: &AuditRecord) -> io::Result<()> {
        let _ = self.started.send(());
        self.gate
            .recv()
            .map_err(|_| io::Error::other("gate closed"))?;
        self.out.lock().expect("lock").push(record.time_ms);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn queued_sink_counts_drops_when_full() {
    // Goal: with the writer stuck and a 2-slot queue full, further records are counted as dropped, not lost silently.
    let (started_tx, started_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel();
    let out = Arc::new(Mutex::new(Vec::new()));
    let writer = GatedWriter {
        started: started_tx,
        gate: gate_rx,
        out: Arc::clone(&out),
    };
    let sink = QueuedSink::spawn(writer, 2).expect("spawn");
    sink.record(numbered_record(0));
    started_rx
        .recv()
        .expect("writer took record 0 and is blocked");
    sink.record(numbered_record(1));
    sink.record(numbered_record(2));
    assert_eq!(sink.dropped(), 0, "the queue holds two");
    sink.record(numbered_record(3));
    sink.record(numbered_record(4));
    assert_eq!(sink.dropped(), 2);
    for _ in 0..3 {
        gate_tx.send(()).expect("open gate");
    }
    sink.flush();
    assert_eq!(sink.written(), 3);
    assert_eq!(*out.lock().expect("lock"), [1_000, 1_001, 1_002]);
    sink.close();
}

/// A writer whose every write fails.
struct FailingWriter;

impl AuditWriter for FailingWriter {
    fn write(&mut self, _: &AuditRecord) -> io::Result<()> {
        Err(io::Error::other("disk full"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn failed_writes_count_as_dropped() {
    // Goal: a record the writer cannot write is counted in dropped(), never vanishing silently.
    let sink = QueuedSink::spawn(FailingWriter, 8).expect("spawn");
    for i in 0..3 {
        sink.record(numbered_record(i));
    }
    sink.flush();
    assert_eq!((sink.written(), sink.dropped()), (0, 3));
}

#[test]
fn sinks_are_usable_as_trait_objects() {
    // Goal: the server can hold any sink behind Arc<dyn AuditSink>.
    let sink: Arc<dyn AuditSink> = Arc::new(corral_tenant::MemorySink::new(10));
    sink.record(create_record());
    assert_eq!(sink.dropped(), 0);
}
