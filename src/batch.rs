//! Batches: the unit that moves between pipeline threads.
//!
//! A batch owns the raw bytes of its frames and a bumpalo arena; its records
//! borrow from both (a `self_cell`), so a batch crosses threads as one value.
//! When every stage and output is done with it, its owner goes back to the
//! [`Pool`], the arena is reset and the buffers are reused, not freed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bumpalo::Bump;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::atomic::AtomicCell;

use crate::parse::{Frames, JSON_PADDING, Parser};
use crate::record::Record;
use crate::time::Timestamp;

/// Where one frame sits in [`BatchOwner::raw`] and where it came from.
#[derive(Clone, Copy, Debug)]
pub struct FrameMeta {
    pub start: u32,
    pub len: u32,
    pub src: SocketAddr,
    pub received: Timestamp,
    pub input: u16,
    /// Flaws known before parsing (`flaw::TRUNCATED`).
    pub flaws: u16,
}

/// The owned part of a batch: bytes, frame table and arena.
pub struct BatchOwner {
    pub raw: Vec<u8>,
    pub frames: Vec<FrameMeta>,
    pub bump: Bump,
    /// When the first frame of the batch was read (for stage latency).
    pub born: Instant,
    /// Order number given by the input workers; classify restores it.
    pub seq: u64,
}

impl Default for BatchOwner {
    fn default() -> Self {
        BatchOwner {
            raw: Vec::with_capacity(64 * 1024),
            frames: Vec::with_capacity(256),
            bump: Bump::with_capacity(64 * 1024),
            born: Instant::now(),
            seq: 0,
        }
    }
}

impl BatchOwner {
    /// Appends one frame's bytes.
    pub fn push_frame(
        &mut self,
        bytes: &[u8],
        src: SocketAddr,
        received: Timestamp,
        input: u16,
        flaws: u16,
    ) {
        if self.frames.is_empty() {
            self.born = Instant::now();
        }
        let start = self.raw.len() as u32;
        self.raw.extend_from_slice(bytes);
        self.frames.push(FrameMeta {
            start,
            len: bytes.len() as u32,
            src,
            received,
            input,
            flaws,
        });
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Empties the batch for reuse, keeping its allocations.
    pub fn clear(&mut self) {
        self.raw.clear();
        self.frames.clear();
        self.bump.reset();
    }
}

/// The records of a batch, in the arena.
pub struct Records<'a> {
    pub list: &'a mut [Record<'a>],
}

self_cell::self_cell!(
    /// A batch of parsed records that owns everything they borrow.
    pub struct Batch {
        owner: BatchOwner,
        #[not_covariant]
        dependent: Records,
    }
);

impl Batch {
    /// Parses every frame of `owner` into records.
    ///
    /// JSON messages are parsed where they lie in the frame bytes (see
    /// [`Parser::parse_in_place`]), so padding is appended after the last
    /// frame first.
    pub fn parse(mut owner: BatchOwner, parser: &mut Parser) -> Batch {
        let frames_end = owner.raw.len();
        owner.raw.extend_from_slice(&[0; JSON_PADDING]);
        // The frame bytes' address, taken before `owner` moves into the
        // cell: the Vec's heap buffer does not move with it, and from here
        // on is reached only through this view (`Vec::as_mut_ptr` makes no
        // reference to it), until the batch is dropped.
        let (base, len) = (owner.raw.as_mut_ptr(), owner.raw.len());
        Batch::new(owner, |o| {
            // SAFETY: `base..base + len` is `o.raw`, initialised, kept
            // allocated by the owner for as long as the records live, and
            // written by nothing else (the owner is not touched mutably
            // until the batch is dropped).
            let frames = unsafe { Frames::new(base, len) };
            // The end of the highest frame parsed so far.
            let mut high = 0usize;
            let list = o.bump.alloc_slice_fill_with(o.frames.len(), |i| {
                let f = &o.frames[i];
                let (start, end) = (f.start as usize, f.start as usize + f.len as usize);
                // Not a `debug_assert`: the frame table is public, and a
                // frame outside the bytes would make the slices below
                // point outside them.
                assert!(
                    end <= frames_end,
                    "a frame lies inside the batch's frame bytes"
                );
                // SAFETY: inside the bytes (checked), and nothing borrows
                // them exclusively once a frame's parse is over.
                let raw = unsafe { frames.slice(start, f.len as usize) };
                let mut rec = Record::new(raw, f.received, f.src, f.input);
                rec.flaws = f.flaws;
                if start >= high {
                    // SAFETY: every record before this one borrows only
                    // bytes below `high`, so from `rec.raw`'s start on
                    // only `rec` refers to them.
                    unsafe { parser.parse_in_place(&o.bump, &mut rec, &frames) };
                } else {
                    // Out of address order (`push_frame` appends, but the
                    // frame table is public): parsed from a copy.
                    parser.parse(&o.bump, &mut rec);
                }
                high = high.max(end);
                rec
            });
            Records { list }
        })
    }

