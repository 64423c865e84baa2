//! Small byte-string helpers for the per-record path, shared by the
//! parser, the classifiers, the encoders and the archive.

/// Byte equality without a libc call for the short strings (field names,
/// header values, keys) compared several times per record: byte by byte
/// below 8 bytes, overlapping word compares up to 32.
#[inline(always)]
pub fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8"));
    match n {
        0 => true,
        1..=7 => a.iter().zip(b).all(|(x, y)| x == y),
        8..=16 => w(a, 0) == w(b, 0) && w(a, n - 8) == w(b, n - 8),
        17..=32 => {
            w(a, 0) == w(b, 0)
                && w(a, 8) == w(b, 8)
                && w(a, n - 16) == w(b, n - 16)
                && w(a, n - 8) == w(b, n - 8)
        }
        _ => a == b,
    }
}

/// The first eight bytes of `k`, zero-padded, as one little-endian word
/// (a `const fn`, for tables built at compile time; no `memcpy` call for
/// short keys).
#[inline]
pub const fn prefix8(k: &[u8]) -> u64 {
    if let Some(w) = k.first_chunk::<8>() {
        return u64::from_le_bytes(*w);
    }
    let mut v = 0u64;
    let mut i = 0;
    while i < k.len() {
        v |= (k[i] as u64) << (8 * i);
        i += 1;
    }
    v
}

/// Whether every byte of `s` is printable US-ASCII other than space
/// (33..=126, what an RFC 5424 header field may hold). Eight bytes per
/// step: once no byte has its top bit set, adding 95 to each byte sets
/// its top bit exactly when it is at least 33, and adding 1 exactly when
/// it is 127, with no carry between bytes.
#[inline]
pub fn all_printable(s: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let ok =
        |w: u64| w & HI == 0 && w.wrapping_add(LO * 95) & HI == HI && w.wrapping_add(LO) & HI == 0;
    let n = s.len();
    if n < 8 {
        return s.iter().all(|b| (33..=126).contains(b));
    }
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        if !ok(u64::from_le_bytes(c.try_into().expect("8 bytes"))) {
            return false;
        }
    }
    // The tail: the last eight bytes, overlapping what was checked.
    chunks.remainder().is_empty() || ok(u64::from_le_bytes(s[n - 8..].try_into().expect("8 bytes")))
}

/// Index of the first `b` in `s`. Header tokens (a timestamp, a host, an
/// app name) are a few bytes to a few dozen, where `memchr`'s setup costs
/// more than the search: the first 64 bytes are scanned here, sixteen at
/// a time (SSE2, part of every x86_64), and `memchr` takes the rest.
#[inline]
pub fn find_byte(s: &[u8], b: u8) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        let n = s.len();
        let mut i = 0;
        while i < 64 {
            if i + 16 > n {
                if i >= n {
                    return None;
                }
                if n >= 16 {
                    // The last sixteen bytes, overlapping checked ones
                    // (whose matches, below `i`, there are none of).
                    let m = eq16(&s[n - 16..], b) >> (i + 16 - n);
                    return (m != 0).then(|| i + m.trailing_zeros() as usize);
                }
                return s.iter().position(|&c| c == b);
            }
            let m = eq16(&s[i..i + 16], b);
            if m != 0 {
                return Some(i + m.trailing_zeros() as usize);
            }
            i += 16;
        }
        memchr::memchr(b, &s[i..]).map(|p| p + i)
    }
    #[cfg(not(target_arch = "x86_64"))]
    memchr::memchr(b, s)
}

/// A bit set for each of the first 16 bytes of `chunk` equal to `b`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn eq16(chunk: &[u8], b: u8) -> u32 {
    use std::arch::x86_64::*;
    assert!(chunk.len() >= 16);
    // SAFETY: SSE2 is part of the x86_64 baseline; the load reads the
    // first 16 bytes of `chunk`, which holds at least 16 (checked above).
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr() as *const __m128i);
        _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8))) as u32
    }
}

/// Writes `v` as decimal digits filling `dst` (zero-padded on the left,
/// high digits cut).
#[inline]
pub fn put_digits(dst: &mut [u8], mut v: u64) {
    // Two digits per division.
    let mut i = dst.len();
    while i >= 2 {
        let r = (v % 100) as usize * 2;
        v /= 100;
        dst[i - 2..i].copy_from_slice(&DIGIT_PAIRS[r..r + 2]);
        i -= 2;
    }
    if i == 1 {
        dst[0] = b'0' + (v % 10) as u8;
    }
}

/// "00" to "99".
static DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_fill_their_width_zero_padded_and_cut_from_the_left() {
        for (width, v) in [
            (1, 7u64),
            (2, 5),
            (4, 2026),
            (5, 123),
            (12, 42),
            (19, u64::MAX),
        ] {
            let mut b = vec![b'x'; width];
            put_digits(&mut b, v);
            let s = format!("{v:0width$}");
            assert_eq!(b, &s.as_bytes()[s.len() - width..], "{width} {v}");
        }
    }

    #[test]
    fn short_byte_comparison_agrees_with_slices() {
        let words: Vec<Vec<u8>> = (0..40)
            .flat_map(|n| {
                let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
                let mut b = a.clone();
                if let Some(x) = b.last_mut() {
                    *x ^= 1;
                }
                let mut c = a.clone();
                if let Some(x) = c.first_mut() {
                    *x ^= 1;
                }
                [a, b, c]
            })
            .collect();
        for x in &words {
            for y in &words {
                assert_eq!(eq_bytes(x, y), x == y, "{x:?} {y:?}");
            }
        }
    }

    #[test]
    fn same_agrees_with_slice_equality_at_every_length() {
        let a: Vec<u8> = (0..40u8).collect();
        for n in 0..=40 {
            for flip in 0..n {
                let mut b = a[..n].to_vec();
                assert!(eq_bytes(&a[..n], &b));
                b[flip] ^= 1;
                assert!(!eq_bytes(&a[..n], &b), "n {n} flip {flip}");
            }
        }
    }

    #[test]
    fn prefix8_is_the_first_eight_bytes_zero_padded() {
        assert_eq!(prefix8(b""), 0);
        assert_eq!(prefix8(b"ab"), u64::from_le_bytes(*b"ab\0\0\0\0\0\0"));
        assert_eq!(prefix8(b"abcdefghij"), u64::from_le_bytes(*b"abcdefgh"));
    }

    #[test]
    fn all_printable_agrees_with_a_byte_check_at_every_length_and_byte() {
        let base: Vec<u8> = (0..40).map(|i| b'!' + (i * 7 % 94) as u8).collect();
        for n in 0..=40 {
            assert!(all_printable(&base[..n]), "n {n}");
            for at in 0..n {
                for b in 0..=255u8 {
                    let mut s = base[..n].to_vec();
                    s[at] = b;
                    assert_eq!(
                        all_printable(&s),
                        (33..=126).contains(&b),
                        "n {n} at {at} b {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn find_byte_agrees_with_position_at_every_length_and_place() {
        for n in 0..=100 {
            let hay = vec![b'x'; n];
            assert_eq!(find_byte(&hay, b' '), None, "n {n}");
            for at in 0..n {
                let mut s = hay.clone();
                s[at] = b' ';
                assert_eq!(find_byte(&s, b' '), Some(at), "n {n} at {at}");
                // A second match later must not win.
                for later in at + 1..n {
                    let mut t = s.clone();
                    t[later] = b' ';
                    assert_eq!(find_byte(&t, b' '), Some(at), "n {n} at {at} later {later}");
                }
            }
        }
    }
}
