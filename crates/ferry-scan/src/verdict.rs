//! What a scan concludes about a file.

use serde::Serialize;

/// A file's (or a finding's) verdict, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Only what is known to be safe.
    Safe,
    /// Something neither known safe nor known dangerous (an error under
    /// `--strict`).
    Suspicious,
    /// Malformed: the file is not what its format says.
    Invalid,
    /// Code execution or I/O on load: the worst, whatever else is wrong
    /// with the file (a malformed pickle still runs what comes before the
    /// break).
    Dangerous,
}

impl Verdict {
    /// The verdict's name, as `--json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::Suspicious => "suspicious",
            Verdict::Dangerous => "dangerous",
            Verdict::Invalid => "invalid",
        }
    }
}

/// One thing found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How severe.
    pub verdict: Verdict,
    /// Byte offset in the file (or the zip member) where it was found.
    pub offset: Option<u64>,
    /// The pickle opcode, for pickle findings.
    pub opcode: Option<String>,
    /// The global (`module.name`), for pickle findings.
    pub global: Option<String>,
    /// Why, in words.
    pub reason: String,
}

impl Finding {
    /// A finding without pickle details.
    pub fn new(verdict: Verdict, offset: Option<u64>, reason: impl Into<String>) -> Finding {
        Finding {
            verdict,
            offset,
            opcode: None,
            global: None,
            reason: reason.into(),
        }
    }
}
