//! modctl's Modelfile: the file users already write to say what a model
//! directory contains.
//!
//! ```text
//! # Qwen2 0.5B
//! NAME qwen2-0.5b
//! FAMILY qwen2
//! PRECISION bfloat16
//! CONFIG config.json
//! CONFIG tokenizer*.json
//! MODEL *.safetensors
//! DOC "README.md"   # quoted values and trailing comments are allowed
//! ```
//!
//! One directive per line, case-insensitive. NAME, ARCH, FAMILY, FORMAT,
//! PARAMSIZE, PRECISION and QUANTIZATION take one value and may appear once;
//! CONFIG, MODEL, CODE, DATASET and DOC take one glob each and may repeat.
//!
//! Globs are matched against paths relative to the model root, as modctl
//! does with Go's `filepath.Glob`: case-sensitive, `*` and `?` never cross a
//! `/` (so `*.json` only sees top-level files), and a glob that names a
//! directory takes every file below it. On top of modctl, ferry understands
//! `**` (any number of directories: `**/*.json`) and `{a,b}` alternation.

use std::collections::HashMap;

use globset::{GlobBuilder, GlobMatcher};
use thiserror::Error;

use crate::media::Category;

/// One glob of a multi-valued directive, with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobEntry {
    /// The glob as written, quotes removed.
    pub pattern: String,
    /// The 1-based line number in the Modelfile (0 when built in code).
    pub line: usize,
}

impl GlobEntry {
    /// A glob entry that did not come from a file.
    pub fn new(pattern: impl Into<String>) -> Self {
        GlobEntry {
            pattern: pattern.into(),
            line: 0,
        }
    }
}

/// What describes a model, whoever says it: flags, a Modelfile's single
/// directives, or detection from the files. One record for all three, so
/// precedence is one field-wise [`ModelFacts::or`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelFacts {
    /// NAME: the model name.
    pub name: Option<String>,
    /// ARCH: the architecture, e.g. `transformer` or `LlamaForCausalLM`.
    pub arch: Option<String>,
    /// FAMILY: the model family, e.g. `llama3`.
    pub family: Option<String>,
    /// FORMAT: the weight format, e.g. `safetensors`.
    pub format: Option<String>,
    /// PARAMSIZE: the parameter count, e.g. `6.7B`.
    pub param_size: Option<String>,
    /// PRECISION: e.g. `bfloat16`.
    pub precision: Option<String>,
    /// QUANTIZATION: e.g. `gptq`.
    pub quantization: Option<String>,
}

impl ModelFacts {
    /// Each field from `self`, else from `fallback`.
    pub fn or(self, fallback: ModelFacts) -> ModelFacts {
        ModelFacts {
            name: self.name.or(fallback.name),
            arch: self.arch.or(fallback.arch),
            family: self.family.or(fallback.family),
            format: self.format.or(fallback.format),
            param_size: self.param_size.or(fallback.param_size),
            precision: self.precision.or(fallback.precision),
            quantization: self.quantization.or(fallback.quantization),
        }
    }

    /// Empty values (`--name ""`) as absent: an empty value given with
    /// higher precedence clears the field.
    pub fn without_empty(self) -> ModelFacts {
        let keep = |v: Option<String>| v.filter(|v| !v.is_empty());
        ModelFacts {
            name: keep(self.name),
            arch: keep(self.arch),
            family: keep(self.family),
            format: keep(self.format),
            param_size: keep(self.param_size),
            precision: keep(self.precision),
            quantization: keep(self.quantization),
        }
    }

    fn field(&self, directive: Directive) -> Option<&String> {
        match directive {
            Directive::Name => self.name.as_ref(),
            Directive::Arch => self.arch.as_ref(),
            Directive::Family => self.family.as_ref(),
            Directive::Format => self.format.as_ref(),
            Directive::ParamSize => self.param_size.as_ref(),
            Directive::Precision => self.precision.as_ref(),
            Directive::Quantization => self.quantization.as_ref(),
            _ => None,
        }
    }

    fn field_mut(&mut self, directive: Directive) -> &mut Option<String> {
        match directive {
            Directive::Name => &mut self.name,
            Directive::Arch => &mut self.arch,
            Directive::Family => &mut self.family,
            Directive::Format => &mut self.format,
            Directive::ParamSize => &mut self.param_size,
            Directive::Precision => &mut self.precision,
            // Only called with single-valued directives.
            _ => &mut self.quantization,
        }
    }
}

/// A parsed Modelfile.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Modelfile {
    /// The single-valued directives: NAME, ARCH, FAMILY, FORMAT, PARAMSIZE,
    /// PRECISION, QUANTIZATION.
    pub facts: ModelFacts,
    /// CONFIG globs: weight configuration (config.json, tokenizers).
    pub config: Vec<GlobEntry>,
    /// MODEL globs: weights.
    pub model: Vec<GlobEntry>,
    /// CODE globs.
    pub code: Vec<GlobEntry>,
    /// DATASET globs.
    pub dataset: Vec<GlobEntry>,
    /// DOC globs.
    pub doc: Vec<GlobEntry>,
}

