//! Goal: no input makes the client-facing decoders (framing, ConnectRequest,
//! RequestHeader + every request body, reply bodies, log entries) panic, and
//! every request that decodes re-encodes to something that decodes the same.
#![no_main]

use corral_proto::{frame, ConnectRequest, OpCode, Reader, Record, Request, RequestHeader, Response, Writer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ConnectRequest::from_bytes(data);
    let _ = corral_store::LogEntry::decode(data);
    if let Ok((frames, _)) = frame::split_frames(data, frame::DEFAULT_MAX_FRAME) {
        for f in frames {
            let mut r = Reader::new(f);
            let Ok(h) = RequestHeader::read(&mut r) else {
                continue;
            };
            if let Ok(req) = Request::decode(h.op, &mut r) {
                let mut w = Writer::new();
                req.encode(&mut w);
                let bytes = w.into_inner();
                let again = Request::decode(req.opcode().code(), &mut Reader::new(&bytes))
                    .expect("a re-encoded request decodes");
                assert_eq!(again, req);
            }
        }
    }
    // Reply decoding is client-side (bench, CLI) but must not panic either.
    if let Some((&op, rest)) = data.split_first() {
        let op = OpCode::ALL[op as usize % OpCode::ALL.len()];
        let _ = Response::decode(op, &mut Reader::new(rest));
    }
});
