//! A small pipelining ZooKeeper client for `corral bench` and the CLI. It
//! speaks the wire protocol directly, so it drives any ZooKeeper-compatible
//! server the same way.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use corral_proto::opcode::xid;
use corral_proto::{
    ConnectRequest, ConnectResponse, OpCode, Reader, Record, ReplyHeader, Request, RequestHeader,
    Response, Writer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// One session over one TCP connection.
pub struct Client {
    wr: BufWriter<OwnedWriteHalf>,
    rd: BufReader<OwnedReadHalf>,
    next_xid: i32,
    pub session_id: i64,
    pub timeout_ms: i32,
}

/// A reply: its header and, when `err == 0`, the decoded body.
pub struct Reply {
    pub header: ReplyHeader,
    pub body: Response,
}

async fn read_frame(rd: &mut BufReader<OwnedReadHalf>) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    rd.read_exact(&mut len)
        .await
        .context("reading a frame length")?;
    let n = corral_proto::frame::check_len(len, 64 << 20)?;
    let mut body = vec![0u8; n];
    rd.read_exact(&mut body).await.context("reading a frame")?;
    Ok(body)
}

impl Client {
    pub async fn connect(addr: SocketAddr, timeout_ms: i32) -> Result<Client> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut c = Client {
            wr: BufWriter::with_capacity(64 * 1024, wr),
            rd: BufReader::with_capacity(64 * 1024, rd),
            next_xid: 1,
            session_id: 0,
            timeout_ms: 0,
        };
        let mut w = Writer::framed();
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        }
        .write(&mut w);
        c.wr.write_all(&w.finish_frame()).await?;
        c.wr.flush().await?;
        let body = read_frame(&mut c.rd).await?;
        let rsp = ConnectResponse::from_bytes(&body)?;
        if rsp.timeout_ms <= 0 {
            bail!("{addr} refused the session");
        }
        c.session_id = rsp.session_id;
        c.timeout_ms = rsp.timeout_ms;
        Ok(c)
    }

    /// Queues a request without waiting; returns its xid and opcode.
    pub async fn send(&mut self, req: &Request) -> Result<(i32, OpCode)> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        let mut w = Writer::framed();
        RequestHeader {
            xid,
            op: req.opcode().code(),
        }
        .write(&mut w);
        req.encode(&mut w);
        self.wr.write_all(&w.finish_frame()).await?;
        Ok((xid, req.opcode()))
    }

    pub async fn flush(&mut self) -> Result<()> {
        self.wr.flush().await?;
        Ok(())
    }

    /// Whether a whole frame is already buffered, so [`Client::recv`] can
    /// take it without reading the socket.
    pub fn reply_ready(&self) -> bool {
        let b = self.rd.buffer();
        b.len() >= 4 && {
            let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            b.len() - 4 >= n
        }
    }

    /// Waits for the next reply, skipping watch notifications and pings.
    pub async fn recv(&mut self, op: OpCode) -> Result<Reply> {
        loop {
            let body = read_frame(&mut self.rd).await?;
            let mut r = Reader::new(&body);
            let header = ReplyHeader::read(&mut r)?;
            if header.xid == xid::NOTIFICATION || header.xid == xid::PING {
                continue;
            }
            let body = if header.err == 0 {
                Response::decode(op, &mut r)?
            } else {
                Response::Empty
            };
            return Ok(Reply { header, body });
        }
    }

    /// Waits for the next watch notification, skipping replies and pings.
    pub async fn next_event(&mut self) -> Result<corral_proto::WatcherEvent> {
        loop {
            let body = read_frame(&mut self.rd).await?;
            let mut r = Reader::new(&body);
            let header = ReplyHeader::read(&mut r)?;
            if header.xid == xid::NOTIFICATION {
                return Ok(corral_proto::WatcherEvent::read(&mut r)?);
            }
        }
    }

    /// One request, one reply.
    pub async fn call(&mut self, req: &Request) -> Result<Reply> {
        let (_, op) = self.send(req).await?;
        self.flush().await?;
        self.recv(op).await
    }

    pub async fn close(mut self) -> Result<()> {
        let _ = self.call(&Request::CloseSession).await;
        Ok(())
    }
}
