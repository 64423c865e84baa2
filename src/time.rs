//! Timestamps: parsing RFC 3339 / RFC 3164 dates and formatting them.
//!
//! Receives byte slices from the parsers and `Timestamp` values from the
//! encoders. Everything here is allocation-free: parsers return values,
//! formatters append to a caller's reusable buffer.

use crate::bytes::put_digits;
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time with the UTC offset it was written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamp {
    /// Nanoseconds since the Unix epoch (UTC).
    pub unix_ns: i64,
    /// Offset from UTC, in minutes, that the source wrote the time in.
    pub offset_min: i16,
    /// Digits of fraction the source gave (0..=9); formatting keeps them.
    pub frac_digits: u8,
}

/// Longest RFC 3339 text: date-time, nine fraction digits, `+hh:mm`.
const RFC3339_MAX: usize = 19 + 10 + 6;

/// One formatted time and its text (`len` 0: empty).
#[derive(Clone, Copy)]
struct CachedText {
    ts: Timestamp,
    len: u8,
    text: [u8; RFC3339_MAX],
}

impl CachedText {
    const EMPTY: CachedText = CachedText {
        ts: Timestamp {
            unix_ns: 0,
            offset_min: 0,
            frac_digits: 0,
        },
        len: 0,
        text: [0; RFC3339_MAX],
    };
}

impl Timestamp {
    /// The current time, UTC, with microsecond precision.
    pub fn now() -> Timestamp {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            unix_ns: d.as_nanos() as i64,
            offset_min: 0,
            frac_digits: 6,
        }
    }

    pub fn from_unix_ns(unix_ns: i64) -> Timestamp {
        Timestamp {
            unix_ns,
            offset_min: 0,
            frac_digits: 6,
        }
    }

    /// Seconds since the epoch in the timestamp's own offset (local wall clock).
    fn local_secs(&self) -> (i64, u32) {
        let secs = self.unix_ns.div_euclid(1_000_000_000) + self.offset_min as i64 * 60;
        let nanos = self.unix_ns.rem_euclid(1_000_000_000) as u32;
        (secs, nanos)
    }

    /// The civil date and time in the timestamp's own offset.
    pub fn civil(&self) -> Civil {
        let (secs, nanos) = self.local_secs();
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            nanos,
        }
    }

    /// Appends the RFC 3339 form, e.g. `2003-10-11T22:14:15.003Z`.
    /// Consecutive records share times (every record of one read has the
    /// same receive time; a busy sender stamps many records alike), so the
    /// text of the last two times formatted is cached per thread and
    /// copied when the time is the same.
    pub fn write_rfc3339(&self, out: &mut Vec<u8>) {
        thread_local! {
            static TEXT: std::cell::RefCell<[CachedText; 2]> =
                const { std::cell::RefCell::new([CachedText::EMPTY; 2]) };
        }
        TEXT.with(|t| {
            let Ok(mut t) = t.try_borrow_mut() else {
                // Not reached (nothing here re-enters); format afresh.
                let mut buf = [0u8; RFC3339_MAX];
                let n = self.format_rfc3339(&mut buf);
                out.extend_from_slice(&buf[..n]);
                return;
            };
            let i = if t[0].len != 0 && t[0].ts == *self {
                0
            } else if t[1].len != 0 && t[1].ts == *self {
                1
            } else {
                t[1] = t[0];
                let n = self.format_rfc3339(&mut t[0].text);
                t[0].ts = *self;
                t[0].len = n as u8;
                0
            };
            crate::encode::json::push_bytes(out, &t[i].text[..t[i].len as usize]);
        });
    }

    /// Writes the RFC 3339 form into `buf`; returns its length. Records of
    /// one second share the date-time text: the last two seconds
    /// formatted are cached per thread.
    fn format_rfc3339(&self, buf: &mut [u8; RFC3339_MAX]) -> usize {
        type Slot = (i64, [u8; 19]);
        thread_local! {
            static LAST: std::cell::Cell<[Slot; 2]> =
                const { std::cell::Cell::new([(i64::MIN, [0; 19]); 2]) };
        }
        let (secs, nanos) = self.local_secs();
        let mut cache = LAST.get();
        let text = if cache[0].0 == secs {
            cache[0].1
        } else if cache[1].0 == secs {
            cache[1].1
        } else {
            let c = self.civil();
            let mut t = *b"0000-00-00T00:00:00";
            put_digits(&mut t[0..4], c.year.max(0) as u64);
            put_digits(&mut t[5..7], c.month as u64);
            put_digits(&mut t[8..10], c.day as u64);
            put_digits(&mut t[11..13], c.hour as u64);
            put_digits(&mut t[14..16], c.minute as u64);
            put_digits(&mut t[17..19], c.second as u64);
            cache[1] = cache[0];
            cache[0] = (secs, t);
            LAST.set(cache);
            t
        };
        buf[..19].copy_from_slice(&text);
        let mut n = 19;
        if self.frac_digits > 0 {
            let digits = self.frac_digits.min(9) as usize;
            buf[n] = b'.';
            put_digits(
                &mut buf[n + 1..n + 1 + digits],
                (nanos / POW10[9 - digits]) as u64,
            );
            n += 1 + digits;
        }
        if self.offset_min == 0 {
            buf[n] = b'Z';
            n += 1;
        } else {
            let off = self.offset_min.unsigned_abs() as u32;
            let mut o = *b"+00:00";
            if self.offset_min < 0 {
                o[0] = b'-';
            }
            put_digits(&mut o[1..3], (off / 60) as u64);
            put_digits(&mut o[4..6], (off % 60) as u64);
            buf[n..n + 6].copy_from_slice(&o);
            n += 6;
        }
        n
    }

    /// Appends the RFC 3164 form, `Mmm dd hh:mm:ss` (day padded with a space).
    pub fn write_rfc3164(&self, out: &mut Vec<u8>) {
        let c = self.civil();
        out.extend_from_slice(MONTHS[(c.month - 1) as usize].as_bytes());
        out.push(b' ');
        if c.day < 10 {
            out.push(b' ');
            push_num(out, c.day, 1);
        } else {
            push_num(out, c.day, 2);
        }
        out.push(b' ');
        push_num(out, c.hour, 2);
        out.push(b':');
        push_num(out, c.minute, 2);
        out.push(b':');
        push_num(out, c.second, 2);
    }
}

