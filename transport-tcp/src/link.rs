//! The byte-level state of one link, independent of how its socket is driven: frames
//! (sequence number, length) inside records (Noise transport messages, or the bare
//! stream in plaintext mode), with bounded receive buffers.
//!
//! Sending: a message is cut into frames of at most the maximum frame size; the frame
//! bytes are sealed into records of at most 65,535 bytes (`u16` big-endian length, then
//! the AEAD ciphertext) and queued as wire bytes.
//!
//! Receiving: wire bytes are appended while the buffers hold less than
//! [`LinkState::RX_CAP`]; complete records are opened into the plaintext stream; the
//! caller takes frames from the stream with the length it expects. Nothing here
//! allocates more than the cap plus one record beyond what the caller asked for.

use crate::error::LinkError;
use crate::frame::{Expect, FrameError, HEADER_LEN, check_header, encode_header, frame_lengths};

/// Largest Noise transport message (ciphertext with tag).
const RECORD_MAX: usize = 65_535;
/// AEAD tag bytes.
const TAG: usize = 16;
/// Largest plaintext in one record.
const RECORD_PLAIN: usize = RECORD_MAX - TAG;

/// How a link protects its bytes.
pub enum Cipher {
    /// No protection: benchmarks only.
    Plain,
    /// AES-256-GCM with the keys of a finished Noise handshake (Noise's nonce scheme:
    /// a 64-bit big-endian counter per direction).
    Aead(Box<Aead>),
}

/// The two directions of an encrypted link.
pub struct Aead {
    seal: ring::aead::LessSafeKey,
    open: ring::aead::LessSafeKey,
    sent: u64,
    received: u64,
}

fn nonce(n: u64) -> ring::aead::Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_be_bytes());
    ring::aead::Nonce::assume_unique_for_key(b)
}

impl Cipher {
    /// The transport cipher of a finished Noise handshake (`IK` with AES-GCM): the
    /// initiator seals with the first split key, the responder with the second.
    pub fn from_handshake(mut hs: snow::HandshakeState) -> Result<Cipher, LinkError> {
        if !hs.is_handshake_finished() {
            return Err(LinkError::Handshake("the handshake is not finished".into()));
        }
        let initiator = hs.is_initiator();
        let (k1, k2) = hs.dangerously_get_raw_split();
        let (seal, open) = if initiator { (k1, k2) } else { (k2, k1) };
        Cipher::from_keys(seal, open)
    }

    /// An AES-256-GCM cipher from raw keys: `seal` for what this side sends, `open` for
    /// what it receives. Production links get their keys from the handshake
    /// ([`Cipher::from_handshake`]); tests and fuzz targets build them here.
    pub fn from_keys(seal: [u8; 32], open: [u8; 32]) -> Result<Cipher, LinkError> {
        let key = |k: &[u8; 32]| {
            ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, k)
                .map(ring::aead::LessSafeKey::new)
                .map_err(|_| LinkError::Handshake("AES-256-GCM key".into()))
        };
        Ok(Cipher::Aead(Box::new(Aead {
            seal: key(&seal)?,
            open: key(&open)?,
            sent: 0,
            received: 0,
        })))
    }
}

impl core::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Cipher::Plain => "Plain",
            Cipher::Aead(_) => "Aead",
        })
    }
}

/// Where a partially received message stands.
#[derive(Debug, Default)]
struct Partial {
    /// Payload bytes of the current frame still to come (`None`: a header is next).
    frame_left: Option<u32>,
}