/// Why a Modelfile could not be parsed or does not fit its directory.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ModelfileError {
    /// The first word of a line is not a known directive.
    #[error("modelfile line {line}: unknown directive {directive:?}")]
    UnknownDirective {
        /// 1-based line number.
        line: usize,
        /// The directive as written.
        directive: String,
    },
    /// A directive with nothing after it.
    #[error("modelfile line {line}: {directive} needs a value")]
    MissingValue {
        /// 1-based line number.
        line: usize,
        /// The directive as written.
        directive: &'static str,
    },
    /// A single-valued directive given a second time.
    #[error("modelfile line {line}: {directive} is already set on line {first}")]
    Duplicate {
        /// 1-based line number.
        line: usize,
        /// The directive as written.
        directive: &'static str,
        /// The line that set it first.
        first: usize,
    },
    /// A value opened with a quote that never closes.
    #[error("modelfile line {line}: unterminated quote")]
    UnterminatedQuote {
        /// 1-based line number.
        line: usize,
    },
    /// Text after a closing quote that is not a comment.
    #[error("modelfile line {line}: unexpected {text:?} after the quoted value")]
    TrailingText {
        /// 1-based line number.
        line: usize,
        /// The unexpected text.
        text: String,
    },
    /// A glob that globset cannot compile.
    #[error("modelfile line {line}: invalid glob {pattern:?}: {reason}")]
    InvalidGlob {
        /// 1-based line number.
        line: usize,
        /// The glob as written.
        pattern: String,
        /// Why globset refused it.
        reason: String,
    },
    /// A glob that matches none of the directory's files.
    #[error("modelfile line {line}: glob {pattern:?} matches no file")]
    UnmatchedGlob {
        /// 1-based line number.
        line: usize,
        /// The glob as written.
        pattern: String,
    },
}

impl ModelfileError {
    /// The 1-based line the error is about.
    pub fn line(&self) -> usize {
        match self {
            ModelfileError::UnknownDirective { line, .. }
            | ModelfileError::MissingValue { line, .. }
            | ModelfileError::Duplicate { line, .. }
            | ModelfileError::UnterminatedQuote { line }
            | ModelfileError::TrailingText { line, .. }
            | ModelfileError::InvalidGlob { line, .. }
            | ModelfileError::UnmatchedGlob { line, .. } => *line,
        }
    }

    /// The error for a glob that [`Modelfile::unmatched_globs`] returned.
    pub fn unmatched(entry: &GlobEntry) -> Self {
        ModelfileError::UnmatchedGlob {
            line: entry.line,
            pattern: entry.pattern.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Directive {
    Name,
    Arch,
    Family,
    Format,
    ParamSize,
    Precision,
    Quantization,
    Config,
    Model,
    Code,
    Dataset,
    Doc,
}

impl Directive {
    const SINGLE: [Directive; 7] = [
        Directive::Name,
        Directive::Arch,
        Directive::Family,
        Directive::Format,
        Directive::ParamSize,
        Directive::Precision,
        Directive::Quantization,
    ];

    /// Multi-valued directives in the order [`Modelfile::category_for`]
    /// tries them.
    const GLOBS: [Directive; 5] = [
        Directive::Config,
        Directive::Model,
        Directive::Code,
        Directive::Doc,
        Directive::Dataset,
    ];

    fn keyword(self) -> &'static str {
        match self {
            Directive::Name => "NAME",
            Directive::Arch => "ARCH",
            Directive::Family => "FAMILY",
            Directive::Format => "FORMAT",
            Directive::ParamSize => "PARAMSIZE",
            Directive::Precision => "PRECISION",
            Directive::Quantization => "QUANTIZATION",
            Directive::Config => "CONFIG",
            Directive::Model => "MODEL",
            Directive::Code => "CODE",
            Directive::Dataset => "DATASET",
            Directive::Doc => "DOC",
        }
    }

    fn from_keyword(word: &str) -> Option<Directive> {
        Self::SINGLE
            .into_iter()
            .chain(Self::GLOBS)
            .find(|d| d.keyword().eq_ignore_ascii_case(word))
    }

    fn category(self) -> Option<Category> {
        match self {
            Directive::Config => Some(Category::WeightConfig),
            Directive::Model => Some(Category::Weight),
            Directive::Code => Some(Category::Code),
            Directive::Dataset => Some(Category::Dataset),
            Directive::Doc => Some(Category::Doc),
            _ => None,
        }
    }
}

impl Modelfile {
    /// Parses Modelfile text. Errors name the 1-based line.
    pub fn parse(text: &str) -> Result<Modelfile, ModelfileError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut mf = Modelfile::default();
        let mut first_seen: HashMap<Directive, usize> = HashMap::new();

        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (word, rest) = match trimmed.find(char::is_whitespace) {
                Some(i) => (&trimmed[..i], trimmed[i..].trim_start()),
                None => (trimmed, ""),
            };
            let directive =
                Directive::from_keyword(word).ok_or_else(|| ModelfileError::UnknownDirective {
                    line,
                    directive: word.to_string(),
                })?;
            let value = parse_value(rest, line)?.ok_or(ModelfileError::MissingValue {
                line,
                directive: directive.keyword(),
            })?;

            if directive.category().is_some() {
                compile_glob(&value).map_err(|reason| ModelfileError::InvalidGlob {
                    line,
                    pattern: value.clone(),
                    reason,
                })?;
                mf.globs_mut(directive).push(GlobEntry {
                    pattern: value,
                    line,
                });
            } else {
                if let Some(&first) = first_seen.get(&directive) {
                    return Err(ModelfileError::Duplicate {
                        line,
                        directive: directive.keyword(),
                        first,
                    });
                }
                first_seen.insert(directive, line);
                *mf.single_mut(directive) = Some(value);
            }
        }
        Ok(mf)
    }

