//! Archive segments: immutable zstd-compressed JSON Lines of the exported event format, each with
//! a manifest (`<name>.manifest.json`) naming its positions, the hash before its first event and
//! after its last, its event count, time range and the SHA-256 of the compressed file. Both are
//! written to a temporary file, fsynced, renamed into place and the folder fsynced, so a crash
//! leaves either nothing or a whole file.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::line::ExportedEvent;
use crate::store::records::StoredEvent;

/// The manifest's `format`.
pub const FORMAT: &str = "token-ledger-archive-segment/1";
/// zstd level 1: on this event format it compresses as well as level 3, at twice the speed
/// (`../shared/reference/retention.md` section 5).
pub const LEVEL: i32 = 1;

/// A segment's manifest, as stored beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// The segment file's name in the same folder.
    pub file: String,
    pub codec: String,
    pub level: i32,
    pub first_position: i64,
    pub last_position: i64,
    pub count: i64,
    /// Hex: the hash the first event chains from.
    pub prev_hash: String,
    /// Hex: the hash of the last event.
    pub last_hash: String,
    pub first_recorded_at: String,
    pub last_recorded_at: String,
    /// Hex SHA-256 of the compressed file.
    pub sha256: String,
    /// Size of the compressed file in bytes.
    pub bytes: u64,
    /// Size of the JSON Lines before compression.
    pub raw_bytes: u64,
}

/// A failure to write or read a segment, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io { path: path.to_owned(), source }
}

/// The file names of the segment holding `first..=last`: zero-padded, so they sort by position.
pub fn names(first: i64, last: i64) -> (String, String) {
    let stem = format!("segment-{first:020}-{last:020}");
    (format!("{stem}.jsonl.zst"), format!("{stem}.manifest.json"))
}

/// Counts and hashes what passes through to the file (segments and boundary snapshots).
pub(super) struct Hashing<W: Write> {
    pub(super) inner: W,
    pub(super) sha: Sha256,
    pub(super) bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes one segment, event by event, into a temporary file of the archive folder.
pub struct SegmentWriter {
    dir: PathBuf,
    temp: PathBuf,
    encoder: zstd::stream::Encoder<'static, Hashing<BufWriter<File>>>,
    first: Option<StoredEvent>,
    last: Option<StoredEvent>,
    count: i64,
    raw_bytes: u64,
}

impl SegmentWriter {
    /// Starts a segment in `dir` (created if missing).
    pub fn create(dir: &Path) -> Result<Self, SegmentError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let temp = dir.join(format!(".segment-{}.tmp", uuid::Uuid::new_v4().simple()));
        let file = create_private(&temp).map_err(io(&temp))?;
        let hashing = Hashing { inner: BufWriter::new(file), sha: Sha256::new(), bytes: 0 };
        let encoder = zstd::stream::Encoder::new(hashing, LEVEL).map_err(io(&temp))?;
        Ok(Self { dir: dir.to_owned(), temp, encoder, first: None, last: None, count: 0, raw_bytes: 0 })
    }

    /// Appends one event (the caller has checked the chain).
    pub fn push(&mut self, event: &StoredEvent) -> Result<(), SegmentError> {
        let mut line = ExportedEvent::line(event);
        line.push('\n');
        self.encoder.write_all(line.as_bytes()).map_err(io(&self.temp))?;
        self.raw_bytes += line.len() as u64;
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(event.clone());
        }
        self.last = Some(event.clone());
        Ok(())
    }

    /// How many events were pushed.
    pub fn count(&self) -> i64 {
        self.count
    }

    /// Finishes the file, fsyncs it, renames it and its manifest into place and fsyncs the
    /// folder. Returns the manifest.
    pub fn finish(self) -> Result<Manifest, SegmentError> {
        let Self { dir, temp, encoder, first, last, count, raw_bytes } = self;
        let (Some(first), Some(last)) = (first, last) else {
            let _ = std::fs::remove_file(&temp);
            return Err(SegmentError::Invalid { path: temp, reason: "an empty segment".into() });
        };
        let hashing = encoder.finish().map_err(io(&temp))?;
        let Hashing { inner, sha, bytes } = hashing;
        let file = inner.into_inner().map_err(|e| io(&temp)(e.into_error()))?;
        file.sync_all().map_err(io(&temp))?;
        let (name, manifest_name) = names(first.position, last.position);
        let manifest = Manifest {
            format: FORMAT.into(),
            file: name.clone(),
            codec: "zstd".into(),
            level: LEVEL,
            first_position: first.position,
            last_position: last.position,
            count,
            prev_hash: hex::encode(&first.prev_hash),
            last_hash: hex::encode(&last.hash),
            first_recorded_at: first.recorded_at,
            last_recorded_at: last.recorded_at,
            sha256: hex::encode(sha.finalize()),
            bytes,
            raw_bytes,
        };
        let target = dir.join(&name);
        std::fs::rename(&temp, &target).map_err(io(&target))?;
        let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
        write_durably(&dir.join(manifest_name), text.as_bytes())?;
        sync_dir(&dir)?;
        Ok(manifest)
    }
}