    pub fn len(&self) -> usize {
        self.borrow_owner().frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn born(&self) -> Instant {
        self.borrow_owner().born
    }

    pub fn seq(&self) -> u64 {
        self.borrow_owner().seq
    }
}

/// Recycled batch owners. Bounded: past `cap` spare owners, returned ones
/// are freed (only after a burst that needed more batches in flight).
pub struct Pool {
    spare: ArrayQueue<BatchOwner>,
    created: AtomicCell<u64>,
    freed: AtomicCell<u64>,
}

impl Pool {
    pub fn new(cap: usize) -> Arc<Pool> {
        Arc::new(Pool {
            spare: ArrayQueue::new(cap.max(1)),
            created: AtomicCell::new(0),
            freed: AtomicCell::new(0),
        })
    }

    /// An empty owner: a recycled one if any, else a new one.
    pub fn get(&self) -> BatchOwner {
        match self.spare.pop() {
            Some(o) => o,
            None => {
                self.created.fetch_add(1);
                BatchOwner::default()
            }
        }
    }

    /// Returns an owner for reuse.
    pub fn put(&self, mut owner: BatchOwner) {
        owner.clear();
        // A batch that grew huge (one giant frame) is not kept around.
        if owner.raw.capacity() > 8 * 1024 * 1024 || self.spare.push(owner).is_err() {
            self.freed.fetch_add(1);
        }
    }

    /// Owners freed because the pool was full or they had grown huge.
    pub fn freed(&self) -> u64 {
        self.freed.load()
    }

    /// Spare owners held now.
    pub fn spare(&self) -> usize {
        self.spare.len()
    }

    /// How many owners were ever created (a steady pipeline stops creating).
    pub fn created(&self) -> u64 {
        self.created.load()
    }
}

/// A batch shared by the outputs. When the last output drops it, the owner
/// goes back to the pool.
pub struct SharedBatch {
    batch: Option<Batch>,
    pool: Arc<Pool>,
}

impl SharedBatch {
    pub fn new(batch: Batch, pool: Arc<Pool>) -> Arc<SharedBatch> {
        Arc::new(SharedBatch {
            batch: Some(batch),
            pool,
        })
    }

    fn inner(&self) -> &Batch {
        // Only `drop` takes the batch out.
        self.batch.as_ref().expect("batch present until drop")
    }

    /// Read-only access to the records.
    pub fn records<R>(&self, f: impl for<'a> FnOnce(&[Record<'a>]) -> R) -> R {
        self.inner().with_dependent(|_, recs| f(recs.list))
    }

    pub fn len(&self) -> usize {
        self.inner().len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner().is_empty()
    }

    pub fn born(&self) -> Instant {
        self.inner().born()
    }
}

// SAFETY: a SharedBatch only hands out shared references to its records
// (`Record` is Sync: it holds shared slices) and the `born` instant; the
// arena (`Bump`, which is !Sync because it allocates through `&self`) is
// never reachable through `&SharedBatch`, only in `drop`, which has
// exclusive access. So concurrent readers cannot race on the arena.
unsafe impl Sync for SharedBatch {}

