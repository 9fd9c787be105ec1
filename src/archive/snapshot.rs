//! Boundary snapshots (issues 9 and 11): the views' image at an archiving step's last position,
//! in the archive folder as `snapshot-<position>.views.zst` (zstd over `Image::write_to`), named
//! with its SHA-256 in the `archive_snapshots` row the step's own transaction records.
//!
//! Crash safety: the file is written to a temporary name, fsynced, renamed and the folder fsynced
//! before the step's transaction; a crash before that commit leaves a file that no row names
//! (ignored, and overwritten by the next attempt), so the last recorded snapshot stays valid.
//! Snapshots are written in both modes, so `rebuild` also works where no segment exists.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::segment::{create_private, io, sync_dir, Hashing, SegmentError};
use crate::store::image::Image;
use crate::store::steps::SnapshotRecord;

/// zstd level 1, as the segments: the image is mostly digests and ids, which compress little.
const LEVEL: i32 = 1;

/// The file name of the snapshot at `position`: zero-padded, so names sort by position.
pub fn name(position: i64) -> String {
    format!("snapshot-{position:020}.views.zst")
}

/// Writes `image` durably into `dir` (created if missing) and returns the record to store.
pub fn write(dir: &Path, image: &Image) -> Result<SnapshotRecord, SegmentError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let file = name(image.position);
    let temp = dir.join(format!(".{file}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written: Result<Vec<u8>, SegmentError> = (|| {
        let out = create_private(&temp).map_err(io(&temp))?;
        let hashing = Hashing { inner: BufWriter::with_capacity(1 << 20, out), sha: Sha256::new(), bytes: 0 };
        let encoder = zstd::stream::Encoder::new(hashing, LEVEL).map_err(io(&temp))?;
        // The image is written a cell at a time: buffered, so the encoder sees large writes.
        let mut buffered = BufWriter::with_capacity(1 << 16, encoder);
        image.write_to(&mut buffered).map_err(io(&temp))?;
        let encoder = buffered.into_inner().map_err(|e| io(&temp)(e.into_error()))?;
        let Hashing { inner, sha, .. } = encoder.finish().map_err(io(&temp))?;
        let out = inner.into_inner().map_err(|e| io(&temp)(e.into_error()))?;
        out.sync_all().map_err(io(&temp))?;
        Ok(sha.finalize().to_vec())
    })();
    let sha256 = match written {
        Ok(sha) => sha,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    let target = dir.join(&file);
    std::fs::rename(&temp, &target).map_err(io(&target))?;
    sync_dir(dir)?;
    Ok(SnapshotRecord { last_position: image.position, file, sha256, row_count: image.row_count() as i64 })
}

/// Reads the snapshot a record names from `dir`, checking its digest and its position.
pub fn read(dir: &Path, record: &SnapshotRecord) -> Result<Image, SegmentError> {
    let path: PathBuf = dir.join(&record.file);
    let invalid = |reason: String| SegmentError::Invalid { path: path.clone(), reason };
    let (sha, _) = super::segment::file_sha256(&path)?;
    if sha != hex::encode(&record.sha256) {
        return Err(invalid(format!(
            "its SHA-256 is {sha}, the database recorded {}",
            hex::encode(&record.sha256)
        )));
    }
    let file = File::open(&path).map_err(io(&path))?;
    let decoder = zstd::stream::Decoder::new(file).map_err(io(&path))?;
    let image = Image::read_from(&mut BufReader::with_capacity(1 << 16, decoder)).map_err(&invalid)?;
    if image.position != record.last_position {
        return Err(invalid(format!(
            "it holds the views at position {}, the database recorded {}",
            image.position, record.last_position
        )));
    }
    Ok(image)
}

/// Removes the snapshot files older than `keep` (best effort: a file left behind is only space).
pub fn prune(dir: &Path, keep: i64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(text) = file.to_str() else { continue };
        let position = text
            .strip_prefix("snapshot-")
            .and_then(|rest| rest.strip_suffix(".views.zst"))
            .and_then(|digits| digits.parse::<i64>().ok());
        if position.is_some_and(|p| p < keep) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