/// Writes a small file atomically: a temporary file, fsynced, renamed.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), SegmentError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    let temp = PathBuf::from(name);
    let mut file = create_private(&temp).map_err(io(&temp))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io(&temp))?;
    std::fs::rename(&temp, path).map_err(io(path))
}

/// A new file readable by its owner only: a segment or a snapshot holds what the database
/// holds (digests, password hashes, sealed token values).
pub(super) fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Makes the renames in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Reads the manifest of the segment holding `first..=last` in `dir`.
pub fn read_manifest(dir: &Path, first: i64, last: i64) -> Result<Manifest, SegmentError> {
    let path = dir.join(names(first, last).1);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| SegmentError::Invalid { path, reason: e.to_string() })
}

/// The SHA-256 of a file, streamed.
pub fn file_sha256(path: &Path) -> Result<(String, u64), SegmentError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            return Ok((hex::encode(sha.finalize()), bytes));
        }
        sha.update(&buf[..n]);
        bytes += n as u64;
    }
}

/// The events of a segment file, in file order, each line decoded (not yet checked).
pub fn read_events(
    path: &Path,
) -> Result<impl Iterator<Item = Result<StoredEvent, SegmentError>>, SegmentError> {
    let file = File::open(path).map_err(io(path))?;
    let decoder = zstd::stream::Decoder::new(file).map_err(io(path))?;
    let path = path.to_owned();
    Ok(BufReader::new(decoder).lines().enumerate().map(move |(index, line)| {
        let line = line.map_err(io(&path))?;
        let invalid = |reason: String| SegmentError::Invalid {
            path: path.clone(),
            reason: format!("line {}: {reason}", index + 1),
        };
        let exported: ExportedEvent = serde_json::from_str(&line).map_err(|e| invalid(e.to_string()))?;
        exported.into_stored().map_err(invalid)
    }))
}

/// Removes the temporary files that an interrupted write left in `dir` (a segment, a manifest or
/// a boundary snapshot being written when the process was killed) once they are older than
/// `age`: a younger one may be a write in progress, another node's on a shared folder. Nothing
/// else is touched. Returns how many were removed; a missing folder has none.
pub fn sweep_temporaries(dir: &Path, age: std::time::Duration) -> Result<usize, SegmentError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(dir)(e)),
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = name.trim_start_matches('.');
        if !name.ends_with(".tmp") || !(ours.starts_with("segment-") || ours.starts_with("snapshot-")) {
            continue;
        }
        let path = entry.path();
        let meta = entry.metadata().map_err(io(&path))?;
        let old = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|a| a >= age);
        if meta.is_file() && old {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn file(dir: &Path, name: &str, age: Duration) -> PathBuf {
        let path = dir.join(name);
        let f = File::create(&path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    #[test]
    fn only_old_temporaries_of_the_archive_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        let gone = [
            file(dir.path(), ".segment-0f3c.tmp", 2 * hour),
            file(dir.path(), "segment-00000000000000000001-00000000000000000009.manifest.json.tmp", 2 * hour),
            file(dir.path(), ".snapshot-00000000000000000009.views.zst.0f3c.tmp", 2 * hour),
        ];
        let kept = [
            file(dir.path(), ".segment-young.tmp", Duration::from_secs(5)),
            file(dir.path(), "segment-00000000000000000001-00000000000000000009.jsonl.zst", 2 * hour),
            file(dir.path(), "notes.tmp", 2 * hour),
        ];
        assert_eq!(sweep_temporaries(dir.path(), hour).unwrap(), 3);
        assert!(gone.iter().all(|p| !p.exists()));
        assert!(kept.iter().all(|p| p.exists()));
        assert_eq!(sweep_temporaries(&dir.path().join("missing"), hour).unwrap(), 0);
    }
}
