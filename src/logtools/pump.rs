//! The line pump shared by dlog, drlog and dslog.
//!
//! One iteration looks at up to [`CHUNK`] bytes of input. The complete lines among
//! them go to the sink as one [`Batch`], and the sink stores all of them (retrying
//! failed writes for as long as it takes) before the pump looks again. So
//! durability costs one sync per batch, not per line, and a line is never split:
//! only whole lines reach the sink.
//!
//! When the input is a pipe (dmon's log pipe), looking does not take: `tee(2)`
//! copies the start of the pipe into a private pipe, the pump reads that copy, and
//! only once the sink has stored the batch does it consume exactly those bytes from
//! the input. A logger killed even with SIGKILL thus leaves everything it had not
//! stored in dmon's pipe for the next one; what can repeat is the one batch stored
//! and not yet consumed. The start of a line whose newline has not arrived stays in
//! the pipe too, looked at again after short pauses (it keeps the pipe readable, so
//! `poll` cannot wait for more). If it is still unfinished after [`LINE_WAIT`], or
//! the pipe has no writer left, it is taken into memory, as from any other input:
//! that bounds the wait for a line longer than the pipe can hold, and it also
//! means that a KILL can lose the part of a line that waited that long.
//!
//! Any other input (a file, a terminal) is read with `read(2)`, which takes what
//! it returns: an unfinished tail then waits in memory for the rest of its bytes.
//!
//! A line is held in memory up to `--max-line` bytes ([`MAX_LINE`] by default),
//! never more: a longer one is stored as pieces of that many bytes, each a line
//! of its own, and every piece after the first starts with [`CONTINUED`] (`+ `).
//! Taking the mark and the newline before it out of each continued piece gives
//! back the line. So the memory a logger needs is bounded whatever its input,
//! and no byte of a long line is lost. (A line that starts with `+ ` of itself
//! is not marked; only a piece that follows one of exactly `--max-line` bytes
//! can be a continuation.)
//!
//! On INT or TERM the pump stops looking. If it holds part of a line in memory, it
//! reads the rest of that line one byte at a time (so it cannot take a byte past
//! the newline), hands it over, and returns. Everything after that stays in the
//! pipe for the next reader. A second INT or TERM while it waits for that newline
//! gives up waiting: the part it has is stored as a line of its own (the rest will
//! reach the next reader as another line) rather than lost. At end of input an
//! unfinished last line is stored with a newline added.
//!
//! Signals arrive through a signalfd that the loop polls beside the input, so no
//! code runs in a signal handler and a signal never interrupts a half-done write.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::sys::{self, Signal, SignalFd};

/// The most one look at the input takes. It bounds a batch, and so what may sit
/// between "read" and "synced" (or, from a pipe, between "synced" and "consumed").
pub const CHUNK: usize = 1 << 20;

/// How long the start of a line may wait in the input pipe for its newline before
/// the pump takes it into memory.
pub const LINE_WAIT: Duration = Duration::from_millis(250);

/// The default `--max-line`: a line longer than this is stored in pieces.
pub const MAX_LINE: usize = 1 << 20;

/// What starts each piece of a long line after its first, after the line's
/// timestamp and prefix.
pub const CONTINUED: &[u8] = b"+ ";

/// The pause between two attempts of an operation that failed (a write on a full
/// disk, a reopen of a removed directory, a syslog socket with nobody behind it).
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Complete lines, each ending in `\n`, in two runs: the line that an earlier read
/// had started (or nothing), then the lines wholly inside the latest read.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub parts: [&'a [u8]; 2],
}

impl<'a> Batch<'a> {
    pub fn new(first: &'a [u8], rest: &'a [u8]) -> Batch<'a> {
        debug_assert!(first.is_empty() || first.ends_with(b"\n"));
        debug_assert!(rest.is_empty() || rest.ends_with(b"\n"));
        Batch { parts: [first, rest] }
    }

    /// The lines, without their newlines.
    pub fn lines(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let [a, b] = self.parts;
        split_lines(a).chain(split_lines(b))
    }

    pub fn len(&self) -> usize {
        self.parts[0].len() + self.parts[1].len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The lines of `run` (whole lines, each ending in `\n`), without their newlines.
pub fn split_lines(mut run: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let end = sys::memchr(b'\n', run)?;
        let line = &run[..end];
        run = &run[end + 1..];
        Some(line)
    })
}