    /// Every glob with its category, in precedence order: CONFIG, MODEL,
    /// CODE, DOC, DATASET, and within a directive in file order.
    pub fn globs(&self) -> impl Iterator<Item = (Category, &GlobEntry)> {
        Directive::GLOBS.into_iter().flat_map(move |d| {
            let category = d.category().unwrap_or(Category::Doc);
            self.globs_of(d).iter().map(move |g| (category, g))
        })
    }

    /// The category the Modelfile declares for a path relative to the model
    /// root, or `None` when no glob matches it.
    ///
    /// modctl runs its builders in the order CONFIG, MODEL, CODE, DOC (it
    /// never builds DATASET) and packs a file matched by two directives
    /// twice. ferry packs each file once, under the first directive that
    /// matches in the order CONFIG, MODEL, CODE, DOC, DATASET, so a file
    /// lands in the layer modctl would have built first.
    pub fn category_for(&self, rel_path: &str) -> Option<Category> {
        self.matcher().category_for(rel_path)
    }

    /// The globs that match none of `paths` (relative to the model root),
    /// in precedence order. Report each with
    /// [`ModelfileError::unmatched`].
    pub fn unmatched_globs<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> Vec<&GlobEntry> {
        self.matcher().unmatched(paths)
    }

    /// Compiles every glob once, for classifying many paths.
    pub fn matcher(&self) -> ModelfileMatcher<'_> {
        let entries = self
            .globs()
            .map(|(category, entry)| {
                // parse() rejects invalid globs; one built in code matches
                // nothing, so it surfaces through unmatched_globs.
                let matcher = compile_glob(&entry.pattern).ok();
                (category, entry, matcher)
            })
            .collect();
        ModelfileMatcher { entries }
    }

    /// Writes the Modelfile back out: a `# Generated by ferry init` header,
    /// the single-valued directives, then the globs in precedence order, in
    /// the syntax modctl reads too: globs are never quoted (see
    /// [`bare_glob`]); a single value that a bare word cannot carry (a ` #`,
    /// a leading quote) is double-quoted, which only ferry reads. Line
    /// breaks in a value cannot be represented and become spaces, and
    /// empty values are left out.
    pub fn render(&self) -> String {
        let mut out = String::from("# Generated by ferry init\n");
        let singles: Vec<_> = Directive::SINGLE
            .into_iter()
            .filter_map(|d| self.single(d).map(|v| (d, v.as_str())))
            .collect();
        render_section(&mut out, &singles, None);
        for directive in Directive::GLOBS {
            let globs: Vec<_> = self
                .globs_of(directive)
                .iter()
                .map(|g| (directive, g.pattern.as_str()))
                .collect();
            // modctl reads DATASET but builds only CONFIG, MODEL, CODE and
            // DOC: say so where a reader of the file will see it.
            let note = matches!(directive, Directive::Dataset)
                .then_some("# modctl build leaves DATASET files out; ferry pack packs them");
            render_section(&mut out, &globs, note);
        }
        out
    }

    fn single(&self, directive: Directive) -> Option<&String> {
        self.facts.field(directive)
    }

    fn single_mut(&mut self, directive: Directive) -> &mut Option<String> {
        self.facts.field_mut(directive)
    }

    fn globs_of(&self, directive: Directive) -> &[GlobEntry] {
        match directive {
            Directive::Config => &self.config,
            Directive::Model => &self.model,
            Directive::Code => &self.code,
            Directive::Dataset => &self.dataset,
            Directive::Doc => &self.doc,
            _ => &[],
        }
    }

    fn globs_mut(&mut self, directive: Directive) -> &mut Vec<GlobEntry> {
        match directive {
            Directive::Config => &mut self.config,
            Directive::Model => &mut self.model,
            Directive::Code => &mut self.code,
            Directive::Dataset => &mut self.dataset,
            // Only called with multi-valued directives.
            _ => &mut self.doc,
        }
    }
}

/// The globs of a [`Modelfile`], compiled.
#[derive(Debug, Clone)]
pub struct ModelfileMatcher<'a> {
    entries: Vec<(Category, &'a GlobEntry, Option<GlobMatcher>)>,
}

impl<'a> ModelfileMatcher<'a> {
    /// See [`Modelfile::category_for`].
    pub fn category_for(&self, rel_path: &str) -> Option<Category> {
        self.entries
            .iter()
            .find(|(_, _, m)| glob_matches(m.as_ref(), rel_path))
            .map(|(category, _, _)| *category)
    }