/// A broken-down date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
}

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

const POW10: [u32; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

fn push_num(out: &mut Vec<u8>, mut v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut i = buf.len();
    while v > 0 && i > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = buf.len().saturating_sub(width).min(i);
    out.extend_from_slice(&buf[start..]);
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y as i64 - 1 } else { y as i64 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u32)?;
    }
    Some(v)
}

fn valid_date(y: i32, m: u32, d: u32) -> bool {
    if !(1..=12).contains(&m) || d == 0 {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    d <= dim[(m - 1) as usize]
}

/// Parses an RFC 3339 timestamp at the start of `s` (RFC 5424 section 6.2.3:
/// `YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|-hh:mm)`). Returns the time and the
/// number of bytes it took. A missing offset is taken as `default_offset_min`
/// (some RFC 3164 senders write ISO times without a zone).
pub fn parse_rfc3339(s: &[u8], default_offset_min: i16) -> Option<(Timestamp, usize)> {
    if s.len() < 19 {
        return None;
    }
    // Records of one second repeat the date and time: a per-thread cache
    // of the last one read skips the checks and the calendar arithmetic.
    thread_local! {
        static LAST: std::cell::Cell<Option<(u128, u32, i64)>> = const { std::cell::Cell::new(None) };
    }
    let head = u128::from_le_bytes(s[..16].try_into().expect("16 bytes"));
    let tail = u32::from_le_bytes(s[15..19].try_into().expect("4 bytes"));
    let local = match LAST.get() {
        Some((h, t, local)) if h == head && t == tail => local,
        _ => {
            let local = date_time_secs(s)?;
            LAST.set(Some((head, tail, local)));
            local
        }
    };
    let mut i = 19;
    let mut nanos: u32 = 0;
    let mut frac_digits = 0u8;
    if i < s.len() && s[i] == b'.' {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + (s[i] - b'0') as u32;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        frac_digits = n.min(9) as u8;
        for _ in n..9 {
            nanos *= 10;
        }
    }
    let offset_min: i16;
    if i < s.len() && (s[i] == b'Z' || s[i] == b'z') {
        offset_min = 0;
        i += 1;
    } else if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        if s.len() < i + 6 || s[i + 3] != b':' {
            return None;
        }
        let oh = digits(&s[i + 1..i + 3])?;
        let om = digits(&s[i + 4..i + 6])?;
        if oh > 23 || om > 59 {
            return None;
        }
        let off = (oh * 60 + om) as i16;
        offset_min = if s[i] == b'-' { -off } else { off };
        i += 6;
    } else {
        offset_min = default_offset_min;
    }
    let utc = local - offset_min as i64 * 60;
    Some((
        Timestamp {
            unix_ns: utc * 1_000_000_000 + nanos as i64,
            offset_min,
            frac_digits,
        },
        i,
    ))
}