/// Where the lines go.
pub trait Sink {
    /// Stores every line of `batch` before returning, retrying through
    /// [`Control::retry`] whatever fails.
    fn write(&mut self, batch: &Batch<'_>, control: &mut Control);

    /// HUP: close and reopen the output.
    fn reopen(&mut self, _control: &mut Control) {}

    /// A moment at which [`Sink::tick`] should run even without input.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn tick(&mut self, _control: &mut Control) {}

    /// The end: make what was written durable and close.
    fn finish(&mut self, _control: &mut Control) {}
}

/// What a sink can ask of the loop while it works: pause without missing a signal,
/// and retry a failing operation with reports on stderr.
pub struct Control {
    signals: SignalFd,
    stop: u32,
    hangup: bool,
    /// `--max-line`: the longest line stored whole; see [`Line`].
    pub max_line: usize,
}

static PROGRAM: OnceLock<String> = OnceLock::new();

/// Names the program in messages (`dlog: ...`).
pub fn set_program(name: &str) {
    let _ = PROGRAM.set(name.to_string());
}

pub fn program() -> &'static str {
    PROGRAM.get().map_or("dmon-log", String::as_str)
}

/// Says what went wrong, as `PROGRAM: what`, and gives the exit status 1.
pub fn fail(what: impl std::fmt::Display) -> i32 {
    eprintln!("{}: {what}", program());
    1
}

/// The signals of a run cannot be taken (the signalfd's error).
#[derive(Debug)]
pub struct SignalsError(pub io::Error);

impl std::fmt::Display for SignalsError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "signalfd: {}", self.0)
    }
}

impl std::error::Error for SignalsError {}

impl Control {
    /// The control of a run that stores lines of up to `max_line` bytes whole;
    /// fails with why the signals cannot be taken.
    pub fn new(max_line: usize) -> Result<Control, SignalsError> {
        let signals = SignalFd::new().map_err(SignalsError)?;
        Ok(Control { signals, stop: 0, hangup: false, max_line })
    }

    /// Whether INT or TERM has arrived.
    pub fn stopping(&self) -> bool {
        self.stop > 0
    }

    fn drain(&mut self) {
        while let Some(signal) = self.signals.next() {
            match signal {
                Signal::Hangup => self.hangup = true,
                Signal::Stop => self.stop += 1,
            }
        }
    }

    /// Sleeps for `pause`, noting (not acting on) the signals that arrive.
    pub fn pause(&mut self, pause: Duration) {
        let until = Instant::now() + pause;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if sys::poll(self.signals.raw(), None, Some(left)).is_err() {
                std::thread::sleep(left);
            }
            self.drain();
        }
    }

    /// Runs `op` until it succeeds. The first failure, and any failure with a
    /// different error, is reported as `PROGRAM: WHAT: ERROR (retrying)`; the
    /// recovery is reported too. Nothing is ever given up: the input simply waits.
    pub fn retry<T>(&mut self, what: impl Fn() -> String, mut op: impl FnMut() -> io::Result<T>) -> T {
        let mut last: Option<String> = None;
        loop {
            match op() {
                Ok(value) => {
                    if last.is_some() {
                        eprintln!("{}: {}: succeeded after retrying", program(), what());
                    }
                    return value;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let text = e.to_string();
                    if last.as_deref() != Some(text.as_str()) {
                        eprintln!("{}: {}: {text} (retrying every {:?})", program(), what(), RETRY_PAUSE);
                        last = Some(text);
                    }
                    self.pause(RETRY_PAUSE);
                }
            }
        }
    }
}

