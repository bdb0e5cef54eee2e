//! A command's cleaned output: in memory up to a cap, then spilled whole to a file, so no
//! output is ever lost to a pane's history limit.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// Cleaned output of one command.
#[derive(Debug)]
pub struct OutputStore {
    mem: String,
    cap: usize,
    spill_path: PathBuf,
    spill: Option<File>,
    len: u64,
    /// Set when spilling failed (disk full, directory removed): output then stays in memory.
    pub spill_error: Option<String>,
}

impl OutputStore {
    pub fn new(cap: usize, spill_path: PathBuf) -> OutputStore {
        OutputStore {
            mem: String::new(),
            cap,
            spill_path,
            spill: None,
            len: 0,
            spill_error: None,
        }
    }

    /// Reopen the output file an earlier run left (after a daemon restart).
    pub fn open_existing(cap: usize, spill_path: PathBuf) -> Option<OutputStore> {
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&spill_path)
            .ok()?;
        let len = f.metadata().ok()?.len();
        Some(OutputStore {
            mem: String::new(),
            cap,
            spill_path,
            spill: Some(f),
            len,
            spill_error: None,
        })
    }

    /// Forget everything stored.
    pub fn clear(&mut self) {
        self.mem.clear();
        self.len = 0;
        if let Some(f) = self.spill.as_mut() {
            let _ = f.set_len(0);
            let _ = f.seek(SeekFrom::Start(0));
        }
    }

    /// Make sure the whole output is in the output file (kept for history after a restart).
    pub fn persist(&mut self) {
        if self.spill.is_none() && self.spill_error.is_none() {
            self.spill_now();
        }
    }

    /// Bytes stored.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.len += s.len() as u64;
        if let Some(f) = self.spill.as_mut() {
            if let Err(e) = f.write_all(s.as_bytes()) {
                self.unspill(s, e);
            }
            return;
        }
        self.mem.push_str(s);
        if self.mem.len() > self.cap && self.spill_error.is_none() {
            self.spill_now();
        }
    }

    fn spill_now(&mut self) {
        let opened = (|| {
            if let Some(dir) = self.spill_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&self.spill_path)?;
            f.write_all(self.mem.as_bytes())?;
            Ok::<File, std::io::Error>(f)
        })();
        match opened {
            Ok(f) => {
                self.spill = Some(f);
                self.mem = String::new();
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.spill_path);
                self.spill_error = Some(format!("{}: {e}", self.spill_path.display()));
                self.cap = usize::MAX;
            }
        }
    }

    /// Spilling failed (disk full, directory gone): take everything back into memory and
    /// delete the file, so the disk is not left full for the next commands. Nothing is lost.
    fn unspill(&mut self, pending: &str, e: std::io::Error) {
        self.spill_error = Some(format!("{}: {e}", self.spill_path.display()));
        let before = self.len - pending.len() as u64;
        let mut bytes = Vec::with_capacity(before as usize);
        self.spill = None;
        if let Ok(mut f) = File::open(&self.spill_path) {
            let _ = f.read_to_end(&mut bytes);
        }
        // A partial write leaves bytes past `before`: the whole of `pending` is appended below.
        bytes.truncate(before as usize);
        let _ = std::fs::remove_file(&self.spill_path);
        self.mem = String::from_utf8_lossy(&bytes).into_owned();
        self.mem.push_str(pending);
        self.cap = usize::MAX;
        tracing::warn!(error = %self.spill_error.as_deref().unwrap_or_default(), "output spill failed; keeping the output in memory");
    }

    /// Bytes in the spill file (0 when nothing spilled or spilling failed before any write).
    fn file_len(&self) -> u64 {
        self.len - self.mem.len() as u64
    }

    /// Up to `limit` bytes from `offset`, cut to character boundaries.
    pub fn read(&self, offset: u64, limit: u64) -> String {
        let end = self.len.min(offset.saturating_add(limit));
        if offset >= end {
            return String::new();
        }
        let mut bytes = Vec::with_capacity((end - offset) as usize);
        let flen = self.file_len();
        if offset < flen {
            let stop = end.min(flen);
            if let Ok(mut f) = File::open(&self.spill_path) {
                let _ = f.seek(SeekFrom::Start(offset));
                let _ = f.take(stop - offset).read_to_end(&mut bytes);
            }
        }
        if end > flen {
            let from = (offset.max(flen) - flen) as usize;
            let to = (end - flen) as usize;
            bytes.extend_from_slice(&self.mem.as_bytes()[from..to]);
        }
        trim_partial_utf8(bytes)
    }

    /// The last `max` bytes (whole characters), and whether that is less than everything.
    pub fn tail(&self, max: u64) -> (String, bool) {
        let start = self.len.saturating_sub(max);
        (self.read(start, max), start > 0)
    }

    /// Remove the spill file.
    pub fn discard(&mut self) {
        if self.spill.take().is_some() || self.file_len() > 0 {
            let _ = std::fs::remove_file(&self.spill_path);
        }
    }
}

/// Decode, dropping a character cut at either end of the slice.
fn trim_partial_utf8(bytes: Vec<u8>) -> String {
    let mut start = 0;
    while start < bytes.len() && start < 4 && (bytes[start] & 0xC0) == 0x80 {
        start += 1;
    }
    let s = &bytes[start..];
    match std::str::from_utf8(s) {
        Ok(v) => v.to_string(),
        // A character cut at the end: drop it.
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&s[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(s).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_and_reads_across_the_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = OutputStore::new(10, dir.path().join("o.log"));
        s.push("0123456789");
        s.push("abcdef\n");
        assert!(dir.path().join("o.log").exists());
        s.push("tail");
        assert_eq!(s.len(), 21);
        assert_eq!(s.read(0, 100), "0123456789abcdef\ntail");
        assert_eq!(s.read(8, 4), "89ab");
        assert_eq!(s.tail(5), ("\ntail".to_string(), true));
        s.discard();
        assert!(!dir.path().join("o.log").exists());
    }

    #[test]
    fn a_full_disk_moves_the_spill_back_into_memory() {
        // /dev/full: every write fails with ENOSPC, as on a full disk.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.log");
        let mut s = OutputStore::new(4, path.clone());
        s.push("abcdef");
        assert!(path.exists());
        s.spill = Some(OpenOptions::new().write(true).open("/dev/full").unwrap());
        s.push("gh");
        assert!(
            s.spill_error.as_deref().unwrap().contains("No space"),
            "{:?}",
            s.spill_error
        );
        assert!(!path.exists(), "the partial spill file is removed");
        assert_eq!(s.read(0, 100), "abcdefgh");
        assert_eq!(s.len(), 8);
    }

    #[test]
    fn unwritable_spill_keeps_everything_in_memory() {
        let mut s = OutputStore::new(4, PathBuf::from("/proc/archy-no/such/dir/o.log"));
        s.push("abcdef");
        s.push("gh");
        assert!(s.spill_error.is_some());
        assert_eq!(s.read(0, 100), "abcdefgh");
    }
}
