//! Checkpoints and the other signed statements of an archive.
//!
//! A checkpoint says "the log of this archive had `size` blocks with root
//! hash `root` at `time`", signed with the archive's ed25519 key. It is one
//! line of `key=value` words so that the same text lives in the
//! `checkpoints` file, in a syslog message sent off the box, and in a file
//! given to `verify --checkpoint`:
//!
//! ```text
//! sluice-checkpoint v=1 size=1204 root=<hex> time=2026-11-01T10:00:00.000Z time_ns=… key=<hex> sig=<hex>
//! ```
//!
//! The signature covers every byte before ` sig=`. Keys are PKCS#8 PEM
//! files (`openssl pkey -in KEY -pubout` reads them); public keys are
//! given as 64 hex digits or a file holding those or a PEM public key.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::merkle::Hash;
use super::{ArchiveError, Result, from_hex, to_hex};

/// Reads an ed25519 private key (PKCS#8 PEM, as `keygen` writes it).
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).map_err(|e| ArchiveError::io(path, e))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        ArchiveError::corrupt(
            path,
            format!("not an ed25519 private key in PKCS#8 PEM ({e}); make one with `sluice archive keygen --out FILE`"),
        )
    })
}

/// Makes a new key, writes it to `path` (mode 0600; never overwrites) and
/// returns it.
pub fn generate(path: &Path) -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    let mut got = 0;
    while got < seed.len() {
        // SAFETY: getrandom(2) writes at most the given length into our
        // buffer.
        let n = unsafe {
            libc::getrandom(
                seed[got..].as_mut_ptr() as *mut libc::c_void,
                seed.len() - got,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(ArchiveError::Other(format!("getrandom: {e}")));
        }
        got += n as usize;
    }
    let key = SigningKey::from_bytes(&seed);
    // PKCS#8 v1 (no embedded public key): what `openssl genpkey -algorithm
    // ed25519` writes and what OpenSSL 3.0 reads.
    let pem = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: seed,
        public_key: None,
    }
    .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
    .map_err(|e| ArchiveError::Other(format!("encoding key: {e}")))?;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ArchiveError::io(path, e))?;
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| ArchiveError::io(path, e))?;
    Ok(key)
}

/// A public key from 64 hex digits, or from a file holding hex digits, a
/// PEM public key or a PEM private key.
pub fn parse_pubkey(arg: &str) -> Result<VerifyingKey> {
    if let Some(b) = from_hex(arg)
        && let Ok(b) = <[u8; 32]>::try_from(b.as_slice())
    {
        return VerifyingKey::from_bytes(&b).map_err(|_| {
            ArchiveError::Other(format!("--pubkey {arg}: not an ed25519 public key"))
        });
    }
    let path = Path::new(arg);
    let text = std::fs::read_to_string(path).map_err(|e| {
        ArchiveError::Other(format!(
            "--pubkey {arg}: neither 64 hex digits nor a readable file ({e})"
        ))
    })?;
    if let Some(b) = from_hex(text.trim())
        && let Ok(b) = <[u8; 32]>::try_from(b.as_slice())
    {
        return VerifyingKey::from_bytes(&b)
            .map_err(|_| ArchiveError::corrupt(path, "not an ed25519 public key"));
    }
    if let Ok(k) = VerifyingKey::from_public_key_pem(&text) {
        return Ok(k);
    }
    if let Ok(k) = SigningKey::from_pkcs8_pem(&text) {
        return Ok(k.verifying_key());
    }
    Err(ArchiveError::corrupt(
        path,
        "not an ed25519 public key (64 hex digits or PEM)",
    ))
}

/// Appends ` sig=<hex>` signing everything before it.
pub fn sign_line(body: &str, key: &SigningKey) -> String {
    let sig = key.sign(body.as_bytes());
    format!("{body} sig={}", to_hex(&sig.to_bytes()))
}

/// A signed line taken apart: its words and whether the signature holds.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The first word (`sluice-checkpoint`, `sluice-deletion`).
    pub kind: String,
    pub fields: BTreeMap<String, String>,
    pub key: [u8; 32],
    body: String,
    sig: [u8; 64],
}