/// Writes all of `parts` to `file`, in order, continuing after short writes and
/// retrying failed ones (a full disk, EIO) until everything is written. A write
/// to a pipe nobody reads any more (EPIPE) cannot ever succeed: that ends the
/// program with status 1.
pub fn write_all(control: &mut Control, what: &dyn Fn() -> String, file: &File, parts: &[&[u8]]) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut done = 0;
    while done < total {
        let n = control.retry(what, || {
            let mut skip = done;
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len());
            for part in parts {
                if skip >= part.len() {
                    skip -= part.len();
                } else {
                    slices.push(IoSlice::new(&part[skip..]));
                    skip = 0;
                }
            }
            match (&*file).write_vectored(&slices) {
                Ok(0) => Err(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing")),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    eprintln!("{}: {}: {e}; nothing reads the output any more", program(), what());
                    std::process::exit(1);
                }
                other => other,
            }
        });
        done += n;
    }
}

/// Ends a file that stops inside a line with a newline, so that what follows is
/// a line of its own. Only a write cut short by SIGKILL leaves a log file so (the
/// kernel may stop a write to a regular file between two pages): that part of a
/// batch was not consumed from the pipe and is about to be written again whole.
/// `file` must be open for reading and appending.
pub fn end_torn_line(file: &File) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let size = file.metadata()?.len();
    let mut last = [0u8; 1];
    if size > 0 && file.read_at(&mut last, size - 1)? == 1 && last[0] != b'\n' {
        (&*file).write_all(b"\n")?;
    }
    Ok(())
}

/// `fdatasync` with retries: the data and the size that reading it back needs.
pub fn sync(control: &mut Control, what: &dyn Fn() -> String, file: &File) {
    control.retry(what, || file.sync_data());
}

/// A failure that ends the program: input that cannot be read.
#[derive(Debug)]
pub struct PumpError(pub String);

/// The input: a pipe looked into with `tee(2)` and consumed once stored, or
/// anything else, read plainly.
struct Input {
    fd: RawFd,
    /// The private pipe `tee(2)` copies into: (read end, write end).
    copy: Option<(OwnedFd, OwnedFd)>,
}

impl Input {
    fn new(fd: RawFd) -> Input {
        let copy = sys::is_pipe(fd).then(sys::pipe).and_then(Result::ok);
        if let Some((_, w)) = &copy {
            sys::grow_pipe(w.as_raw_fd(), CHUNK);
        }
        Input { fd, copy }
    }

    /// The next bytes, up to `buf.len()`: from a pipe, those at its start, which
    /// stay there until [`Input::consume`]; otherwise what one `read(2)` takes.
    fn look(&self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((r, w)) = &self.copy else { return sys::read(self.fd, buf) };
        let n = sys::tee(self.fd, w.as_raw_fd(), buf.len())?;
        read_exactly(r.as_raw_fd(), &mut buf[..n])?;
        Ok(n)
    }

    /// Takes the first `len` bytes that [`Input::look`] showed out of the pipe,
    /// using `buf` as scratch. A no-op for other input, which `look` took.
    fn consume(&self, buf: &mut [u8], len: usize) -> io::Result<()> {
        match self.copy {
            Some(_) => read_exactly(self.fd, &mut buf[..len]),
            None => Ok(()),
        }
    }
}

