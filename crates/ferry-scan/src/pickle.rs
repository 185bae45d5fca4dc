//! Pickles, read opcode by opcode (protocols 0 to 5) without executing
//! anything. Every global a pickle can import (`GLOBAL`, `INST`,
//! `STACK_GLOBAL` with its module and name resolved through the stack and
//! the memo, and the `EXT` opcodes' registry lookups) is judged by the
//! allowlist ([`crate::globals`]). Several pickles in one stream are each
//! read (legacy torch files are a run of pickles followed by raw tensor
//! data). Memory is bounded: the stack, the memo and the strings kept are
//! capped, and data payloads are skipped, never held.

use std::collections::HashMap;
use std::io::{self, Read};

use crate::globals::{Judgement, judge};
use crate::verdict::{Finding, Verdict};

/// Entries the stack may hold before the pickle is refused as invalid.
pub const MAX_STACK: usize = 1 << 20;
/// Memo entries kept (a pickle with more is refused as invalid).
pub const MAX_MEMO: usize = 1 << 22;
/// Longest string kept for resolving globals; longer ones are unknown
/// values (a module or name that long makes the global dangerous).
pub const MAX_KEPT_STRING: usize = 1024;
/// Longest protocol-0 text line (an argument of `GLOBAL`, `INT`, ...).
pub const MAX_LINE: usize = 64 * 1024;

/// What the scanner tracks of a value: only what can name a global.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    /// A string short enough to be a module or a name.
    Str(String),
    /// An imported global.
    Global,
    /// Anything else.
    Other,
    /// A `MARK`.
    Mark,
}

/// The result of scanning one pickle stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PickleReport {
    /// Every global the stream imports, and every problem, in order.
    pub findings: Vec<Finding>,
    /// Pickles read (concatenated pickles count each).
    pub pickles: usize,
    /// The globals judged safe, for reports (`module.name`, deduplicated).
    pub safe_globals: Vec<String>,
}

impl PickleReport {
    /// The worst verdict of the findings ([`Verdict::Safe`] when none).
    pub fn verdict(&self) -> Verdict {
        self.findings
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Safe)
    }
}

/// Counts the bytes read, for offsets.
struct Cursor<R> {
    inner: R,
    position: u64,
}