    /// See [`Modelfile::unmatched_globs`].
    pub fn unmatched<'p>(&self, paths: impl IntoIterator<Item = &'p str>) -> Vec<&'a GlobEntry> {
        let mut hit = vec![false; self.entries.len()];
        for path in paths {
            for (i, (_, _, m)) in self.entries.iter().enumerate() {
                if !hit[i] && glob_matches(m.as_ref(), path) {
                    hit[i] = true;
                }
            }
        }
        self.entries
            .iter()
            .zip(hit)
            .filter(|(_, hit)| !hit)
            .map(|((_, entry, _), _)| *entry)
            .collect()
    }
}

/// True when the glob matches the path or one of its parent directories,
/// since modctl packs a matched directory with everything in it.
fn glob_matches(matcher: Option<&GlobMatcher>, rel_path: &str) -> bool {
    let Some(matcher) = matcher else {
        return false;
    };
    let mut path = rel_path.trim_start_matches("./").trim_matches('/');
    loop {
        if matcher.is_match(path) {
            return true;
        }
        match path.rfind('/') {
            Some(i) => path = &path[..i],
            None => return false,
        }
    }
}

/// Compiles a glob the way modctl's `filepath.Glob` reads it relative to the
/// model root: a leading `./` or `/` and a trailing `/` mean nothing.
fn compile_glob(pattern: &str) -> Result<GlobMatcher, String> {
    let mut normalized = pattern;
    while let Some(rest) = normalized.strip_prefix("./") {
        normalized = rest;
    }
    let normalized = normalized.trim_start_matches('/');
    let normalized = normalized.trim_end_matches('/');
    GlobBuilder::new(normalized)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|err| err.kind().to_string())
}

/// Parses what follows a directive: a quoted or bare value, then an optional
/// comment. `Ok(None)` when there is no value.
fn parse_value(rest: &str, line: usize) -> Result<Option<String>, ModelfileError> {
    let mut chars = rest.char_indices();
    let (value, after) = match chars.next() {
        None => return Ok(None),
        Some((_, '#')) => return Ok(None),
        Some((_, '"')) => {
            let mut value = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    // `\"` and `\\` are escapes; any other backslash stays,
                    // so glob escapes such as `\*` survive quoting.
                    '\\' => match chars.next() {
                        Some((_, next @ ('"' | '\\'))) => value.push(next),
                        Some((_, next)) => {
                            value.push('\\');
                            value.push(next);
                        }
                        None => value.push('\\'),
                    },
                    c => value.push(c),
                }
            }
            let end = end.ok_or(ModelfileError::UnterminatedQuote { line })?;
            (value, &rest[end..])
        }
        Some((_, '\'')) => {
            let close = rest[1..]
                .find('\'')
                .ok_or(ModelfileError::UnterminatedQuote { line })?;
            (rest[1..1 + close].to_string(), &rest[close + 2..])
        }
        Some(_) => {
            // A `#` starts a comment only after whitespace: `a#b` is a name.
            let mut cut = rest.len();
            let mut prev_space = false;
            for (i, c) in rest.char_indices() {
                if c == '#' && prev_space {
                    cut = i;
                    break;
                }
                prev_space = c.is_whitespace();
            }
            // Like modctl, runs of whitespace in a bare value become one space.
            let value = rest[..cut].split_whitespace().collect::<Vec<_>>().join(" ");
            (value, "")
        }
    };
    let after = after.trim_start();
    if !after.is_empty() && !after.starts_with('#') {
        return Err(ModelfileError::TrailingText {
            line,
            text: after.to_string(),
        });
    }
    Ok((!value.is_empty()).then_some(value))
}

/// Writes one block of directives, preceded by a blank line and `note`.
fn render_section(out: &mut String, lines: &[(Directive, &str)], note: Option<&str>) {
    let lines: Vec<_> = lines.iter().filter(|(_, v)| !v.trim().is_empty()).collect();
    if lines.is_empty() {
        return;
    }
    out.push('\n');
    if let Some(note) = note {
        out.push_str(note);
        out.push('\n');
    }
    for (directive, value) in lines {
        out.push_str(directive.keyword());
        out.push(' ');
        match directive.category().and_then(|_| bare_glob(value)) {
            Some(glob) => out.push_str(&glob),
            None if directive.category().is_some() => out.push_str(&quote_exactly(value)),
            None => out.push_str(&quote(value)),
        }
        out.push('\n');
    }
}