/// Reads exactly `buf.len()` bytes that are known to be in the pipe `fd`.
fn read_exactly(fd: RawFd, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match sys::read(fd, &mut buf[done..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the pipe holds less than was copied")),
            Ok(n) => done += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`run`], as a tool's exit status: 0, or 1 after one line saying why.
pub fn run_to_status(input: RawFd, sink: &mut impl Sink, control: &mut Control) -> i32 {
    match run(input, sink, control) {
        Ok(()) => 0,
        Err(e) => fail(e.0),
    }
}

/// Moves lines from `input` to `sink` until end of input or INT/TERM.
pub fn run(input: RawFd, sink: &mut impl Sink, control: &mut Control) -> Result<(), PumpError> {
    if !sys::is_open(input) {
        return Err(PumpError(format!("input descriptor {input} is not open")));
    }
    // A bigger pipe lets the writer go on while a batch is synced; see CHUNK.
    sys::grow_pipe(input, CHUNK);
    let input = Input::new(input);
    let mut buf = vec![0u8; CHUNK];
    let mut line = Line::new(control.max_line);
    // Since when the start of the pipe has held part of a line and nothing else.
    let mut waiting: Option<Instant> = None;
    let result = loop {
        control.drain();
        if control.hangup {
            control.hangup = false;
            sink.reopen(control);
        }
        if control.stopping() {
            finish_line(input.fd, &mut line, sink, control);
            break Ok(());
        }
        let deadline = sink.deadline();
        let mut timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // That part keeps the pipe readable: look again after a pause that grows.
        let pause = waiting.map(|since| (since.elapsed() / 2).clamp(Duration::from_millis(1), LINE_WAIT / 5));
        if let Some(pause) = pause {
            timeout = Some(timeout.map_or(pause, |t| t.min(pause)));
        }
        let ready = match sys::poll(control.signals.raw(), pause.is_none().then_some(input.fd), timeout) {
            Ok(ready) => ready,
            Err(e) => break Err(PumpError(format!("poll: {e}"))),
        };
        if ready.signal {
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            sink.tick(control);
        }
        if pause.is_none() && !ready.input {
            continue;
        }
        let n = match input.look(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => continue,
            Err(e) => {
                finish_line(input.fd, &mut line, sink, control);
                break Err(PumpError(format!("reading input: {e}")));
            }
        };
        if n == 0 {
            finish_line(input.fd, &mut line, sink, control);
            break Ok(());
        }
        let waited = waiting.is_some_and(|since| since.elapsed() >= LINE_WAIT);
        match take(&input, &mut buf, n, waited, &mut line, sink, control) {
            Ok(true) => waiting = waiting.or_else(|| Some(Instant::now())),
            Ok(false) => waiting = None,
            Err(e) => break Err(PumpError(format!("reading input: {e}"))),
        }
    };
    sink.finish(control);
    result
}

/// The line in hand, cut to `--max-line`: the start of a line whose newline has
/// not been seen (`carry`, at most `max` bytes), whether pieces of it were
/// already stored (`continued`), and the pieces and lines ready to go (`out`).
pub struct Line {
    carry: Vec<u8>,
    continued: bool,
    out: Vec<u8>,
    max: usize,
}

impl Line {
    pub fn new(max: usize) -> Line {
        Line { carry: Vec::new(), continued: false, out: Vec::new(), max: max.max(1) }
    }

    /// Whether a line is in hand (part of it held, or pieces of it stored).
    fn in_hand(&self) -> bool {
        !self.carry.is_empty() || self.continued
    }

    /// Appends `data` to the line in hand: each line it completes, and each
    /// piece of `max` bytes, goes to `out` with its newline (and its mark); an
    /// unfinished rest stays in `carry`.
    fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.max - self.carry.len();
            let window = &data[..data.len().min(room + 1)];
            let (part, next, ended) = match sys::memchr(b'\n', window) {
                Some(end) => (&data[..end], end + 1, true),
                None if data.len() > room => (&data[..room], room, false),
                None => {
                    self.carry.extend_from_slice(data);
                    return;
                }
            };
            if self.continued {
                self.out.extend_from_slice(CONTINUED);
            }
            self.out.extend_from_slice(&self.carry);
            self.out.extend_from_slice(part);
            self.out.push(b'\n');
            self.carry.clear();
            self.continued = !ended;
            data = &data[next..];
        }
    }

    /// Ends the line in hand where it is (end of input, a second TERM).
    fn end(&mut self) {
        if !self.carry.is_empty() {
            self.push(b"\n");
        }
        self.continued = false;
    }

    /// Hands what is ready to the sink.
    fn flush(&mut self, sink: &mut impl Sink, control: &mut Control) {
        if !self.out.is_empty() {
            sink.write(&Batch::new(&self.out, &[]), control);
            self.out.clear();
            if self.out.capacity() > 4 * CHUNK {
                self.out.shrink_to(CHUNK);
            }
        }
    }
}

/// Whether every line of `run` (whole lines) is at most `max` bytes long.
fn lines_fit(mut run: &[u8], max: usize) -> bool {
    while let Some(end) = sys::memchr(b'\n', run) {
        if end > max {
            return false;
        }
        run = &run[end + 1..];
    }
    true
}