/// A byte queue in a buffer allocated once: data lives in `buf[start..end]`; free space
/// is made at the end by moving the data to the front.
#[derive(Debug, Default)]
struct ByteQueue {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ByteQueue {
    fn len(&self) -> usize {
        self.end - self.start
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The most bytes worth reading next: what fits after the buffer's next growth
    /// (so a link that only ever carries small messages keeps a small buffer).
    fn read_hint(&self) -> usize {
        self.buf.len().max(Self::FIRST)
    }

    /// Size of a buffer's first allocation.
    const FIRST: usize = 64 << 10;

    /// At least `want` writable bytes after the data. The buffer grows (doubling, from
    /// 64 KiB) up to `capacity`, which must cover the data plus `want`: a control channel
    /// never holds the data plane's full receive buffer.
    fn space(&mut self, want: usize, capacity: usize) -> &mut [u8] {
        let len = self.end - self.start;
        if self.buf.len() < len + want {
            let size = (len + want)
                .max(self.buf.len() * 2)
                .max(Self::FIRST)
                .min(capacity);
            let mut grown = vec![0u8; size];
            grown[..self.end - self.start].copy_from_slice(&self.buf[self.start..self.end]);
            self.end -= self.start;
            self.start = 0;
            self.buf = grown;
        }
        if self.buf.len() - self.end < want {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    fn commit(&mut self, n: usize) {
        self.end += n;
    }
}

/// Bytes in flight on one link, both directions.
#[derive(Debug)]
pub struct LinkState {
    cipher: Cipher,
    max_frame: u32,
    send_seq: u64,
    recv_seq: u64,
    /// Wire bytes waiting to be written, from `tx_off`.
    tx: Vec<u8>,
    tx_off: usize,
    /// Wire bytes read but not yet opened (encrypted links only).
    wire: ByteQueue,
    /// Opened stream bytes not yet taken.
    plain: ByteQueue,
    partial: Partial,
    /// Bytes written to the socket (framing and encryption included).
    pub wire_sent: u64,
    /// Bytes read from the socket.
    pub wire_received: u64,
}

impl LinkState {
    /// Receive-side buffering bound: no more wire bytes are read while the unopened and
    /// untaken bytes reach this many.
    pub const RX_CAP: usize = 4 << 20;
    /// Size of each receive buffer: the cap plus one record of slack.
    const RX_BUF: usize = Self::RX_CAP + RECORD_MAX + 2;

    /// A link with `cipher`, frames of at most `max_frame` bytes, fresh sequence numbers.
    pub fn new(cipher: Cipher, max_frame: u32) -> Self {
        LinkState {
            cipher,
            max_frame: max_frame.max(1),
            send_seq: 0,
            recv_seq: 0,
            tx: Vec::new(),
            tx_off: 0,
            wire: ByteQueue::default(),
            plain: ByteQueue::default(),
            partial: Partial::default(),
            wire_sent: 0,
            wire_received: 0,
        }
    }

    /// The largest frame payload.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Whether the link is encrypted.
    pub fn encrypted(&self) -> bool {
        matches!(self.cipher, Cipher::Aead(_))
    }

    /// Queues a data message (one or more frames).
    pub fn queue_message(&mut self, msg: &[u8]) -> Result<(), LinkError> {
        let mut at = 0;
        for len in frame_lengths(msg.len(), self.max_frame) {
            let end = at + len as usize;
            self.queue_frame(&msg[at..end])?;
            at = end;
        }
        Ok(())
    }

    /// Queues one control frame (a message of at most the maximum frame size).
    pub fn queue_control(&mut self, msg: &[u8]) -> Result<(), LinkError> {
        if msg.len() > self.max_frame as usize {
            return Err(FrameError::TooLarge {
                len: msg.len() as u64,
                max: self.max_frame,
            }
            .into());
        }
        self.queue_frame(msg)
    }

    fn queue_frame(&mut self, payload: &[u8]) -> Result<(), LinkError> {
        let header = encode_header(self.send_seq, payload.len() as u32);
        self.send_seq += 1;
        self.compact_tx();
        match &mut self.cipher {
            Cipher::Plain => {
                self.tx.reserve(HEADER_LEN + payload.len());
                self.tx.extend_from_slice(&header);
                self.tx.extend_from_slice(payload);
            }
            Cipher::Aead(aead) => {
                // The header is sealed in a record of its own, the payload in records of
                // at most RECORD_PLAIN bytes, each sealed in place in the queue.
                let records = 1 + payload.len().div_ceil(RECORD_PLAIN);
                self.tx
                    .reserve(HEADER_LEN + payload.len() + records * (2 + TAG));
                for chunk in core::iter::once(&header[..]).chain(payload.chunks(RECORD_PLAIN)) {
                    self.tx
                        .extend_from_slice(&((chunk.len() + TAG) as u16).to_be_bytes());
                    let at = self.tx.len();
                    self.tx.extend_from_slice(chunk);
                    let tag = aead
                        .seal
                        .seal_in_place_separate_tag(
                            nonce(aead.sent),
                            ring::aead::Aad::empty(),
                            &mut self.tx[at..],
                        )
                        .map_err(|_| LinkError::Handshake("sealing a record".into()))?;
                    aead.sent += 1;
                    self.tx.extend_from_slice(tag.as_ref());
                }
            }
        }
        Ok(())
    }

    fn compact_tx(&mut self) {
        if self.tx_off == self.tx.len() {
            self.tx.clear();
            self.tx_off = 0;
        } else if self.tx_off > (1 << 20) && self.tx_off * 2 > self.tx.len() {
            self.tx.drain(..self.tx_off);
            self.tx_off = 0;
        }
    }

    /// Wire bytes waiting to be written.
    pub fn pending_tx(&self) -> &[u8] {
        &self.tx[self.tx_off..]
    }

    /// Marks `n` pending wire bytes as written.
    pub fn advance_tx(&mut self, n: usize) {
        self.tx_off += n;
        self.wire_sent += n as u64;
        self.compact_tx();
    }

    /// How many more wire bytes may be read now (0 when the buffers are full).
    pub fn rx_room(&self) -> usize {
        Self::RX_CAP.saturating_sub(self.wire.len() + self.plain.len())
    }

    /// Reads wire bytes with `read` straight into the receive buffer (at most
    /// [`Self::rx_room`] bytes), then opens every complete record. Returns what `read`
    /// returned.
    pub fn read_with<E>(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<Result<usize, E>, LinkError> {
        let used = self.wire.len() + self.plain.len();
        let target = match self.cipher {
            Cipher::Plain => &mut self.plain,
            Cipher::Aead(_) => &mut self.wire,
        };
        let room = Self::RX_CAP.saturating_sub(used).min(target.read_hint());
        let space = target.space(room, Self::RX_BUF);
        let n = match read(&mut space[..room]) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        target.commit(n);
        self.wire_received += n as u64;
        self.open_records()?;
        Ok(Ok(n))
    }

    /// Appends wire bytes (from a blocking read or a test) and opens complete records.
    pub fn ingest(&mut self, mut bytes: &[u8]) -> Result<(), LinkError> {
        while !bytes.is_empty() {
            let take = bytes.len().min(self.rx_room().max(1));
            let r = self.read_with(|space: &mut [u8]| {
                let n = take.min(space.len());
                space[..n].copy_from_slice(&bytes[..n]);
                Ok::<usize, ()>(n)
            })?;
            let n = r.unwrap_or(0);
            if n == 0 {
                return Err(LinkError::Malformed(
                    "receive buffer full of unread input".into(),
                ));
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn open_records(&mut self) -> Result<(), LinkError> {
        let Cipher::Aead(aead) = &mut self.cipher else {
            return Ok(());
        };
        loop {
            let avail = self.wire.data_mut();
            if avail.len() < 2 {
                return Ok(());
            }
            let n = u16::from_be_bytes([avail[0], avail[1]]) as usize;
            if n < TAG {
                return Err(LinkError::Corrupt);
            }
            if avail.len() < 2 + n {
                return Ok(());
            }
            let opened = aead
                .open
                .open_in_place(
                    nonce(aead.received),
                    ring::aead::Aad::empty(),
                    &mut avail[2..2 + n],
                )
                .map_err(|_| LinkError::Corrupt)?;
            aead.received += 1;
            let len = opened.len();
            let space = self.plain.space(len, Self::RX_BUF);
            space[..len].copy_from_slice(&self.wire.data()[2..2 + len]);
            self.plain.commit(len);
            self.wire.consume(2 + n);
        }
    }

    /// Takes as much of a data message of `buf.len()` bytes as has arrived; `*filled`
    /// counts the bytes already in `buf`. Returns `true` when the message is complete.
    pub fn take_message(&mut self, buf: &mut [u8], filled: &mut usize) -> Result<bool, LinkError> {
        loop {
            let remaining = buf.len() - *filled;
            let left = match self.partial.frame_left {
                Some(left) => left,
                None => {
                    if *filled == buf.len() && !(buf.is_empty() && *filled == 0) {
                        return Ok(true);
                    }
                    if self.plain.len() < HEADER_LEN {
                        return Ok(false);
                    }
                    let h: [u8; HEADER_LEN] = self.plain.data()[..HEADER_LEN]
                        .try_into()
                        .expect("12 bytes");
                    let want = remaining.min(self.max_frame as usize) as u32;
                    let len = check_header(
                        &h,
                        Expect::Exactly {
                            seq: self.recv_seq,
                            len: want,
                        },
                        self.max_frame,
                    )?;
                    self.recv_seq += 1;
                    self.plain.consume(HEADER_LEN);
                    if len == 0 {
                        return Ok(true);
                    }
                    len
                }
            };
            let n = self.plain.len().min(left as usize);
            buf[*filled..*filled + n].copy_from_slice(&self.plain.data()[..n]);
            *filled += n;
            self.plain.consume(n);
            let left = left - n as u32;
            if left > 0 {
                self.partial.frame_left = Some(left);
                return Ok(false);
            }
            self.partial.frame_left = None;
            if *filled == buf.len() {
                return Ok(true);
            }
        }
    }

    /// Takes one control message of at most `max` bytes if it has fully arrived.
    pub fn take_control(&mut self, max: u32) -> Result<Option<Vec<u8>>, LinkError> {
        if self.plain.len() < HEADER_LEN {
            return Ok(None);
        }
        let h: [u8; HEADER_LEN] = self.plain.data()[..HEADER_LEN]
            .try_into()
            .expect("12 bytes");
        let len = check_header(
            &h,
            Expect::AtMost {
                seq: self.recv_seq,
                max,
            },
            self.max_frame,
        )? as usize;
        if self.plain.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let out = self.plain.data()[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.plain.consume(HEADER_LEN + len);
        self.recv_seq += 1;
        Ok(Some(out))
    }

    /// Whether any received byte is waiting to be taken.
    pub fn has_input(&self) -> bool {
        self.plain.len() > 0 || self.wire.len() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise_pair() -> (Cipher, Cipher) {
        let p: snow::params::NoiseParams = crate::channel::NOISE_PARAMS.parse().unwrap();
        let ki = snow::Builder::new(p.clone()).generate_keypair().unwrap();
        let kr = snow::Builder::new(p.clone()).generate_keypair().unwrap();
        let mut i = snow::Builder::new(p.clone())
            .local_private_key(&ki.private)
            .unwrap()
            .remote_public_key(&kr.public)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut r = snow::Builder::new(p)
            .local_private_key(&kr.private)
            .unwrap()
            .build_responder()
            .unwrap();
        let mut m = [0u8; 1024];
        let mut pl = [0u8; 1024];
        let n = i.write_message(&[], &mut m).unwrap();
        r.read_message(&m[..n], &mut pl).unwrap();
        let n = r.write_message(&[], &mut m).unwrap();
        i.read_message(&m[..n], &mut pl).unwrap();
        (
            Cipher::from_handshake(i).unwrap(),
            Cipher::from_handshake(r).unwrap(),
        )
    }

    fn pipe(a: &mut LinkState, b: &mut LinkState, step: usize) {
        let bytes = a.pending_tx().to_vec();
        a.advance_tx(bytes.len());
        for c in bytes.chunks(step) {
            b.ingest(c).unwrap();
        }
    }

    #[test]
    fn messages_cross_in_any_split_plain_and_encrypted() {
        let msgs: Vec<Vec<u8>> = vec![
            vec![],
            (0..=255).collect(),
            (0..200_000u32).map(|i| i as u8).collect(),
            vec![9; 3],
        ];
        for encrypted in [false, true] {
            for step in [1usize, 7, 4096, 1 << 20] {
                if step == 1 && encrypted {
                    continue; // slow and covered by 7
                }
                let (ca, cb) = if encrypted {
                    noise_pair()
                } else {
                    (Cipher::Plain, Cipher::Plain)
                };
                let mut a = LinkState::new(ca, 70_000);
                let mut b = LinkState::new(cb, 70_000);
                for m in &msgs {
                    a.queue_message(m).unwrap();
                }
                a.queue_control(b"hello").unwrap();
                pipe(&mut a, &mut b, step);
                for m in &msgs {
                    let mut buf = vec![0u8; m.len()];
                    let mut filled = 0;
                    assert!(b.take_message(&mut buf, &mut filled).unwrap());
                    assert_eq!(&buf, m);
                }
                assert_eq!(b.take_control(16).unwrap().as_deref(), Some(&b"hello"[..]));
                assert!(!b.has_input());
                assert_eq!(a.wire_sent, b.wire_received);
            }
        }
    }

    #[test]
    fn a_wrong_length_is_refused_and_a_tampered_record_is_corrupt() {
        let mut a = LinkState::new(Cipher::Plain, 64);
        let mut b = LinkState::new(Cipher::Plain, 64);
        a.queue_message(&[1, 2, 3]).unwrap();
        pipe(&mut a, &mut b, 100);
        let mut buf = [0u8; 4];
        assert!(matches!(
            b.take_message(&mut buf, &mut 0),
            Err(LinkError::Frame(FrameError::Length {
                expected: 4,
                got: 3
            }))
        ));
        let (ca, cb) = noise_pair();
        let mut a = LinkState::new(ca, 64);
        let mut b = LinkState::new(cb, 64);
        a.queue_message(&[1, 2, 3]).unwrap();
        let mut bytes = a.pending_tx().to_vec();
        bytes[5] ^= 1;
        assert!(matches!(b.ingest(&bytes), Err(LinkError::Corrupt)));
    }

    #[test]
    fn partial_frames_resume() {
        let mut a = LinkState::new(Cipher::Plain, 10);
        let mut b = LinkState::new(Cipher::Plain, 10);
        let msg: Vec<u8> = (0..25).collect();
        a.queue_message(&msg).unwrap();
        let bytes = a.pending_tx().to_vec();
        let mut buf = vec![0u8; 25];
        let mut filled = 0;
        let mut done = false;
        for c in bytes.chunks(5) {
            b.ingest(c).unwrap();
            done = b.take_message(&mut buf, &mut filled).unwrap();
        }
        assert!(done);
        assert_eq!(buf, msg);
    }
}