/// A glob written so that modctl reads it as ferry does. modctl takes a
/// line's words after the directive joined by single spaces, with no
/// quotes or comments; ferry's parser collapses whitespace the same way
/// but reads quotes and ` #` comments. So a glob is written bare: a space
/// that is not a single one between two words becomes the class `[ ]`
/// (its space sits between `[` and `]`, so both parsers keep it), other
/// whitespace `?`, a `#` after a space the class `[#]`, and a leading
/// quote a class; inside a class a run of spaces is one space (the same
/// set). Rendering a rendered glob again changes nothing. A glob that
/// cannot be written so (whitespace other than spaces, or `#` after a
/// space, inside a class) is `None`: it is quoted, which only ferry reads.
fn bare_glob(glob: &str) -> Option<String> {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::with_capacity(glob.len());
    let mut in_class = false;
    let mut class_start = 0;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        let space_before = i > 0 && chars[i - 1].is_whitespace();
        if in_class {
            let first = i == class_start
                || (i == class_start + 1 && matches!(chars[class_start], '!' | '^'));
            match c {
                ']' if !escaped && !first => in_class = false,
                ' ' if space_before => {
                    escaped = false;
                    continue;
                }
                '#' if space_before => return None,
                c if c != ' ' && (c.is_whitespace() || c.is_control()) => return None,
                _ => {}
            }
            escaped = c == '\\' && !escaped;
            out.push(c);
            continue;
        }
        let word_after = chars.get(i + 1).is_some_and(|n| !n.is_whitespace());
        match c {
            ' ' if i > 0 && !space_before && word_after => out.push(' '),
            ' ' => out.push_str("[ ]"),
            c if c.is_whitespace() || c.is_control() => out.push('?'),
            // Only after whitespace does `#` start a comment for ferry.
            '#' if space_before => out.push_str("[#]"),
            '"' | '\'' if i == 0 => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            '[' if !escaped => {
                in_class = true;
                class_start = i + 1;
                out.push(c);
            }
            c => out.push(c),
        }
        escaped = c == '\\' && !escaped;
    }
    Some(out)
}

