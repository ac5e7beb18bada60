//! Downloading one pinned file over HTTP(S) into a scratch directory: streamed to disk,
//! hashed on the way, never more than its pinned size plus one byte, and never longer
//! than its size at the slowest accepted rate ([`MIN_RATE_ENV`]).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use crate::checksum::hex;
use crate::error::DatasetError;

/// Bytes copied per read.
const CHUNK: usize = 1 << 16;
/// Limits on a stalled server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variable: the slowest average rate, in bytes per second, a download may
/// keep (default [`DEFAULT_MIN_RATE`]). A download of N bytes is abandoned after
/// [`DEADLINE_SLACK`] + N / rate, so a server that trickles a byte now and then (each
/// under the per-read timeout) cannot hold a run forever. Of unknown length, what has
/// arrived so far counts as N.
pub const MIN_RATE_ENV: &str = "RBD_DOWNLOAD_MIN_RATE";
/// 16 KiB/s: CIFAR-10's 162 MiB archive within 2 h 53 min.
pub const DEFAULT_MIN_RATE: u64 = 16 << 10;
/// Time every deadline adds, for connecting and the server's first answer.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(10);

/// Environment variable (OpenSSL's, which curl and pip read too): a PEM bundle of root
/// certificates to trust instead of the built-in Mozilla roots, for networks whose proxy
/// re-signs TLS with its own authority.
pub const CERT_FILE_ENV: &str = "SSL_CERT_FILE";

/// The roots TLS trusts: [`CERT_FILE_ENV`]'s certificates when set, else Mozilla's.
/// Read only for an `https` URL (plain http has no TLS, as with curl).
fn root_certs() -> Result<RootCerts, String> {
    let Some(path) = cert_file() else {
        return Ok(RootCerts::WebPki);
    };
    let path = path.as_path();
    let pem = std::fs::read(path)
        .map_err(|e| format!("${CERT_FILE_ENV}: cannot read {}: {e}", path.display()))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!(
            "${CERT_FILE_ENV}: {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(RootCerts::from(certs))
}

/// The bundle [`CERT_FILE_ENV`] names, if set.
fn cert_file() -> Option<std::path::PathBuf> {
    std::env::var_os(CERT_FILE_ENV)
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

/// The slowest rate accepted, from [`MIN_RATE_ENV`] when set.
fn min_rate() -> Result<u64, String> {
    match std::env::var(MIN_RATE_ENV) {
        Err(_) => Ok(DEFAULT_MIN_RATE),
        Ok(v) if v.trim().is_empty() => Ok(DEFAULT_MIN_RATE),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&r| r > 0)
            .ok_or_else(|| {
                format!("{MIN_RATE_ENV}={v} is not a positive number of bytes per second")
            }),
    }
}

/// How long a download of `bytes` may take at `rate` bytes per second.
fn deadline(bytes: u64, rate: u64) -> Duration {
    DEADLINE_SLACK + Duration::from_secs_f64(bytes as f64 / rate as f64)
}

/// How far a download has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Bytes received so far.
    pub done: u64,
    /// Bytes expected in all (the pinned size, else the server's `Content-Length`).
    pub total: Option<u64>,
}

impl DownloadProgress {
    /// Percent done (0–100), when the total is known.
    pub fn percent(&self) -> Option<f64> {
        self.total
            .filter(|&t| t > 0)
            .map(|t| 100.0 * self.done as f64 / t as f64)
    }
}

/// Downloads `url` into the new file `dest`, reporting progress after every chunk.
/// Returns the SHA-256 (lower-case hex) of what was received. `size`, when known, is the
/// exact length required: a server announcing another length is refused before the body
/// is read, and at most `size + 1` bytes are ever written. Failures are
/// [`DatasetError::Download`] carrying `help`.
pub(crate) fn download(
    url: &str,
    dest: &Path,
    size: Option<u64>,
    help: &str,
    progress: &mut dyn FnMut(DownloadProgress),
) -> Result<String, DatasetError> {
    let fail = |reason: String| DatasetError::Download {
        url: url.to_string(),
        reason,
        help: help.to_string(),
    };
    let rate = min_rate().map_err(&fail)?;
    let tls = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    let roots = if tls {
        root_certs().map_err(&fail)?
    } else {
        RootCerts::WebPki
    };
    let started = Instant::now();
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let response = agent.get(url).call().map_err(|e| fail(describe(&e)))?;
    let announced = response.body().content_length();
    if let (Some(want), Some(got)) = (size, announced) {
        if want != got {
            return Err(fail(format!(
                "the server announces {got} bytes, but the pinned file has {want}"
            )));
        }
    }
    let total = size.or(announced);
    let limit = size.map_or(u64::MAX, |s| s + 1);
    let mut body = response.into_body().into_reader().take(limit);

    let file = File::create_new(dest).map_err(|e| DatasetError::io(dest, e))?;
    let mut out = BufWriter::new(file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    progress(DownloadProgress { done, total });
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(fail(format!(
                    "the transfer broke off after {done} bytes: {e}"
                )))
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| DatasetError::io(dest, e))?;
        done += n as u64;
        progress(DownloadProgress { done, total });
        let allowed = deadline(total.unwrap_or(done), rate);
        if started.elapsed() > allowed {
            return Err(fail(format!(
                "too slow: {done} of {} bytes in {:.0} s, past the deadline of {:.0} s ({} bytes at {rate} bytes/s, the slowest accepted; {MIN_RATE_ENV} sets it)",
                total.map_or("?".to_string(), |t| t.to_string()),
                started.elapsed().as_secs_f64(),
                allowed.as_secs_f64(),
                total.unwrap_or(done)
            )));
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| DatasetError::io(dest, e.into_error()))?;
    file.sync_all().map_err(|e| DatasetError::io(dest, e))?;
    if let Some(want) = size {
        if done != want {
            let how = if done < want {
                "ended early"
            } else {
                "sent more"
            };
            return Err(fail(format!(
                "the transfer {how}: {done} bytes received, the pinned file has {want}"
            )));
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// A ureq error in words: the HTTP status, or what went wrong on the way.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(code) => format!("the server answered HTTP {code}"),
        other => {
            let text = other.to_string();
            // An unknown issuer is what a proxy that re-signs TLS looks like.
            if !text.contains("UnknownIssuer") {
                return text;
            }
            match cert_file() {
                Some(bundle) => format!(
                    "{text} (the issuer is not among the certificates of ${CERT_FILE_ENV} = {})",
                    bundle.display()
                ),
                None => format!(
                    "{text} (behind a proxy that re-signs TLS, point ${CERT_FILE_ENV} at a PEM \
                     bundle that holds its authority, e.g. /etc/ssl/certs/ca-certificates.crt)"
                ),
            }
        }
    }
}