/// Hands the complete lines among the `n` bytes [`Input::look`] put in `buf`
/// (after the line `line` had started) to the sink, then consumes exactly them.
/// The unfinished tail stays in the pipe, or goes to `line` when the input is no
/// pipe, when `line` already holds the start of its line, or when it has `waited`
/// [`LINE_WAIT`] or the pipe has no writer left. Returns whether it stayed in the
/// pipe with nothing before it (the pump then waits for it to grow). Lines over
/// `--max-line` go in pieces ([`Line`]).
fn take(
    input: &Input,
    buf: &mut [u8],
    n: usize,
    waited: bool,
    line: &mut Line,
    sink: &mut impl Sink,
    control: &mut Control,
) -> io::Result<bool> {
    let chunk = &buf[..n];
    let last = sys::memrchr(b'\n', chunk);
    if last.is_none() && input.copy.is_some() && !line.in_hand() && !waited && !sys::hung_up(input.fd) {
        return Ok(true);
    }
    let whole = last.map_or(0, |l| l + 1);
    // A pipe keeps the tail after the last newline; anything else gives it now.
    let taken = if last.is_none() || input.copy.is_none() { n } else { whole };
    let tail = &chunk[whole..taken];
    if !line.in_hand() && whole > 0 && tail.len() <= line.max && lines_fit(&chunk[..whole], line.max) {
        // The common case, without a copy: whole lines, each short enough.
        sink.write(&Batch::new(&[], &chunk[..whole]), control);
        line.carry.extend_from_slice(tail);
    } else {
        line.push(&chunk[..taken]);
        line.flush(sink, control);
    }
    input.consume(buf, taken)?;
    Ok(false)
}

/// Completes the line in hand, if any, without reading past its newline, and
/// hands it over. See the module documentation for a second INT or TERM.
fn finish_line(input: RawFd, line: &mut Line, sink: &mut impl Sink, control: &mut Control) {
    if !line.in_hand() {
        return;
    }
    let stops = control.stop;
    let mut byte = [0u8; 1];
    while line.in_hand() {
        // Poll first: the signals are blocked, so a read waiting for the writer
        // could not be interrupted by a second TERM.
        let ready = sys::poll(control.signals.raw(), Some(input), None).unwrap_or_default();
        control.drain();
        if stops > 0 && control.stop > stops {
            break;
        }
        if !ready.input {
            continue;
        }
        match sys::read(input, &mut byte) {
            Ok(0) => break,
            Ok(_) => {
                line.push(&byte);
                if line.out.len() >= CHUNK {
                    line.flush(sink, control);
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {}
            Err(_) => break,
        }
    }
    line.end();
    line.flush(sink, control);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lines() {
        let batch = Batch::new(b"one\n", b"\ntwo\nthree\n");
        let lines: Vec<&[u8]> = batch.lines().collect();
        assert_eq!(lines, [&b"one"[..], b"", b"two", b"three"]);
        assert_eq!(Batch::new(&[], &[]).lines().count(), 0);
    }

    #[test]
    fn long_lines_go_in_marked_pieces() {
        let mut line = Line::new(4);
        line.push(b"ab\nabcd\nabcdefghij");
        assert_eq!(line.out, b"ab\nabcd\nabcd\n+ efgh\n");
        assert_eq!(line.carry, b"ij");
        line.out.clear();
        line.push(b"k\nz");
        assert_eq!(line.out, b"+ ijk\n");
        assert!(line.in_hand());
        line.out.clear();
        line.end();
        assert_eq!(line.out, b"z\n");
        assert!(!line.in_hand());
        // Byte by byte, as at a TERM, the same pieces.
        let mut line = Line::new(3);
        for &b in b"abcdefg\n" {
            line.push(&[b]);
        }
        assert_eq!(line.out, b"abc\n+ def\n+ g\n");
        assert!(lines_fit(b"abc\n\nab\n", 3) && !lines_fit(b"abcd\n", 3));
    }
}