/// The first 19 bytes of an RFC 3339 time (`YYYY-MM-DDTHH:MM:SS`, `T`
/// also `t` or a space) as seconds since the epoch in its own offset.
fn date_time_secs(s: &[u8]) -> Option<i64> {
    if s[4] != b'-' || s[7] != b'-' || !(s[10] == b'T' || s[10] == b't' || s[10] == b' ') {
        return None;
    }
    if s[13] != b':' || s[16] != b':' {
        return None;
    }
    let year = digits(&s[0..4])? as i32;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hour = digits(&s[11..13])?;
    let minute = digits(&s[14..16])?;
    let second = digits(&s[17..19])?;
    if !valid_date(year, month, day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let second = second.min(59); // a leap second is folded into :59
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + (hour * 3600 + minute * 60 + second) as i64)
}

/// Month number (1..=12) from an English three-letter abbreviation.
pub fn month_from_abbrev(s: &[u8]) -> Option<u32> {
    if s.len() != 3 {
        return None;
    }
    let l = [
        s[0].to_ascii_lowercase(),
        s[1].to_ascii_lowercase(),
        s[2].to_ascii_lowercase(),
    ];
    let m = match &l {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    };
    Some(m)
}

/// Parses `hh:mm:ss[.frac]` at the start of `s`: (seconds of day, nanos,
/// fraction digits, bytes used).
pub fn parse_hms(s: &[u8]) -> Option<(u32, u32, u8, usize)> {
    if s.len() < 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let h = digits(&s[0..2])?;
    let m = digits(&s[3..5])?;
    let sec = digits(&s[6..8])?;
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut i = 8;
    let mut nanos = 0u32;
    let mut fd = 0u8;
    if i + 1 < s.len() && s[i] == b'.' && s[i + 1].is_ascii_digit() {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + (s[i] - b'0') as u32;
            }
            i += 1;
        }
        let n = i - start;
        fd = n.min(9) as u8;
        for _ in n..9 {
            nanos *= 10;
        }
    }
    Some((h * 3600 + m * 60 + sec.min(59), nanos, fd, i))
}

/// Builds a timestamp from a civil local time at a fixed UTC offset.
pub fn from_civil(
    year: i32,
    month: u32,
    day: u32,
    sod: u32,
    nanos: u32,
    frac_digits: u8,
    offset_min: i16,
) -> Option<Timestamp> {
    if !valid_date(year, month, day) {
        return None;
    }
    let local = days_from_civil(year, month, day) * 86_400 + sod as i64;
    Some(Timestamp {
        unix_ns: (local - offset_min as i64 * 60) * 1_000_000_000 + nanos as i64,
        offset_min,
        frac_digits,
    })
}