/// A glob matching exactly the file at `rel_path`, in the syntax both
/// modctl (Go's `filepath.Match`: a backslash escapes) and ferry read.
/// `globset::escape` writes `[]]` for `]`, which Go rejects.
pub fn exact_glob(rel_path: &str) -> String {
    let mut out = String::with_capacity(rel_path.len());
    for c in rel_path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Double-quotes a value as it is (line breaks become spaces).
fn quote_exactly(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Quotes a value when a bare one would not read back the same. Bare is
/// what modctl reads too (it keeps quotes as part of the value), so only a
/// value starting with a quote or holding a ` #` is quoted; runs of
/// whitespace become one space, as both parsers read a bare value.
fn quote(value: &str) -> String {
    let value: String = value
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
    let comment = value.contains(" #") || value.starts_with('#');
    let bare_ok = !value.is_empty()
        && !value.starts_with(['"', '\''])
        && !comment
        && !value.contains(|c: char| c.is_control());
    if bare_ok {
        value
    } else {
        quote_exactly(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pattern: &str, line: usize) -> GlobEntry {
        GlobEntry {
            pattern: pattern.to_string(),
            line,
        }
    }

    fn patterns(globs: &[GlobEntry]) -> Vec<&str> {
        globs.iter().map(|g| g.pattern.as_str()).collect()
    }

    fn without_lines(mut mf: Modelfile) -> Modelfile {
        for globs in [
            &mut mf.config,
            &mut mf.model,
            &mut mf.code,
            &mut mf.dataset,
            &mut mf.doc,
        ] {
            for g in globs.iter_mut() {
                g.line = 0;
            }
        }
        mf
    }

    #[test]
    fn parses_every_directive() {
        let text = "\
# a comment
NAME llama3-8b
ARCH transformer
FAMILY llama3
FORMAT safetensors
PARAMSIZE 8B
PRECISION bfloat16
QUANTIZATION awq

CONFIG config.json
CONFIG tokenizer*.json
MODEL *.safetensors
CODE *.py
DATASET data/**
DOC README.md
DOC LICENSE
";
        let mf = Modelfile::parse(text).unwrap();
        assert_eq!(mf.facts.name.as_deref(), Some("llama3-8b"));
        assert_eq!(mf.facts.arch.as_deref(), Some("transformer"));
        assert_eq!(mf.facts.family.as_deref(), Some("llama3"));
        assert_eq!(mf.facts.format.as_deref(), Some("safetensors"));
        assert_eq!(mf.facts.param_size.as_deref(), Some("8B"));
        assert_eq!(mf.facts.precision.as_deref(), Some("bfloat16"));
        assert_eq!(mf.facts.quantization.as_deref(), Some("awq"));
        assert_eq!(
            mf.config,
            vec![entry("config.json", 10), entry("tokenizer*.json", 11)]
        );
        assert_eq!(mf.model, vec![entry("*.safetensors", 12)]);
        assert_eq!(mf.code, vec![entry("*.py", 13)]);
        assert_eq!(mf.dataset, vec![entry("data/**", 14)]);
        assert_eq!(mf.doc, vec![entry("README.md", 15), entry("LICENSE", 16)]);
    }

    #[test]
    fn directives_are_case_insensitive_and_whitespace_is_trimmed() {
        let mf = Modelfile::parse("  name   foo  \n\tModel\t*.bin\r\nparamsize 7b\n").unwrap();
        assert_eq!(mf.facts.name.as_deref(), Some("foo"));
        assert_eq!(mf.model, vec![entry("*.bin", 2)]);
        assert_eq!(mf.facts.param_size.as_deref(), Some("7b"));
    }

    #[test]
    fn empty_text_is_an_empty_modelfile() {
        assert_eq!(Modelfile::parse("").unwrap(), Modelfile::default());
        assert_eq!(
            Modelfile::parse("\u{feff}# only\n\n   # comments\n").unwrap(),
            Modelfile::default()
        );
    }

    #[test]
    fn comments_full_line_and_trailing() {
        let mf = Modelfile::parse(
            "# header\nNAME foo # the name\nFAMILY a#b\nDOC \"x # y\" # real comment\nCODE 'it''s' \n",
        );
        // `'it''s'` closes after `it` and leaves `'s'`, which is not a comment.
        assert_eq!(
            mf.unwrap_err(),
            ModelfileError::TrailingText {
                line: 5,
                text: "'s'".to_string()
            }
        );
        let mf = Modelfile::parse(
            "# header\nNAME foo # the name\nFAMILY a#b\nDOC \"x # y\" # real comment\n",
        )
        .unwrap();
        assert_eq!(mf.facts.name.as_deref(), Some("foo"));
        assert_eq!(mf.facts.family.as_deref(), Some("a#b"));
        assert_eq!(patterns(&mf.doc), ["x # y"]);
    }

    #[test]
    fn quoting() {
        let mf = Modelfile::parse(
            r#"NAME "my model"
ARCH 'single quoted # not a comment'
FAMILY "say \"hi\" \\ bye"
DOC "docs/a\*b.md"
CODE "path with  two spaces/x.py"
MODEL bare   words   collapse
"#,
        )
        .unwrap();
        assert_eq!(mf.facts.name.as_deref(), Some("my model"));
        assert_eq!(
            mf.facts.arch.as_deref(),
            Some("single quoted # not a comment")
        );
        assert_eq!(mf.facts.family.as_deref(), Some(r#"say "hi" \ bye"#));
        assert_eq!(patterns(&mf.doc), [r"docs/a\*b.md"]);
        assert_eq!(patterns(&mf.code), ["path with  two spaces/x.py"]);
        assert_eq!(patterns(&mf.model), ["bare words collapse"]);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, ModelfileError, &str)] = &[
            (
                "NAME a\n\nFOO bar\n",
                ModelfileError::UnknownDirective {
                    line: 3,
                    directive: "FOO".into(),
                },
                r#"modelfile line 3: unknown directive "FOO""#,
            ),
            (
                "NAME\n",
                ModelfileError::MissingValue {
                    line: 1,
                    directive: "NAME",
                },
                "modelfile line 1: NAME needs a value",
            ),
            (
                "# c\nmodel   # only a comment\n",
                ModelfileError::MissingValue {
                    line: 2,
                    directive: "MODEL",
                },
                "modelfile line 2: MODEL needs a value",
            ),
            (
                "DOC \"\"\n",
                ModelfileError::MissingValue {
                    line: 1,
                    directive: "DOC",
                },
                "modelfile line 1: DOC needs a value",
            ),
            (
                "NAME a\nFAMILY f\nname b\n",
                ModelfileError::Duplicate {
                    line: 3,
                    directive: "NAME",
                    first: 1,
                },
                "modelfile line 3: NAME is already set on line 1",
            ),
            (
                "\nNAME \"open\n",
                ModelfileError::UnterminatedQuote { line: 2 },
                "modelfile line 2: unterminated quote",
            ),
            (
                "NAME 'open\n",
                ModelfileError::UnterminatedQuote { line: 1 },
                "modelfile line 1: unterminated quote",
            ),
            (
                "NAME \"a\" b\n",
                ModelfileError::TrailingText {
                    line: 1,
                    text: "b".into(),
                },
                r#"modelfile line 1: unexpected "b" after the quoted value"#,
            ),
        ];
        for (text, want, message) in cases {
            let err = Modelfile::parse(text).unwrap_err();
            assert_eq!(&err, want, "{text:?}");
            assert_eq!(err.to_string(), *message);
            assert_eq!(err.line(), want.line());
        }
    }

    #[test]
    fn invalid_glob_is_an_error() {
        let err = Modelfile::parse("NAME x\nCONFIG [abc\n").unwrap_err();
        assert!(matches!(
            &err,
            ModelfileError::InvalidGlob { line: 2, pattern, .. } if pattern == "[abc"
        ));
        assert!(
            err.to_string()
                .starts_with(r#"modelfile line 2: invalid glob "[abc": "#),
            "{err}"
        );
        assert!(Modelfile::parse(r"MODEL a\").is_err());
        assert!(Modelfile::parse("DOC {a,b").is_err());
    }

    #[test]
    fn star_stays_in_one_directory_and_double_star_recurses() {
        let mf = Modelfile::parse(
            "CONFIG *.json\nMODEL **/*.safetensors\nCODE scripts\nDOC ./docs/*.md\nDATASET data/**\n",
        )
        .unwrap();
        use Category::*;
        assert_eq!(mf.category_for("config.json"), Some(WeightConfig));
        assert_eq!(mf.category_for("1_Pooling/config.json"), None);
        assert_eq!(mf.category_for("model.safetensors"), Some(Weight));
        assert_eq!(mf.category_for("a/b/model.safetensors"), Some(Weight));
        // A glob naming a directory takes everything under it.
        assert_eq!(mf.category_for("scripts/run.py"), Some(Code));
        assert_eq!(mf.category_for("scripts/deep/x.sh"), Some(Code));
        assert_eq!(mf.category_for("scriptsx/run.py"), None);
        assert_eq!(mf.category_for("docs/usage.md"), Some(Doc));
        assert_eq!(mf.category_for("docs/sub/usage.md"), None);
        assert_eq!(mf.category_for("data/train/a.parquet"), Some(Dataset));
        // Matching is case-sensitive, like modctl on Linux.
        assert_eq!(mf.category_for("Config.json"), Some(WeightConfig));
        assert_eq!(mf.category_for("CONFIG.JSON"), None);
        assert_eq!(mf.category_for("Model.SAFETENSORS"), None);
    }

    #[test]
    fn precedence_is_config_model_code_doc_dataset() {
        let mf = Modelfile::parse(
            "DATASET *\nDOC *\nCODE *\nMODEL *\nCONFIG *.json\nDOC *.md\nCODE *.py\n",
        )
        .unwrap();
        assert_eq!(mf.category_for("config.json"), Some(Category::WeightConfig));
        assert_eq!(mf.category_for("README.md"), Some(Category::Weight));
        let mf = Modelfile::parse("DATASET *.md\nDOC *.md\nCODE *.py\n").unwrap();
        assert_eq!(mf.category_for("README.md"), Some(Category::Doc));
        assert_eq!(mf.category_for("x.py"), Some(Category::Code));
        assert_eq!(mf.category_for("x.bin"), None);
    }

    #[test]
    fn globs_lists_in_precedence_order() {
        let mf =
            Modelfile::parse("DATASET d\nDOC c\nCODE b\nMODEL a\nCONFIG z\nCONFIG y\n").unwrap();
        let order: Vec<_> = mf.globs().map(|(c, g)| (c, g.pattern.as_str())).collect();
        use Category::*;
        assert_eq!(
            order,
            [
                (WeightConfig, "z"),
                (WeightConfig, "y"),
                (Weight, "a"),
                (Code, "b"),
                (Doc, "c"),
                (Dataset, "d"),
            ]
        );
    }

    #[test]
    fn unmatched_globs_are_reported_with_their_lines() {
        let mf = Modelfile::parse(
            "NAME m\nCONFIG *.json\nMODEL *.gguf\nMODEL **/*.safetensors\nDOC README*\nCODE src\n",
        )
        .unwrap();
        let files = ["config.json", "sub/model.safetensors", "src/a.py"];
        let unmatched = mf.unmatched_globs(files);
        assert_eq!(unmatched, vec![&entry("*.gguf", 3), &entry("README*", 5)]);
        assert_eq!(
            ModelfileError::unmatched(unmatched[0]).to_string(),
            r#"modelfile line 3: glob "*.gguf" matches no file"#
        );
        assert!(
            mf.unmatched_globs(["config.json", "a.gguf", "b.safetensors", "README", "src/x"])
                .is_empty()
        );
    }

    #[test]
    fn hand_built_invalid_glob_matches_nothing() {
        let mf = Modelfile {
            model: vec![GlobEntry::new("[bad")],
            ..Modelfile::default()
        };
        assert_eq!(mf.category_for("[bad"), None);
        assert_eq!(mf.unmatched_globs(["[bad"]).len(), 1);
    }

    #[test]
    fn matcher_can_be_reused() {
        let mf = Modelfile::parse("MODEL *.bin\nCONFIG *.json\n").unwrap();
        let m = mf.matcher();
        assert_eq!(m.category_for("a.bin"), Some(Category::Weight));
        assert_eq!(m.category_for("a.json"), Some(Category::WeightConfig));
        assert_eq!(m.unmatched(["a.bin"]), vec![&entry("*.json", 2)]);
    }

    #[test]
    fn facts_take_each_field_from_the_first_that_has_it() {
        let flags = ModelFacts {
            name: Some(String::new()),
            family: Some("from-flag".into()),
            ..ModelFacts::default()
        };
        let modelfile = ModelFacts {
            family: Some("from-modelfile".into()),
            arch: Some("from-modelfile".into()),
            ..ModelFacts::default()
        };
        let detected = ModelFacts {
            name: Some("detected".into()),
            arch: Some("detected".into()),
            precision: Some("bfloat16".into()),
            ..ModelFacts::default()
        };
        let facts = flags.or(modelfile).or(detected).without_empty();
        assert_eq!(facts.name, None, "an empty flag clears the field");
        assert_eq!(facts.family.as_deref(), Some("from-flag"));
        assert_eq!(facts.arch.as_deref(), Some("from-modelfile"));
        assert_eq!(facts.precision.as_deref(), Some("bfloat16"));
        assert_eq!(facts.format, None);
    }

    #[test]
    fn render_round_trips() {
        let mf = Modelfile {
            facts: ModelFacts {
                name: Some("my model".into()),
                arch: Some("LlamaForCausalLM".into()),
                family: Some("#1 \"best\" \\ family".into()),
                format: Some("safetensors".into()),
                param_size: Some("6.7B".into()),
                precision: Some("bfloat16,float32".into()),
                quantization: Some("'q'".into()),
            },
            config: vec![GlobEntry::new("config.json"), GlobEntry::new("**/*.json")],
            model: vec![GlobEntry::new("model-*.safetensors")],
            code: vec![GlobEntry::new("my scripts/*.py")],
            dataset: vec![GlobEntry::new("data/**")],
            doc: vec![GlobEntry::new(r"a\*b.md"), GlobEntry::new("notes #1.md")],
        };
        let text = mf.render();
        assert!(text.starts_with("# Generated by ferry init\n"), "{text}");
        let back = Modelfile::parse(&text).unwrap();
        let mut expected = mf.clone();
        expected.doc[1] = GlobEntry::new("notes [#]1.md");
        assert_eq!(without_lines(back.clone()), expected, "{text}");
        // Line numbers point into the rendered text.
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[back.model[0].line - 1], "MODEL model-*.safetensors");
        assert_eq!(lines[back.code[0].line - 1], "CODE my scripts/*.py");
        assert_eq!(lines[back.doc[1].line - 1], "DOC notes [#]1.md");
        // modctl builds no DATASET: the file says so above those lines.
        let dataset = lines.iter().position(|l| l.starts_with("DATASET")).unwrap();
        assert!(
            lines[dataset - 1].contains("modctl build leaves DATASET files out"),
            "{text}"
        );

        // And a parsed file renders to something that parses the same.
        let again = Modelfile::parse(&back.render()).unwrap();
        assert_eq!(again, back);
    }

    /// modctl's reading of a directive line: the words after the first,
    /// joined by single spaces (no quotes, no comments).
    fn modctl_value(line: &str) -> String {
        line.split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn rendered_globs_read_the_same_in_modctl_and_ferry() {
        let names = [
            "plain.safetensors",
            "two  spaces.bin",
            " leading.bin",
            "trailing .bin",
            "tab\there.bin",
            "hash #1.md",
            "\"quoted\".md",
            "star*[x]{a,b}?.md",
            "back\\slash.md",
        ];
        let mf = Modelfile {
            doc: names
                .iter()
                .map(|n| GlobEntry::new(exact_glob(n)))
                .collect(),
            ..Modelfile::default()
        };
        let text = mf.render();
        let parsed = Modelfile::parse(&text).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("DOC ")).collect();
        assert_eq!(lines.len(), names.len(), "{text}");
        for ((name, line), glob) in names.iter().zip(&lines).zip(&parsed.doc) {
            assert!(!line.contains('"') || line.contains("[\"]"), "{line}");
            // What modctl reads is what ferry reads, and it matches the file.
            assert_eq!(modctl_value(line), glob.pattern, "{line}");
            let matcher = compile_glob(&glob.pattern).unwrap();
            assert!(matcher.is_match(name), "{line} does not match {name:?}");
        }
        // Exact globs match only their file.
        let star = compile_glob(&exact_glob("star*[x]{a,b}?.md")).unwrap();
        assert!(!star.is_match("starXx.md"));
    }

    #[test]
    fn classes_keep_their_sets_and_what_cannot_be_bare_is_quoted() {
        for (glob, rendered) in [
            ("[a b]x", Some("[a b]x")),
            ("[  ]x", Some("[ ]x")),
            ("a  [x]", Some("a[ ][ ][x]")),
            ("\\[  x", Some("\\[[ ][ ]x")),
            ("[]  ]", Some("[] ]")),
            ("[ #]", None),
            ("[\t]", None),
        ] {
            assert_eq!(bare_glob(glob).as_deref(), rendered, "{glob:?}");
        }
        let mf = Modelfile {
            doc: vec![GlobEntry::new("[ #]"), GlobEntry::new("[  ]x")],
            ..Modelfile::default()
        };
        let back = Modelfile::parse(&mf.render()).unwrap();
        assert_eq!(patterns(&back.doc), vec!["[ #]", "[ ]x"]);
        assert_eq!(Modelfile::parse(&back.render()).unwrap(), back);
    }

    #[test]
    fn render_of_default_is_only_the_header() {
        let text = Modelfile::default().render();
        assert_eq!(text, "# Generated by ferry init\n");
        assert_eq!(Modelfile::parse(&text).unwrap(), Modelfile::default());
    }

    #[test]
    fn render_layout() {
        let mf = Modelfile {
            facts: ModelFacts {
                name: Some("m".into()),
                precision: Some("float16".into()),
                ..ModelFacts::default()
            },
            config: vec![GlobEntry::new("config.json")],
            model: vec![GlobEntry::new("*.safetensors")],
            ..Modelfile::default()
        };
        assert_eq!(
            mf.render(),
            "# Generated by ferry init\n\nNAME m\nPRECISION float16\n\nCONFIG config.json\n\nMODEL *.safetensors\n"
        );
    }
}