impl<R: Read> Cursor<R> {
    fn byte(&mut self) -> io::Result<Option<u8>> {
        let mut one = [0u8; 1];
        loop {
            match self.inner.read(&mut one) {
                Ok(0) => return Ok(None),
                Ok(_) => {
                    self.position += 1;
                    return Ok(Some(one[0]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn exact<const N: usize>(&mut self) -> Result<[u8; N], Problem> {
        let mut buffer = [0u8; N];
        self.inner
            .read_exact(&mut buffer)
            .map_err(|e| truncated(&e))?;
        self.position += N as u64;
        Ok(buffer)
    }

    /// Reads `len` bytes, keeping them only when short enough to matter.
    fn payload(&mut self, len: u64) -> Result<Option<Vec<u8>>, Problem> {
        if len <= MAX_KEPT_STRING as u64 {
            let mut kept = vec![0u8; len as usize];
            self.inner
                .read_exact(&mut kept)
                .map_err(|e| truncated(&e))?;
            self.position += len;
            return Ok(Some(kept));
        }
        let copied = io::copy(&mut (&mut self.inner).take(len), &mut io::sink())
            .map_err(|e| truncated(&e))?;
        self.position += copied;
        if copied != len {
            return Err(Problem::Truncated);
        }
        Ok(None)
    }

    /// A `\n`-terminated protocol-0 argument, without the newline.
    fn line(&mut self) -> Result<Vec<u8>, Problem> {
        let mut line = Vec::new();
        loop {
            match self.byte().map_err(|e| truncated(&e))? {
                None => return Err(Problem::Truncated),
                Some(b'\n') => return Ok(line),
                Some(byte) => {
                    if line.len() == MAX_LINE {
                        return Err(Problem::Limit(format!(
                            "a text argument longer than {MAX_LINE} bytes"
                        )));
                    }
                    line.push(byte);
                }
            }
        }
    }
}

/// Why reading stopped early.
#[derive(Debug)]
enum Problem {
    /// The stream ended inside a pickle.
    Truncated,
    /// Not a valid pickle.
    Invalid(String),
    /// One of the scanner's own limits, which Python does not have: what
    /// follows was not read.
    Limit(String),
}

fn truncated(error: &io::Error) -> Problem {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        Problem::Truncated
    } else {
        Problem::Invalid(format!("reading: {error}"))
    }
}

/// Scans every pickle in `reader`.
pub fn scan_pickle<R: Read>(reader: R) -> PickleReport {
    let mut cursor = Cursor {
        inner: reader,
        position: 0,
    };
    let mut report = PickleReport::default();
    loop {
        let start = cursor.position;
        let mut machine = Machine::default();
        match machine.run(&mut cursor, &mut report) {
            Ok(Ended::Stop) => report.pickles += 1,
            Ok(Ended::Empty) => break,
            Err(problem) => {
                // After a complete pickle, what follows may be data (legacy
                // torch files put raw storages there): only a first pickle
                // that breaks is malformed. Globals met on the way were
                // judged either way.
                if let Problem::Limit(reason) = problem {
                    // Python would read on: so must the verdict.
                    report.findings.push(Finding::new(
                        Verdict::Invalid,
                        Some(cursor.position.max(start)),
                        format!("{reason}: the rest of the stream was not scanned"),
                    ));
                } else if report.pickles == 0 && machine.joblib_arrays {
                    // joblib writes each array's bytes into the stream right
                    // after its wrapper: the pickle cannot be read past it
                    // without NumPy's dtype logic.
                    report.findings.push(Finding::new(
                        Verdict::Suspicious,
                        Some(cursor.position.max(start)),
                        "joblib array data follows a NumpyArrayWrapper: the rest of the stream was not scanned",
                    ));
                } else if report.pickles == 0 {
                    let reason = match problem {
                        Problem::Truncated => "the pickle ends before STOP".to_string(),
                        Problem::Invalid(reason) | Problem::Limit(reason) => reason,
                    };
                    report.findings.push(Finding::new(
                        Verdict::Invalid,
                        Some(cursor.position.max(start)),
                        reason,
                    ));
                }
                break;
            }
        }
    }
    report
}

/// How one pickle ended.
enum Ended {
    /// At `STOP`.
    Stop,
    /// The stream had no more bytes before the pickle began.
    Empty,
}

#[derive(Default)]
struct Machine {
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
    opcodes: u64,
    /// A joblib array wrapper was imported (its array bytes follow it).
    joblib_arrays: bool,
}

impl Machine {
    fn push(&mut self, value: Value) -> Result<(), Problem> {
        if self.stack.len() >= MAX_STACK {
            return Err(Problem::Limit(format!(
                "more than {MAX_STACK} values on the stack"
            )));
        }
        self.stack.push(value);
        Ok(())
    }

    fn pop(&mut self) -> Value {
        // An empty stack is what Python's unpickler would fail on; the
        // scanner judges globals, so it reads on.
        self.stack.pop().unwrap_or(Value::Other)
    }

    /// Pops back to (and including) the topmost mark.
    fn pop_mark(&mut self) {
        while let Some(value) = self.stack.pop() {
            if value == Value::Mark {
                break;
            }
        }
    }

    fn memo_put(&mut self, index: u64) -> Result<(), Problem> {
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(Problem::Limit(format!("more than {MAX_MEMO} memo entries")));
        }
        let top = self.stack.last().cloned().unwrap_or(Value::Other);
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, index: u64) -> Result<(), Problem> {
        let value = self.memo.get(&index).cloned().unwrap_or(Value::Other);
        self.push(value)
    }

    fn global(
        &mut self,
        report: &mut PickleReport,
        offset: u64,
        opcode: &str,
        module: Option<String>,
        name: Option<String>,
    ) -> Result<(), Problem> {
        let finding = match (module, name) {
            (Some(module), Some(name)) => {
                if module == "joblib.numpy_pickle" {
                    self.joblib_arrays = true;
                }
                let global = format!("{module}.{name}");
                match judge(&module, &name) {
                    Judgement::Safe => {
                        if !report.safe_globals.contains(&global) {
                            report.safe_globals.push(global);
                        }
                        None
                    }
                    Judgement::Dangerous(reason) => Some(Finding {
                        verdict: Verdict::Dangerous,
                        offset: Some(offset),
                        opcode: Some(opcode.to_string()),
                        global: Some(global),
                        reason: reason.to_string(),
                    }),
                    Judgement::Unknown => Some(Finding {
                        verdict: Verdict::Suspicious,
                        offset: Some(offset),
                        opcode: Some(opcode.to_string()),
                        global: Some(global),
                        reason: "not a known-safe global".to_string(),
                    }),
                }
            }
            _ => Some(Finding {
                verdict: Verdict::Dangerous,
                offset: Some(offset),
                opcode: Some(opcode.to_string()),
                global: None,
                reason: "a global whose module or name is computed, not a literal string"
                    .to_string(),
            }),
        };
        if let Some(finding) = finding {
            report.findings.push(finding);
        }
        self.push(Value::Global)
    }

    fn run<R: Read>(
        &mut self,
        cursor: &mut Cursor<R>,
        report: &mut PickleReport,
    ) -> Result<Ended, Problem> {
        loop {
            let offset = cursor.position;
            let Some(opcode) = cursor.byte().map_err(|e| truncated(&e))? else {
                return if self.opcodes == 0 {
                    Ok(Ended::Empty)
                } else {
                    Err(Problem::Truncated)
                };
            };
            self.opcodes += 1;
            self.step(opcode, offset, cursor, report)?;
            if opcode == b'.' {
                return Ok(Ended::Stop);
            }
        }
    }

    fn step<R: Read>(
        &mut self,
        opcode: u8,
        offset: u64,
        cursor: &mut Cursor<R>,
        report: &mut PickleReport,
    ) -> Result<(), Problem> {
        match opcode {
            // STOP
            b'.' => {}
            // MARK
            b'(' => self.push(Value::Mark)?,
            // POP
            b'0' => {
                self.pop();
            }
            // POP_MARK
            b'1' => self.pop_mark(),
            // DUP
            b'2' => {
                let top = self.stack.last().cloned().unwrap_or(Value::Other);
                self.push(top)?;
            }
            // FLOAT, INT, LONG, PERSID: text arguments
            b'F' | b'I' | b'L' | b'P' => {
                cursor.line()?;
                self.push(Value::Other)?;
            }
            // STRING (protocol 0, quoted) and UNICODE (raw-unicode-escape)
            b'S' => {
                let line = cursor.line()?;
                self.push(quoted_string(&line))?;
            }
            b'V' => {
                let line = cursor.line()?;
                self.push(text(&line))?;
            }
            // BININT, BININT1, BININT2, BINFLOAT
            b'J' => self.skip_push::<4, R>(cursor)?,
            b'K' => self.skip_push::<1, R>(cursor)?,
            b'M' => self.skip_push::<2, R>(cursor)?,
            b'G' => self.skip_push::<8, R>(cursor)?,
            // NONE, NEWTRUE, NEWFALSE, EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE,
            // EMPTY_SET
            b'N' | 0x88 | 0x89 | b'}' | b']' | b')' | 0x8f => self.push(Value::Other)?,
            // BINPERSID: the persistent id is consumed (torch storages)
            b'Q' => {
                self.pop();
                self.push(Value::Other)?;
            }
            // REDUCE, BUILD, NEWOBJ: pop two, push the result (the callable
            // was judged when it was imported)
            b'R' | b'b' | 0x81 => {
                self.pop();
                self.pop();
                self.push(Value::Other)?;
            }
            // NEWOBJ_EX: class, args, kwargs
            0x92 => {
                self.pop();
                self.pop();
                self.pop();
                self.push(Value::Other)?;
            }
            // BINSTRING (signed 4-byte length), BINUNICODE, BINBYTES
            b'T' | b'X' | b'B' => {
                let len = u32::from_le_bytes(cursor.exact::<4>()?);
                if opcode == b'T' && len > i32::MAX as u32 {
                    return Err(Problem::Invalid("negative BINSTRING length".into()));
                }
                self.payload(cursor, u64::from(len))?;
            }
            // SHORT_BINSTRING, SHORT_BINBYTES, SHORT_BINUNICODE
            b'U' | b'C' | 0x8c => {
                let [len] = cursor.exact::<1>()?;
                self.payload(cursor, u64::from(len))?;
            }
            // BINUNICODE8, BINBYTES8, BYTEARRAY8
            0x8d | 0x8e | 0x96 => {
                let len = u64::from_le_bytes(cursor.exact::<8>()?);
                self.payload(cursor, len)?;
            }
            // LONG1, LONG4
            0x8a => {
                let [len] = cursor.exact::<1>()?;
                cursor.payload(u64::from(len))?;
                self.push(Value::Other)?;
            }
            0x8b => {
                let len = u32::from_le_bytes(cursor.exact::<4>()?);
                if len > i32::MAX as u32 {
                    return Err(Problem::Invalid("negative LONG4 length".into()));
                }
                cursor.payload(u64::from(len))?;
                self.push(Value::Other)?;
            }
            // APPEND, SETITEM pop what they add into the container
            b'a' => {
                self.pop();
            }
            b's' => {
                self.pop();
                self.pop();
            }
            // APPENDS, SETITEMS, ADDITEMS: to the mark
            b'e' | b'u' | 0x90 => self.pop_mark(),
            // DICT, LIST, TUPLE, FROZENSET: a new object from the mark
            b'd' | b'l' | b't' | 0x91 => {
                self.pop_mark();
                self.push(Value::Other)?;
            }
            // TUPLE1, TUPLE2, TUPLE3
            0x85..=0x87 => {
                for _ in 0..(opcode - 0x84) {
                    self.pop();
                }
                self.push(Value::Other)?;
            }
            // OBJ: class and arguments from the mark
            b'o' => {
                self.pop_mark();
                self.push(Value::Other)?;
            }
            // GLOBAL and INST: module and name on two text lines
            b'c' | b'i' => {
                let module = line_name(&cursor.line()?);
                let name = line_name(&cursor.line()?);
                let (label, instantiate) = if opcode == b'c' {
                    ("GLOBAL", false)
                } else {
                    ("INST", true)
                };
                if instantiate {
                    self.pop_mark();
                }
                self.global(report, offset, label, module, name)?;
            }
            // STACK_GLOBAL: module and name from the stack
            0x93 => {
                let name = self.pop();
                let module = self.pop();
                let as_text = |value: Value| match value {
                    Value::Str(text) => Some(text),
                    _ => None,
                };
                self.global(
                    report,
                    offset,
                    "STACK_GLOBAL",
                    as_text(module),
                    as_text(name),
                )?;
            }
            // EXT1, EXT2, EXT4: a global from copyreg's extension registry
            0x82..=0x84 => {
                let code = match opcode {
                    0x82 => u32::from(cursor.exact::<1>()?[0]),
                    0x83 => u32::from(u16::from_le_bytes(cursor.exact::<2>()?)),
                    _ => u32::from_le_bytes(cursor.exact::<4>()?),
                };
                report.findings.push(Finding {
                    verdict: Verdict::Dangerous,
                    offset: Some(offset),
                    opcode: Some(format!("EXT{}", ext_width(opcode))),
                    global: None,
                    reason: format!(
                        "extension code {code}: a global from copyreg's registry, unknowable without running Python"
                    ),
                });
                self.push(Value::Global)?;
            }
            // PUT (text index), BINPUT, LONG_BINPUT, MEMOIZE
            b'p' => {
                let line = cursor.line()?;
                let index = decimal(&line)?;
                self.memo_put(index)?;
            }
            b'q' => {
                let [index] = cursor.exact::<1>()?;
                self.memo_put(u64::from(index))?;
            }
            b'r' => {
                let index = u32::from_le_bytes(cursor.exact::<4>()?);
                self.memo_put(u64::from(index))?;
            }
            0x94 => {
                let index = self.memo.len() as u64;
                self.memo_put(index)?;
            }
            // GET (text index), BINGET, LONG_BINGET
            b'g' => {
                let line = cursor.line()?;
                self.memo_get(decimal(&line)?)?;
            }
            b'h' => {
                let [index] = cursor.exact::<1>()?;
                self.memo_get(u64::from(index))?;
            }
            b'j' => {
                let index = u32::from_le_bytes(cursor.exact::<4>()?);
                self.memo_get(u64::from(index))?;
            }
            // PROTO
            0x80 => {
                let [version] = cursor.exact::<1>()?;
                if version > 5 {
                    return Err(Problem::Invalid(format!(
                        "protocol {version} (known: 0 to 5)"
                    )));
                }
            }
            // FRAME: a length hint only
            0x95 => {
                cursor.exact::<8>()?;
            }
            // NEXT_BUFFER (out-of-band data), READONLY_BUFFER
            0x97 => self.push(Value::Other)?,
            0x98 => {}
            other => {
                return Err(Problem::Invalid(format!(
                    "unknown opcode 0x{other:02x} at byte {offset}"
                )));
            }
        }
        Ok(())
    }

    fn skip_push<const N: usize, R: Read>(
        &mut self,
        cursor: &mut Cursor<R>,
    ) -> Result<(), Problem> {
        cursor.exact::<N>()?;
        self.push(Value::Other)
    }

    /// A length-prefixed string or bytes value; UTF-8 short enough is kept
    /// (bytes too: Python 2's str, which BINSTRING carries, names globals).
    fn payload<R: Read>(&mut self, cursor: &mut Cursor<R>, len: u64) -> Result<(), Problem> {
        let value = match cursor.payload(len)? {
            Some(bytes) => text(&bytes),
            None => Value::Other,
        };
        self.push(value)
    }
}

fn ext_width(opcode: u8) -> u8 {
    match opcode {
        0x82 => 1,
        0x83 => 2,
        _ => 4,
    }
}

fn text(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.len() <= MAX_KEPT_STRING => Value::Str(text.to_string()),
        _ => Value::Other,
    }
}

/// A protocol-0 `STRING` argument: a quoted Python literal. Escapes make it
/// unknown (a module name never needs one).
fn quoted_string(line: &[u8]) -> Value {
    let inner = match line {
        [b'\'', inner @ .., b'\''] | [b'"', inner @ .., b'"'] => inner,
        _ => return Value::Other,
    };
    if inner.contains(&b'\\') {
        return Value::Other;
    }
    text(inner)
}

/// A `GLOBAL`/`INST` line: module or name as text (trailing `\r` kept, as
/// Python would fail on it; non-UTF-8 is unknown).
fn line_name(line: &[u8]) -> Option<String> {
    std::str::from_utf8(line)
        .ok()
        .filter(|text| !text.is_empty() && text.len() <= MAX_KEPT_STRING)
        .map(str::to_string)
}

fn decimal(line: &[u8]) -> Result<u64, Problem> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| Problem::Invalid("a memo index that is not a number".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globals(report: &PickleReport) -> Vec<(Verdict, String)> {
        report
            .findings
            .iter()
            .filter_map(|f| f.global.clone().map(|g| (f.verdict, g)))
            .collect()
    }

    #[test]
    fn protocol_0_global_and_reduce() {
        // cos\nsystem\n(S'echo'\ntR.
        let pickle = b"cos\nsystem\n(S'echo hi'\ntR.";
        let report = scan_pickle(&pickle[..]);
        assert_eq!(report.pickles, 1);
        assert_eq!(
            globals(&report),
            [(Verdict::Dangerous, "os.system".to_string())]
        );
        assert_eq!(report.findings[0].offset, Some(0));
        assert_eq!(report.findings[0].opcode.as_deref(), Some("GLOBAL"));
    }

    #[test]
    fn stack_global_through_the_memo() {
        // PROTO 4, SHORT_BINUNICODE 'builtins', MEMOIZE, SHORT_BINUNICODE
        // 'eval', MEMOIZE, POP, POP, BINGET 0, BINGET 1, STACK_GLOBAL, STOP
        let mut pickle = vec![0x80, 4, 0x8c, 8];
        pickle.extend_from_slice(b"builtins");
        pickle.extend_from_slice(&[0x94, 0x8c, 4]);
        pickle.extend_from_slice(b"eval");
        pickle.extend_from_slice(&[0x94, b'0', b'0', b'h', 0, b'h', 1, 0x93, b'.']);
        let report = scan_pickle(&pickle[..]);
        assert_eq!(
            globals(&report),
            [(Verdict::Dangerous, "builtins.eval".to_string())]
        );
    }

    #[test]
    fn a_computed_stack_global_is_dangerous() {
        // The module name comes from a REDUCE, not a literal.
        let pickle = [0x80, 4, b'N', b'N', 0x93, b'.'];
        let report = scan_pickle(&pickle[..]);
        assert_eq!(report.verdict(), Verdict::Dangerous);
        assert!(report.findings[0].reason.contains("computed"));
    }

    #[test]
    fn safe_globals_pass_and_unknown_ones_are_suspicious() {
        let pickle = b"ccollections\nOrderedDict\n)Rcmylib\nThing\n)R0.";
        let report = scan_pickle(&pickle[..]);
        assert_eq!(report.safe_globals, ["collections.OrderedDict"]);
        assert_eq!(
            globals(&report),
            [(Verdict::Suspicious, "mylib.Thing".to_string())]
        );
    }

    #[test]
    fn concatenated_pickles_are_all_read_and_trailing_data_is_not_an_error() {
        let mut stream = b"K\x01.".to_vec();
        stream.extend_from_slice(b"cposix\nsystem\n.");
        stream.extend_from_slice(&[0xff, 0x00, 0x13]); // raw data after
        let report = scan_pickle(&stream[..]);
        assert_eq!(report.pickles, 2);
        assert_eq!(
            globals(&report),
            [(Verdict::Dangerous, "posix.system".to_string())]
        );
        assert!(
            report
                .findings
                .iter()
                .all(|f| f.verdict != Verdict::Invalid)
        );
    }

    #[test]
    fn ext_opcodes_and_malformed_streams() {
        let report = scan_pickle(&[0x80, 2, 0x82, 7, b'.'][..]);
        assert_eq!(report.verdict(), Verdict::Dangerous);
        assert_eq!(report.findings[0].opcode.as_deref(), Some("EXT1"));
        for bad in [
            &b"\xff"[..],
            b"cos\nsys",
            b"X\xff\xff\xff\x7fabc",
            b"\x80\x09.",
        ] {
            let report = scan_pickle(bad);
            assert_eq!(report.verdict(), Verdict::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn joblib_array_data_ends_the_scan_as_suspicious_not_invalid() {
        // A wrapper, BUILD, then raw array bytes (not opcodes).
        let mut stream = b"\x80\x04cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}b".to_vec();
        stream.extend_from_slice(&[0xff; 16]);
        let report = scan_pickle(&stream[..]);
        assert_eq!(report.verdict(), Verdict::Suspicious, "{report:?}");
        assert!(report.findings[0].reason.contains("joblib"));
    }

    #[test]
    fn a_limit_in_a_later_pickle_is_a_finding_not_the_end_of_the_scan() {
        let mut stream = b"\x80\x02K\x01.S'".to_vec();
        stream.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
        stream.extend_from_slice(b"'\n0cos\nsystem\n(S'id'\ntR.");
        let report = scan_pickle(&stream[..]);
        assert_eq!(report.verdict(), Verdict::Invalid, "{report:?}");
        assert!(report.findings[0].reason.contains("not scanned"));
    }

    #[test]
    fn huge_declared_lengths_are_not_allocated() {
        // BINBYTES8 claiming 2^62 bytes in a 20-byte stream.
        let mut pickle = vec![0x80, 4, 0x8e];
        pickle.extend_from_slice(&(1u64 << 62).to_le_bytes());
        pickle.extend_from_slice(b"abc.");
        let report = scan_pickle(&pickle[..]);
        assert_eq!(report.verdict(), Verdict::Invalid);
    }
}