impl Signed {
    /// Parses a signed line (from a file, or a syslog message holding one).
    pub fn parse(line: &str) -> std::result::Result<Signed, String> {
        let line = line.trim();
        // A syslog message carries the line after its header.
        let start = ["sluice-checkpoint ", "sluice-deletion "]
            .iter()
            .filter_map(|k| line.find(k))
            .min()
            .ok_or("not a signed sluice line")?;
        let line = &line[start..];
        let (body, sig) = line.rsplit_once(" sig=").ok_or("no signature (sig=)")?;
        let sig: [u8; 64] = from_hex(sig)
            .and_then(|b| b.try_into().ok())
            .ok_or("signature is not 128 hex digits")?;
        let mut words = body.split(' ');
        let kind = words.next().unwrap_or_default().to_string();
        let mut fields = BTreeMap::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("word `{w}` is not key=value"))?;
            fields.insert(k.to_string(), v.to_string());
        }
        let key: [u8; 32] = fields
            .get("key")
            .and_then(|k| from_hex(k))
            .and_then(|b| b.try_into().ok())
            .ok_or("no key=<64 hex digits>")?;
        Ok(Signed {
            kind,
            fields,
            key,
            body: body.to_string(),
            sig,
        })
    }

    /// Whether the line is signed by `key` (and names it).
    pub fn verifies(&self, key: &VerifyingKey) -> bool {
        self.key == key.to_bytes()
            && key
                .verify_strict(self.body.as_bytes(), &Signature::from_bytes(&self.sig))
                .is_ok()
    }

    pub fn get(&self, k: &str) -> std::result::Result<&str, String> {
        self.fields
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("no {k}="))
    }

    pub fn get_u64(&self, k: &str) -> std::result::Result<u64, String> {
        self.get(k)?
            .parse()
            .map_err(|_| format!("{k}= is not a number"))
    }

    pub fn get_i64(&self, k: &str) -> std::result::Result<i64, String> {
        self.get(k)?
            .parse()
            .map_err(|_| format!("{k}= is not a number"))
    }

    pub fn get_hash(&self, k: &str) -> std::result::Result<Hash, String> {
        from_hex(self.get(k)?)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{k}= is not 64 hex digits"))
    }
}

/// A signed tree head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub size: u64,
    pub root: Hash,
    pub time_ns: i64,
}

impl Checkpoint {
    /// The signed line.
    pub fn line(&self, key: &SigningKey) -> String {
        let body = format!(
            "sluice-checkpoint v=1 size={} root={} time={} time_ns={} key={}",
            self.size,
            to_hex(&self.root),
            super::rfc3339(self.time_ns),
            self.time_ns,
            to_hex(&key.verifying_key().to_bytes())
        );
        sign_line(&body, key)
    }

    /// Reads a checkpoint from a parsed signed line (the signature is
    /// checked separately).
    pub fn from_signed(s: &Signed) -> std::result::Result<Checkpoint, String> {
        if s.kind != "sluice-checkpoint" {
            return Err(format!("a `{}` line, not a checkpoint", s.kind));
        }
        Ok(Checkpoint {
            size: s.get_u64("size")?,
            root: s.get_hash("root")?,
            time_ns: s.get_i64("time_ns")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_until_any_byte_changes() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let c = Checkpoint {
            size: 12,
            root: [3; 32],
            time_ns: 1_700_000_000_000_000_000,
        };
        let line = c.line(&key);
        let s = Signed::parse(&line).unwrap();
        assert!(s.verifies(&key.verifying_key()));
        assert_eq!(Checkpoint::from_signed(&s).unwrap(), c);
        let edited = line.replace("size=12", "size=13");
        assert!(
            !Signed::parse(&edited)
                .unwrap()
                .verifies(&key.verifying_key())
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(!s.verifies(&other.verifying_key()));
    }

    #[test]
    fn a_checkpoint_inside_a_syslog_message_parses() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let line = Checkpoint {
            size: 1,
            root: [0; 32],
            time_ns: 0,
        }
        .line(&key);
        let msg = format!("<110>1 2026-01-01T00:00:00Z host sluice - CHECKPOINT - {line}");
        assert!(Signed::parse(&msg).unwrap().verifies(&key.verifying_key()));
    }

    #[test]
    fn keys_round_trip_through_pem_and_hex() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        let k = generate(&p).unwrap();
        assert_eq!(load_signing_key(&p).unwrap().to_bytes(), k.to_bytes());
        let hex = to_hex(&k.verifying_key().to_bytes());
        assert_eq!(parse_pubkey(&hex).unwrap(), k.verifying_key());
        assert_eq!(
            parse_pubkey(p.to_str().unwrap()).unwrap(),
            k.verifying_key()
        );
        assert!(generate(&p).is_err(), "never overwrites a key");
        let e = parse_pubkey("/no/such/file").unwrap_err().to_string();
        assert!(e.contains("/no/such/file"), "{e}");
    }
}
