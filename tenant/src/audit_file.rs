//! The audit file sink: one line per record, size-based rotation, optionally
//! one file per tenant. The only code in this crate that does I/O.
//!
//! Files live in one directory: `audit.log` for records without a tenant (and
//! for every record unless `per_tenant` is set), `audit-<tenant>.log` per
//! tenant. When a line would take a file past `max_file_bytes`, the file is
//! rotated first: `audit.log.N-1` → `audit.log.N`, …, `audit.log` →
//! `audit.log.1`, keeping `keep_files` rotated files; the oldest is replaced.
//! A single line longer than the limit still gets written, alone in its file.
//! Files are appended to across restarts. Lines are flushed per batch, not
//! fsynced: the txn log, not the audit log, is the durable record of writes.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::audit::{AuditFormat, AuditRecord};
use crate::audit_sink::{AuditSink, AuditWriter, QueuedSink};

/// Name of the shared (or only) audit file.
pub const MAIN_LOG: &str = "audit.log";
/// Most per-tenant files open at once; records of further tenants go to
/// [`MAIN_LOG`] (the registry's own bound is far lower in practice).
pub const TENANT_FILES_MAX: usize = 1024;

/// How a [`FileSink`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkConfig {
    pub dir: PathBuf,
    pub format: AuditFormat,
    /// Size at which a file is rotated.
    pub max_file_bytes: u64,
    /// Rotated files kept per log (0 keeps none).
    pub keep_files: usize,
    /// One file per tenant as well as the main one.
    pub per_tenant: bool,
    /// Records buffered between the request path and the writer thread.
    pub queue_len: usize,
}

impl FileSinkConfig {
    /// JSON lines, 100 MiB files, 10 kept, one file, 65536 queued records.
    pub fn new(dir: impl Into<PathBuf>) -> FileSinkConfig {
        FileSinkConfig {
            dir: dir.into(),
            format: AuditFormat::JsonLines,
            max_file_bytes: 100 * 1024 * 1024,
            keep_files: 10,
            per_tenant: false,
            queue_len: 65536,
        }
    }
}

/// `audit-<tenant>.log`.
pub fn tenant_log_name(tenant: &str) -> String {
    format!("audit-{tenant}.log")
}

/// The audit sink that writes files, on a background thread.
pub struct FileSink {
    queue: QueuedSink,
}

impl FileSink {
    /// Creates the directory if needed, opens the main file and starts the writer.
    pub fn open(config: FileSinkConfig) -> io::Result<FileSink> {
        let queue_len = config.queue_len;
        let writer = RotatingFileWriter::open(config)?;
        Ok(FileSink {
            queue: QueuedSink::spawn(writer, queue_len)?,
        })
    }

    pub fn written(&self) -> u64 {
        self.queue.written()
    }

    /// Waits until everything recorded before is written and flushed.
    pub fn flush(&self) {
        self.queue.flush();
    }

    /// Writes out the queue, flushes and stops the writer thread.
    pub fn close(self) {
        self.queue.close();
    }
}

impl AuditSink for FileSink {
    fn record(&self, record: AuditRecord) {
        self.queue.record(record);
    }

    fn dropped(&self) -> u64 {
        self.queue.dropped()
    }
}

/// The synchronous writer behind [`FileSink`]; usable directly with
/// [`QueuedSink`] or in tests.
pub struct RotatingFileWriter {
    config: FileSinkConfig,
    main: RotatingFile,
    tenants: HashMap<String, RotatingFile>,
}

impl RotatingFileWriter {
    pub fn open(config: FileSinkConfig) -> io::Result<RotatingFileWriter> {
        fs::create_dir_all(&config.dir)?;
        let main = RotatingFile::open(config.dir.join(MAIN_LOG), &config)?;
        Ok(RotatingFileWriter {
            config,
            main,
            tenants: HashMap::new(),
        })
    }

    fn target(&mut self, tenant: Option<&str>) -> io::Result<&mut RotatingFile> {
        let tenant = match tenant {
            // Only registry-valid names become file names: nothing like "../x".
            Some(t) if self.config.per_tenant && crate::tenant::is_valid_name(t) => t,
            _ => return Ok(&mut self.main),
        };
        if !self.tenants.contains_key(tenant) {
            if self.tenants.len() >= TENANT_FILES_MAX {
                return Ok(&mut self.main);
            }
            let path = self.config.dir.join(tenant_log_name(tenant));
            let file = RotatingFile::open(path, &self.config)?;
            self.tenants.insert(tenant.to_string(), file);
        }
        Ok(self.tenants.get_mut(tenant).expect("inserted above"))
    }
}

impl AuditWriter for RotatingFileWriter {
    fn write(&mut self, record: &AuditRecord) -> io::Result<()> {
        let line = record.encode(self.config.format);
        self.target(record.tenant.as_deref())?.write_line(&line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.main.flush()?;
        for f in self.tenants.values_mut() {
            f.flush()?;
        }
        Ok(())
    }
}

struct RotatingFile {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

impl RotatingFile {
    fn open(path: PathBuf, config: &FileSinkConfig) -> io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            out: BufWriter::new(file),
            size,
            max_bytes: config.max_file_bytes,
            keep: config.keep_files,
        })
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.keep == 0 {
            fs::remove_file(&self.path)?;
        } else {
            for i in (1..self.keep).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    fs::rename(&from, numbered(&self.path, i + 1))?;
                }
            }
            fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.out = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

/// `audit.log` → `audit.log.<n>`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}