impl Drop for SharedBatch {
    fn drop(&mut self) {
        if let Some(b) = self.batch.take() {
            self.pool.put(b.into_owner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::UNSPECIFIED;
    use bumpalo::Bump;

    #[test]
    fn clean_json_is_parsed_where_it_lies_and_frames_stay_as_received() {
        let frames: [&[u8]; 4] = [
            br#"<14>1 - h a - - - {"user":"alice","n":1}"#,
            br#"{"path":"C:\\x","u":"bob"}"#,
            b"<14>1 - h a - - - {\"a\":\"b\"} \r",
            br#"{"last":"one"}"#,
        ];
        let mut owner = BatchOwner::default();
        for f in frames {
            owner.push_frame(f, UNSPECIFIED, Timestamp::from_unix_ns(0), 0, 0);
        }
        let batch = Batch::parse(owner, &mut Parser::with_offset(0));
        batch.with_dependent(|_, recs| {
            let inside = |r: &Record<'_>, v: &[u8]| {
                let (p, raw) = (v.as_ptr() as usize, r.raw.as_ptr() as usize);
                raw <= p && p + v.len() <= raw + r.raw.len()
            };
            for (r, f) in recs.list.iter().zip(frames) {
                assert!(r.json);
                assert_eq!(r.raw, f, "the frame is left as received");
            }
            let [a, b, c, d] = &recs.list[..] else {
                panic!("four records");
            };
            // No backslash: values borrow from the frame itself.
            let user = a.fields.get(b"user").unwrap();
            assert_eq!(user, b"alice");
            assert!(inside(a, user) && a.is_clean(user));
            assert_eq!(a.fields.get(b"n"), Some(&b"1"[..]));
            // A backslash: unescaped in an arena copy, the frame untouched.
            let path = b.fields.get(b"path").unwrap();
            assert_eq!(path, b"C:\\x");
            assert!(!inside(b, path) && !b.is_clean(path));
            assert_eq!(b.fields.get(b"u"), Some(&b"bob"[..]));
            // Trailing bytes after the object (simd-json borrows the first
            // one while it parses) and the last frame (the padding after it).
            assert!(inside(c, c.fields.get(b"a").unwrap()));
            assert!(inside(d, d.fields.get(b"last").unwrap()));
        });
    }

    #[test]
    fn frames_out_of_address_order_are_parsed_from_copies() {
        // A frame list whose second frame lies below the first: the second
        // must not be parsed in place, where its padding would cover the
        // first record's bytes.
        let (a, b) = (&br#"{"first":"1"}"#[..], &br#"{"second":"2"}"#[..]);
        let mut owner = BatchOwner::default();
        owner.push_frame(b, UNSPECIFIED, Timestamp::from_unix_ns(0), 0, 0);
        owner.push_frame(a, UNSPECIFIED, Timestamp::from_unix_ns(0), 0, 0);
        owner.frames.swap(0, 1);
        let batch = Batch::parse(owner, &mut Parser::with_offset(0));
        batch.with_dependent(|_, recs| {
            let [x, y] = &recs.list[..] else {
                panic!("two records");
            };
            assert_eq!((x.raw, y.raw), (a, b));
            assert_eq!(x.fields.get(b"first"), Some(&b"1"[..]));
            assert_eq!(y.fields.get(b"second"), Some(&b"2"[..]));
            let v = y.fields.get(b"second").unwrap().as_ptr() as usize;
            let raw = y.raw.as_ptr() as usize;
            assert!(!(raw..raw + y.raw.len()).contains(&v), "parsed from a copy");
        });
    }

    /// Parses `frames` as one batch, classified, and checks every record
    /// against the same frame parsed from a copy, its JSON output, and
    /// that the batch's bytes (frames and padding) are left as they were.
    fn check_against_copies(frames: &[&[u8]]) {
        use crate::classify::{Classifier, class_names};
        use crate::encode::{Names, json::write_record};
        let n = Names::new(vec!["in".into()], class_names(&[]));
        let mut owner = BatchOwner::default();
        for f in frames {
            owner.push_frame(f, UNSPECIFIED, Timestamp::from_unix_ns(0), 0, 0);
        }
        let mut c = Classifier::new(&[], &n).unwrap();
        let mut batch = Batch::parse(owner, &mut Parser::with_offset(0));
        crate::stage::process(&mut c, &mut batch);
        batch.with_dependent(|_, recs| {
            assert_eq!(recs.list.len(), frames.len());
            for (r, f) in recs.list.iter().zip(frames) {
                assert_eq!(r.raw, *f);
                let bump = Bump::new();
                let mut copy = Record::new(
                    bump.alloc_slice_copy(f),
                    Timestamp::from_unix_ns(0),
                    UNSPECIFIED,
                    0,
                );
                Parser::with_offset(0).parse(&bump, &mut copy);
                Classifier::new(&[], &n).unwrap().apply(&bump, &mut copy);
                let text = |r: &Record<'_>| {
                    let f = r.fields.as_slice().iter();
                    let f = f.map(|f| (f.key.to_vec(), f.value.to_vec()));
                    (
                        r.host.to_vec(),
                        r.app.to_vec(),
                        r.msg.to_vec(),
                        f.collect::<Vec<_>>(),
                    )
                };
                assert_eq!(text(r), text(&copy), "{}", String::from_utf8_lossy(f));
                let (mut a, mut b) = (Vec::new(), Vec::new());
                write_record(&mut a, r, &n);
                write_record(&mut b, &copy, &n);
                assert_eq!(a, b);
                serde_json::from_slice::<serde_json::Value>(&a).unwrap();
            }
        });
        let owner = batch.into_owner();
        let sent = frames.concat();
        assert_eq!(&owner.raw[..sent.len()], &sent[..], "frames unchanged");
        assert!(
            owner.raw[sent.len()..].iter().all(|&b| b == 0),
            "padding unchanged"
        );
    }

    #[test]
    fn every_kind_of_frame_parses_in_place_as_from_a_copy() {
        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(200));
        let long2 = format!(r#"{{"a":"{}","b":"{}"}}"#, "y".repeat(63), "z".repeat(64));
        check_against_copies(&[
            b"",
            br#"{"a":"b"}"#,
            b"",
            b"  {\"a\":\"b\"}\t\r\n ",
            b"<14>1 - h a - - - \xEF\xBB\xBF{\"bom\":\"x\"}",
            b"<13>Oct  1 12:00:00 h app: {\"k\":\"v\",\"n\":12}",
            br#"<13>1 - h a - - [x@1 a="1" b="q\"z"] {"sd":"then json"}"#,
            br#"<13>1 - h a - - [x@1 a="1"]{"sd":"no space"}"#,
            br#"{"a":"unterminated}"#,
            br#"{"a":}"#,
            br#"{"a":tru}"#,
            br#"{"a":1}{"b":2}"#,
            br#"{}"#,
            br#"{ }"#,
            br#"{"n":{"o":{"p":[1,{"q":"r"},"s"]}},"e":[],"f":{},"t":true,"nu":null,"fl":-1.5e3}"#,
            br#"{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":"deep"}}}}}}}}}}"#,
            "{\"utf\":\"h\u{e9}llo \u{1F600}\",\"x\":\"\u{2028}\"}".as_bytes(),
            b"{\"bad\":\"\xff\"}",
            b"{\"ctl\":\"a\x01b\"}",
            b"{\"a\":\n\"b\",\t\"c\" : \"d\"}",
            br#"{"EventID":4624,"TargetUserName":"u","IpAddress":"::ffff:10.0.0.1"}"#,
            br#"{"typeDesc":"x","id":"1","source":"10.0.0.1"}"#,
            long.as_bytes(),
            long2.as_bytes(),
            br#"{"z":"last, right before the padding"}"#,
        ]);
    }

    fn by_hand(raw: &[u8], table: &[(u32, u32)]) {
        let mut owner = BatchOwner::default();
        owner.raw.extend_from_slice(raw);
        for &(start, len) in table {
            owner.frames.push(FrameMeta {
                start,
                len,
                src: UNSPECIFIED,
                received: Timestamp::from_unix_ns(0),
                input: 0,
                flaws: 0,
            });
        }
        let batch = Batch::parse(owner, &mut Parser::with_offset(0));
        batch.with_dependent(|_, recs| {
            for (r, &(s, l)) in recs.list.iter().zip(table) {
                assert_eq!(r.raw, &raw[s as usize..(s + l) as usize]);
                let bump = Bump::new();
                let mut copy = Record::new(
                    bump.alloc_slice_copy(r.raw),
                    Timestamp::from_unix_ns(0),
                    UNSPECIFIED,
                    0,
                );
                Parser::with_offset(0).parse(&bump, &mut copy);
                let pairs = |r: &Record<'_>| {
                    let f = r.fields.as_slice().iter();
                    f.map(|f| (f.key.to_vec(), f.value.to_vec()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(pairs(r), pairs(&copy));
            }
        });
    }

    #[test]
    fn frame_tables_in_any_order_with_overlaps_parse() {
        let raw = br#"{"a":"1"}{"b":"2"} {"c":"3"}"#;
        by_hand(
            raw,
            &[(0, 9), (0, 9), (9, 9), (9, 0), (19, 9), (10, 0), (0, 28)],
        );
        by_hand(raw, &[(19, 9), (9, 9), (0, 9)]);
        by_hand(raw, &[(9, 0), (9, 9), (0, 9), (19, 9)]);
    }

    #[test]
    #[should_panic(expected = "frame bytes")]
    fn a_frame_reaching_past_the_bytes_is_refused() {
        by_hand(br#"{"a":"1"}"#, &[(0, 9 + 10)]);
    }

    #[test]
    #[should_panic(expected = "frame bytes")]
    fn a_frame_whose_end_overflows_u32_is_refused() {
        by_hand(br#"{"a":"1"}"#, &[(8, u32::MAX - 3)]);
    }
}
