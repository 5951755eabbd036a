//! Before the idle wait: unmap the file pages that only the start-up used.
//!
//! Parsing the options, resolving users and the first starts fault in most of
//! dmon's text and much of libc's (the kernel maps 64 KiB around each fault).
//! They stay counted in dmon's RSS and Pss for its whole life, although the
//! loop runs a small part of that code. A dmon that detaches starts over in
//! the forked child, which maps only what it touches again; `-n` keeps the
//! pages of its start-up. This gives both the same: `MADV_DONTNEED` on every
//! private, read-only mapping of a file that holds no anonymous (copied)
//! page, so that what goes is a clean copy of the file, still in the page
//! cache, faulted back as it was (exactly as after the kernel reclaimed it)
//! when the loop runs that code again. Data and relocated tables (RELRO) are
//! never touched; of the heap, only the pages no allocation holds go back. A
//! pause or resume maps a good part back (a thaw runs on a thread: ld.so's and
//! libc's thread code), so the loop calls this again a second after one, once
//! no freezer write is running.
//!
//! The stack is the other thing the start-up leaves behind: its deep calls
//! (option parsing, user look-ups) dirtied tens of KiB below the frames the
//! loop runs in, which no later call reaches. Those pages are dropped too,
//! all but [`STACK_KEPT`] below the current frame: a call that goes deeper
//! again gets fresh zeroed pages from the kernel, as a stack always does.

use std::io::{BufRead, BufReader};

/// How much of the stack below the caller's frame stays mapped: what the
/// loop's own calls use while idle (a wake-up, a restart).
const STACK_KEPT: usize = 8 << 10;

/// Unmaps the clean file pages and the stack's unused pages, and gives the
/// heap's free pages back; returns how many KiB were mapped in them. Any
/// failure leaves the pages as they are.
///
/// `/proc/self/smaps` is read a line at a time: read whole, its text (64 KiB
/// for dmon) would be the heap's largest allocation, touched at every release.
pub fn release_start_up_pages() -> usize {
    let Ok(file) = std::fs::File::open("/proc/self/smaps") else {
        return 0;
    };
    let mut smaps = BufReader::with_capacity(4096, file);
    let mut line = String::new();
    let mut released = 0;
    // The current mapping: (start, end, clean file mapping, Rss KiB).
    let mut current: Option<(usize, usize, bool, usize)> = None;
    while {
        line.clear();
        smaps.read_line(&mut line).is_ok_and(|n| n > 0)
    } {
        let line = line.trim_end();
        if let Some(range) = header(line) {
            current = Some(range);
            if line.ends_with("[stack]") {
                released += release_stack(range.0);
            }
        } else if let Some(kib) = number(line, "Rss:") {
            current = current.map(|(s, e, clean, _)| (s, e, clean, kib));
        } else if let Some(kib) = number(line, "Anonymous:") {
            current = current.map(|(s, e, clean, rss)| (s, e, clean && kib == 0, rss));
        } else if line.starts_with("VmFlags:") {
            // The last line of a mapping's block.
            if let Some((start, end, true, rss)) = current.take() {
                let locked = line.split_whitespace().any(|flag| flag == "lo");
                // SAFETY: the range is one whole mapping of this process, private
                // and read-only, with no anonymous page: dropping its pages loses
                // nothing, as the file holds every byte they hold.
                if rss > 0
                    && !locked
                    && unsafe { libc::madvise(start as *mut _, end - start, libc::MADV_DONTNEED) } == 0
                {
                    released += rss;
                }
            }
        }
    }
    drop((smaps, line));
    trim_heap();
    released
}

/// Gives the kernel the heap's wholly free pages (the start-up's, and the
/// buffer above), which glibc keeps below its trim threshold otherwise.
fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases memory that no allocation holds.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A mapping's first line: `start-end perms offset dev inode path`, as
/// (start, end, whether it is a private read-only mapping of a file, 0).
fn header(line: &str) -> Option<(usize, usize, bool, usize)> {
    let mut words = line.split_whitespace();
    let (start, end) = words.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = words.next()?.as_bytes();
    let path = words.nth(3).unwrap_or("");
    let clean = perms.len() == 4 && perms[1] == b'-' && perms[3] == b'p' && path.starts_with('/');
    Some((start, end, clean, 0))
}

fn number(line: &str, name: &str) -> Option<usize> {
    crate::keyed::number(line, name).map(|kib| kib as usize)
}

/// Drops the pages of the main stack, which starts (at its lowest address) at
/// `start`, from there to [`STACK_KEPT`] below this frame. Returns the KiB.
fn release_stack(start: usize) -> usize {
    let here = 0u8;
    let frame = std::hint::black_box(&here) as *const u8 as usize;
    let end = frame.saturating_sub(STACK_KEPT) & !(PAGE - 1);
    if end <= start {
        return 0;
    }
    // SAFETY: the range lies wholly below the live frames (by STACK_KEPT), in
    // the stack mapping: nothing is stored there, as no signal handler runs on
    // this stack (dmon reads its signals from a signalfd), and whatever is
    // called later writes its frames afresh.
    match unsafe { libc::madvise(start as *mut _, end - start, libc::MADV_DONTNEED) } {
        0 => (end - start) >> 10,
        _ => 0,
    }
}

/// The page size of every Linux target dmon builds for is at least this; a
/// range aligned to it is aligned to the real one on x86-64 and aarch64 with
/// 4 KiB pages, and madvise refuses (harmlessly) a misaligned one elsewhere.
const PAGE: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let text = "7f46408e7000-7f46408ea000 r-xp 00000000 fe:00 326426    /usr/lib/libc.so.6";
        assert_eq!(header(text), Some((0x7f46408e7000, 0x7f46408ea000, true, 0)));
        let data = "7f46408e7000-7f46408ea000 rw-p 00000000 fe:00 326426    /usr/lib/libc.so.6";
        assert_eq!(header(data).map(|h| h.2), Some(false));
        let anon = "7f4640702000-7f4640705000 r--p 00000000 00:00 0";
        assert_eq!(header(anon).map(|h| h.2), Some(false));
        assert_eq!(header("7fff2aad0000-7fff2aaf1000 rw-p 00000000 00:00 0   [stack]").map(|h| h.2), Some(false));
        assert_eq!(header("Rss:                 148 kB"), None);
        assert_eq!(number("Anonymous:            12 kB", "Anonymous:"), Some(12));
    }

    #[test]
    fn releases_and_runs_on() {
        // Whatever it unmaps comes back: the test goes on running this code.
        release_start_up_pages();
        assert_eq!(header("1-2 r--p 0 0:0 1 /x").map(|h| h.2), Some(true));
    }
}