/// The local UTC offset in minutes right now (from the C library's view of
/// `TZ`/`/etc/localtime`). RFC 3164 times carry no zone; like rsyslog and
/// syslog-ng we read them as the receiver's local time.
pub fn local_offset_min() -> i16 {
    // SAFETY: localtime_r writes into the tm we own; time(NULL) has no
    // preconditions.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        (tm.tm_gmtoff / 60) as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ts: Timestamp) -> String {
        let mut v = Vec::new();
        ts.write_rfc3339(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn rfc3339_with_fraction_and_zulu_round_trips() {
        let (ts, n) = parse_rfc3339(b"2003-10-11T22:14:15.003Z rest", 0).unwrap();
        assert_eq!(n, 24);
        assert_eq!(fmt(ts), "2003-10-11T22:14:15.003Z");
        assert_eq!(ts.unix_ns, 1_065_910_455_003_000_000);
    }

    #[test]
    fn rfc3339_with_negative_offset_keeps_offset() {
        let (ts, _) = parse_rfc3339(b"2003-08-24T05:14:15.000003-07:00", 0).unwrap();
        assert_eq!(fmt(ts), "2003-08-24T05:14:15.000003-07:00");
        assert_eq!(ts.unix_ns / 1_000_000_000, 1_061_727_255);
    }

    #[test]
    fn every_fraction_length_round_trips() {
        for frac in [
            "",
            ".1",
            ".12",
            ".123",
            ".0123",
            ".12345",
            ".000006",
            ".1234567",
            ".12345678",
            ".987654321",
        ] {
            let text = format!("2026-12-04T09:59:09{frac}Z");
            let (ts, _) = parse_rfc3339(text.as_bytes(), 0).unwrap();
            assert_eq!(fmt(ts), text);
        }
    }

    #[test]
    fn cached_texts_are_only_reused_for_the_same_time() {
        // Times that share a second, a fraction or an instant but differ
        // in offset or digits, repeated and interleaved: each must print
        // as it does alone.
        let texts = [
            "2026-12-04T09:59:09.123Z",
            "2026-12-04T09:59:09.123000Z",
            "2026-12-04T10:59:09.123+01:00",
            "2026-12-04T09:59:09.124Z",
            "2026-12-04T09:59:09Z",
            "2026-12-04T09:59:10.123Z",
            "2026-12-04T04:29:09.123-05:30",
        ];
        let times: Vec<Timestamp> = texts
            .iter()
            .map(|t| parse_rfc3339(t.as_bytes(), 0).unwrap().0)
            .collect();
        for round in 0..4 {
            for i in 0..texts.len() {
                for j in [i, (i + round) % texts.len(), i] {
                    assert_eq!(fmt(times[j]), texts[j], "round {round} i {i} j {j}");
                }
            }
        }
    }

    #[test]
    fn rfc3339_rejects_bad_dates() {
        assert!(parse_rfc3339(b"2003-02-30T00:00:00Z", 0).is_none());
        assert!(parse_rfc3339(b"2003-13-01T00:00:00Z", 0).is_none());
        assert!(parse_rfc3339(b"2003-01-01T24:00:00Z", 0).is_none());
        assert!(parse_rfc3339(b"2003-01-01T00:00:00+0100", 0).is_none());
    }

    #[test]
    fn civil_conversion_round_trips_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn rfc3164_form_pads_day_with_space() {
        let ts = from_civil(2026, 10, 1, 3600 + 2 * 60 + 3, 0, 0, 0).unwrap();
        let mut v = Vec::new();
        ts.write_rfc3164(&mut v);
        assert_eq!(v, b"Oct  1 01:02:03");
    }
}
