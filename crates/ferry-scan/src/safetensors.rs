//! safetensors headers, checked without reading any tensor data.
//!
//! A file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON,
//! then the tensor data. The JSON maps tensor names to `dtype`, `shape` and
//! `data_offsets` (relative to the start of the data), plus an optional
//! `__metadata__` object of strings. Only the length and the header are read,
//! so the cost is bounded by the header, never by the file.
//!
//! The dtypes and their sizes in bits are those of the `safetensors` crate's
//! `Dtype` (0.6 line, `Dtype::bitsize`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::FormatError;

const FORMAT: &str = "safetensors";

/// The largest header accepted, as the reference implementation does.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The most tensors one header may describe.
pub const MAX_TENSORS: usize = 1_000_000;

/// The most dimensions one tensor may have.
pub const MAX_RANK: usize = 64;

/// Where the header starts: right after its 8-byte length.
const HEADER_START: u64 = 8;

const METADATA_KEY: &str = "__metadata__";

/// What a valid safetensors file holds, as far as its header tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsInfo {
    /// How many tensors the header describes.
    pub tensors: usize,
    /// The header's length in bytes (N), padding included.
    pub header_len: u64,
    /// The length of the data section: the file length - 8 - N.
    pub data_len: u64,
    /// The `__metadata__` strings (empty when absent).
    pub metadata: BTreeMap<String, String>,
}

/// Checks a safetensors file read from `reader`, whose length is `file_len`.
///
/// Reads only the 8-byte header length and the header itself. Refused: a
/// header longer than [`MAX_HEADER_LEN`] or than the file; anything but UTF-8
/// JSON starting with `{` and padded only with spaces; duplicate keys; a
/// `__metadata__` that is not an object of strings; tensors with other
/// fields than `dtype`, `shape` and `data_offsets`, an unknown dtype, more
/// than [`MAX_RANK`] dimensions, a byte size that overflows or is not whole,
/// or that differs from their offsets; offsets that leave holes, overlap, or
/// do not end exactly at the end of the file; more than [`MAX_TENSORS`].
pub fn check_safetensors<R: Read>(
    reader: &mut R,
    file_len: u64,
) -> Result<SafetensorsInfo, FormatError> {
    let header_len = read_header_len(reader, file_len)?;
    let data_len = file_len - HEADER_START - header_len;
    let header_bytes = read_header(reader, header_len)?;
    let mut header = parse_header(&header_bytes, MAX_TENSORS)?;
    check_layout(&mut header.tensors, data_len)?;
    Ok(SafetensorsInfo {
        tensors: header.tensors.len(),
        header_len,
        data_len,
        metadata: header.metadata,
    })
}

fn error(offset: u64, reason: impl Into<String>) -> FormatError {
    FormatError::new(FORMAT, offset, reason)
}

/// The file offset of a byte position inside the header.
fn header_offset(position: usize) -> u64 {
    HEADER_START.saturating_add(u64::try_from(position).unwrap_or(u64::MAX))
}

/// Reads N and refuses it before anything is allocated for the header.
fn read_header_len<R: Read>(reader: &mut R, file_len: u64) -> Result<u64, FormatError> {
    if file_len < HEADER_START {
        return Err(error(
            0,
            format!("file is {file_len} bytes, too short for the 8-byte header length"),
        ));
    }
    let mut len_bytes = [0u8; 8];
    reader
        .read_exact(&mut len_bytes)
        .map_err(|e| error(0, format!("cannot read the header length: {e}")))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_LEN {
        return Err(error(
            0,
            format!("header length {header_len} exceeds the limit of {MAX_HEADER_LEN} bytes"),
        ));
    }
    let available = file_len - HEADER_START;
    if header_len > available {
        return Err(error(
            0,
            format!(
                "header length {header_len} exceeds the {available} bytes after the length field"
            ),
        ));
    }
    Ok(header_len)
}

/// Reads exactly the header: at most `header_len` bytes are allocated, and a
/// reader shorter than the file length claimed is an error, not a hang.
fn read_header<R: Read>(reader: &mut R, header_len: u64) -> Result<Vec<u8>, FormatError> {
    let len = usize::try_from(header_len).map_err(|_| {
        error(
            0,
            format!("header length {header_len} does not fit in memory"),
        )
    })?;
    let mut header = Vec::new();
    header.try_reserve_exact(len).map_err(|_| {
        error(
            HEADER_START,
            format!("cannot allocate {len} bytes for the header"),
        )
    })?;
    let read = reader
        .take(header_len)
        .read_to_end(&mut header)
        .map_err(|e| {
            error(
                header_offset(header.len()),
                format!("cannot read the header: {e}"),
            )
        })?;
    if read < len {
        return Err(error(
            header_offset(read),
            format!("file ends after {read} of the header's {len} bytes"),
        ));
    }
    Ok(header)
}

/// One tensor, reduced to what the layout check needs.
#[derive(Debug)]
struct Tensor {
    name: String,
    begin: u64,
    end: u64,
}

#[derive(Debug)]
struct Header {
    metadata: BTreeMap<String, String>,
    tensors: Vec<Tensor>,
}

fn parse_header(bytes: &[u8], max_tensors: usize) -> Result<Header, FormatError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| error(header_offset(e.valid_up_to()), "header is not valid UTF-8"))?;
    if !text.starts_with('{') {
        return Err(error(HEADER_START, "header does not start with `{`"));
    }
    // Writers pad the header with spaces (0x20) to align the data; JSON's
    // other whitespace after the object is not padding and is refused.
    let json = text.trim_end_matches(' ');
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let header = HeaderSeed { max_tensors }
        .deserialize(&mut deserializer)
        .map_err(|e| json_error(json, &e))?;
    deserializer.end().map_err(|e| json_error(json, &e))?;
    // `end` accepted what follows the object, so it is JSON whitespace.
    let object_end = json.trim_end_matches([' ', '\t', '\n', '\r']).len();
    if object_end != json.len() {
        let first_not_space = json.as_bytes()[object_end..]
            .iter()
            .position(|&byte| byte != b' ')
            .unwrap_or(0);
        return Err(error(
            header_offset(object_end + first_not_space),
            "header is padded with bytes other than spaces",
        ));
    }
    Ok(header)
}

/// A JSON error with its position turned into a file offset.
fn json_error(json: &str, err: &serde_json::Error) -> FormatError {
    let position = position_of(json, err.line(), err.column());
    let message = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    let reason = message.strip_suffix(&suffix).unwrap_or(&message);
    error(header_offset(position), format!("header: {reason}"))
}

/// The byte serde_json points at with a 1-based line and a 1-based column
/// counted in bytes (the byte it stopped on).
fn position_of(text: &str, line: usize, column: usize) -> usize {
    let line_start = match line {
        0 | 1 => 0,
        _ => text
            .match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(index, _)| index + 1),
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// The top-level object: seen through a map visitor so that duplicate keys,
/// which serde_json would silently resolve to the last, are refused.
struct HeaderSeed {
    max_tensors: usize,
}

impl<'de> DeserializeSeed<'de> for HeaderSeed {
    type Value = Header;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Header, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed {
    type Value = Header;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object of tensors")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut keys = HashSet::new();
        let mut metadata = BTreeMap::new();
        let mut tensors = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            if key == METADATA_KEY {
                metadata = map.next_value::<UniqueStringMap>()?.0;
            } else {
                if tensors.len() == self.max_tensors {
                    return Err(de::Error::custom(format!(
                        "more than {} tensors",
                        self.max_tensors
                    )));
                }
                let TensorObject(entry) = map.next_value()?;
                tensors.push(entry.check(&key).map_err(de::Error::custom)?);
            }
            keys.insert(key);
        }
        Ok(Header { metadata, tensors })
    }
}

/// `__metadata__`: string to string, each key once.
struct UniqueStringMap(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for UniqueStringMap {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(UniqueStringMapVisitor)
    }
}

struct UniqueStringMapVisitor;

impl<'de> Visitor<'de> for UniqueStringMapVisitor {
    type Value = UniqueStringMap;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueStringMap, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if entries.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key {key:?} in {METADATA_KEY}"
                )));
            }
            let value = map.next_value::<String>()?;
            entries.insert(key, value);
        }
        Ok(UniqueStringMap(entries))
    }
}

/// A tensor entry that must be a JSON object: derived structs would also
/// accept an array of the three values.
struct TensorObject(TensorEntry);

impl<'de> Deserialize<'de> for TensorObject {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TensorObjectVisitor)
    }
}

struct TensorObjectVisitor;

impl<'de> Visitor<'de> for TensorObjectVisitor {
    type Value = TensorObject;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a tensor object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TensorObject, A::Error> {
        TensorEntry::deserialize(de::value::MapAccessDeserializer::new(map)).map(TensorObject)
    }
}

/// One tensor as written; serde's derive refuses duplicate and missing
/// fields, and `deny_unknown_fields` anything else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorEntry {
    dtype: Dtype,
    shape: Shape,
    data_offsets: (u64, u64),
}

impl TensorEntry {
    /// Checks the entry on its own: its offsets must hold exactly its bytes.
    fn check(self, name: &str) -> Result<Tensor, String> {
        let (begin, end) = self.data_offsets;
        if end < begin {
            return Err(format!(
                "tensor {name:?} ends at {end}, before it begins at {begin}"
            ));
        }
        let shape = &self.shape.0;
        let bytes = byte_size(self.dtype, shape).ok_or_else(|| {
            format!(
                "tensor {name:?}: shape {shape:?} of {:?} overflows 64 bits",
                self.dtype
            )
        })?;
        let bytes = bytes.ok_or_else(|| {
            format!(
                "tensor {name:?}: shape {shape:?} of {:?} is not a whole number of bytes",
                self.dtype
            )
        })?;
        if end - begin != bytes {
            return Err(format!(
                "tensor {name:?}: shape {shape:?} of {:?} needs {bytes} bytes, its offsets \
                 {begin}..{end} hold {}",
                self.dtype,
                end - begin
            ));
        }
        Ok(Tensor {
            name: name.to_owned(),
            begin,
            end,
        })
    }
}

/// The byte size of a tensor: `None` on overflow, `Some(None)` when the bits
/// do not make whole bytes (sub-byte dtypes).
fn byte_size(dtype: Dtype, shape: &[u64]) -> Option<Option<u64>> {
    let elements = shape
        .iter()
        .try_fold(1u64, |product, &dim| product.checked_mul(dim))?;
    let bits = elements.checked_mul(dtype.bits())?;
    Some(bits.is_multiple_of(8).then_some(bits / 8))
}

/// A shape, refused as soon as it has more than [`MAX_RANK`] dimensions.
struct Shape(Vec<u64>);

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array of non-negative integers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let mut dims = Vec::new();
        while let Some(dim) = seq.next_element::<u64>()? {
            if dims.len() == MAX_RANK {
                return Err(de::Error::custom(format!(
                    "shape has more than {MAX_RANK} dimensions"
                )));
            }
            dims.push(dim);
        }
        Ok(Shape(dims))
    }
}

/// The dtypes of the `safetensors` crate, spelled as in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Dtype {
    #[serde(rename = "BOOL")]
    Bool,
    #[serde(rename = "F4")]
    F4,
    #[serde(rename = "F6_E2M3")]
    F6E2M3,
    #[serde(rename = "F6_E3M2")]
    F6E3M2,
    #[serde(rename = "U8")]
    U8,
    #[serde(rename = "I8")]
    I8,
    #[serde(rename = "F8_E5M2")]
    F8E5M2,
    #[serde(rename = "F8_E4M3")]
    F8E4M3,
    #[serde(rename = "F8_E8M0")]
    F8E8M0,
    #[serde(rename = "I16")]
    I16,
    #[serde(rename = "U16")]
    U16,
    #[serde(rename = "F16")]
    F16,
    #[serde(rename = "BF16")]
    BF16,
    #[serde(rename = "I32")]
    I32,
    #[serde(rename = "U32")]
    U32,
    #[serde(rename = "F32")]
    F32,
    #[serde(rename = "C64")]
    C64,
    #[serde(rename = "F64")]
    F64,
    #[serde(rename = "I64")]
    I64,
    #[serde(rename = "U64")]
    U64,
}

impl Dtype {
    /// Bits per element.
    fn bits(self) -> u64 {
        match self {
            Dtype::F4 => 4,
            Dtype::F6E2M3 | Dtype::F6E3M2 => 6,
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E5M2 | Dtype::F8E4M3 | Dtype::F8E8M0 => {
                8
            }
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 16,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 32,
            Dtype::C64 | Dtype::F64 | Dtype::I64 | Dtype::U64 => 64,
        }
    }
}

/// Sorted by where they begin, the tensors must tile the data section
/// exactly: from 0, without holes or overlaps, to its very end.
fn check_layout(tensors: &mut [Tensor], data_len: u64) -> Result<(), FormatError> {
    tensors.sort_by_key(|tensor| (tensor.begin, tensor.end));
    let mut covered = 0u64;
    let mut previous: Option<&str> = None;
    for tensor in tensors.iter() {
        let Tensor { name, begin, end } = tensor;
        if *begin > covered {
            return Err(error(
                HEADER_START,
                format!(
                    "hole: data bytes {covered}..{begin} belong to no tensor (before {name:?})"
                ),
            ));
        }
        if *begin < covered {
            let previous = previous.unwrap_or_default();
            return Err(error(
                HEADER_START,
                format!(
                    "tensor {name:?} at {begin}..{end} overlaps tensor {previous:?}, which ends at {covered}"
                ),
            ));
        }
        covered = *end;
        previous = Some(name);
    }
    if covered != data_len {
        return Err(error(
            HEADER_START,
            format!("tensors end at data byte {covered} but the data section holds {data_len}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A file: the header's length, the header, then `data_len` zero bytes.
    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + data_len, 0);
        bytes
    }

    fn tensor(name: &str, dtype: &str, shape: &[u64], begin: u64, end: u64) -> String {
        format!(
            r#""{name}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{begin},{end}]}}"#
        )
    }

    fn object(entries: &[String]) -> String {
        format!("{{{}}}", entries.join(","))
    }

    fn check(bytes: &[u8]) -> Result<SafetensorsInfo, FormatError> {
        check_safetensors(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    fn refused(bytes: &[u8]) -> FormatError {
        match check(bytes) {
            Ok(info) => panic!("accepted: {info:?}"),
            Err(err) => err,
        }
    }

    fn assert_reason(err: &FormatError, needle: &str) {
        assert!(
            err.reason.contains(needle),
            "reason {:?} lacks {needle:?}",
            err.reason
        );
        assert_eq!(err.format, "safetensors");
    }

    #[test]
    fn empty_header_without_data_is_valid() {
        let info = check(&file("{}", 0)).unwrap();
        assert_eq!(
            info,
            SafetensorsInfo {
                tensors: 0,
                header_len: 2,
                data_len: 0,
                metadata: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn one_tensor_is_valid() {
        let header = object(&[tensor("w", "F32", &[2, 2], 0, 16)]);
        let info = check(&file(&header, 16)).unwrap();
        assert_eq!(info.tensors, 1);
        assert_eq!(info.data_len, 16);
    }

    #[test]
    fn several_tensors_metadata_and_padding_are_valid() {
        let mut header = object(&[
            r#""__metadata__":{"format":"pt","note":"x"}"#.to_owned(),
            // Listed out of order: only the offsets order the data.
            tensor("b", "BF16", &[3], 24, 30),
            tensor("a", "F64", &[3], 0, 24),
            tensor("scalar", "U8", &[], 30, 31),
            tensor("empty", "I32", &[0, 5], 31, 31),
            tensor("nibbles", "F4", &[2, 3], 31, 34),
            tensor("sixes", "F6_E3M2", &[4], 34, 37),
            tensor("complex", "C64", &[1], 37, 45),
        ]);
        header.push_str("   ");
        let bytes = file(&header, 45);
        let mut reader = Cursor::new(&bytes);
        let info = check_safetensors(&mut reader, bytes.len() as u64).unwrap();
        assert_eq!(info.tensors, 7);
        assert_eq!(info.header_len, header.len() as u64);
        assert_eq!(info.data_len, 45);
        assert_eq!(info.metadata.get("format").map(String::as_str), Some("pt"));
        assert_eq!(info.metadata.len(), 2);
        // Tensor data is never read.
        assert_eq!(reader.position(), 8 + header.len() as u64);
    }

    #[test]
    fn file_shorter_than_the_length_field_is_refused() {
        let err = refused(&[1, 0, 0]);
        assert_reason(&err, "too short");
        assert_eq!(err.offset, 0);
    }

    #[test]
    fn header_longer_than_the_file_is_refused() {
        let mut bytes = file("{}", 0);
        bytes[..8].copy_from_slice(&3u64.to_le_bytes());
        let err = refused(&bytes);
        assert_reason(&err, "exceeds the 2 bytes");
        assert_eq!(err.offset, 0);
    }

    #[test]
    fn header_length_2_pow_63_is_refused_before_reading() {
        let mut bytes = (1u64 << 63).to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let mut reader = Cursor::new(&bytes);
        // The file claims to be huge; the length is refused on the limit.
        let err = check_safetensors(&mut reader, u64::MAX).unwrap_err();
        assert_reason(&err, "exceeds the limit");
        assert_eq!(err.offset, 0);
        assert_eq!(reader.position(), 8);
    }

    #[test]
    fn header_length_just_over_the_limit_is_refused() {
        let bytes = (MAX_HEADER_LEN + 1).to_le_bytes();
        let err = check_safetensors(&mut Cursor::new(&bytes), 1 << 40).unwrap_err();
        assert_reason(&err, "exceeds the limit of 100000000");
    }

    #[test]
    fn reader_shorter_than_the_claimed_file_is_refused() {
        let mut bytes = 10u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let err = check_safetensors(&mut Cursor::new(&bytes), 100).unwrap_err();
        assert_reason(&err, "file ends after 2 of the header's 10 bytes");
        assert_eq!(err.offset, 10);
    }

    #[test]
    fn header_not_starting_with_a_brace_is_refused() {
        for header in ["[]", " {}", "\n{}"] {
            let err = refused(&file(header, 0));
            assert_reason(&err, "does not start with `{`");
            assert_eq!(err.offset, 8);
        }
    }

    #[test]
    fn empty_header_is_refused() {
        let err = refused(&file("", 0));
        assert_reason(&err, "does not start with `{`");
    }

    #[test]
    fn invalid_utf8_is_refused_where_it_is() {
        let mut bytes = file(r#"{"a":"xy"}"#, 0);
        bytes[8 + 6] = 0xff;
        let err = refused(&bytes);
        assert_reason(&err, "not valid UTF-8");
        assert_eq!(err.offset, 8 + 6);
    }

    #[test]
    fn malformed_json_is_refused_with_its_position() {
        let err = refused(&file(r#"{"a":}"#, 0));
        assert_reason(&err, "header: expected value");
        assert_eq!(err.offset, 8 + 5);
        let err = refused(&file("{\n\"a\" 1}", 0));
        assert_reason(&err, "expected `:`");
        assert_eq!(err.offset, 8 + 6);
    }

    #[test]
    fn truncated_json_is_refused() {
        let err = refused(&file(r#"{"a":{"dtype":"#, 0));
        assert_reason(&err, "EOF");
    }

    #[test]
    fn padding_other_than_spaces_is_refused() {
        for (header, at) in [("{}\n", 2), ("{} \t ", 3), ("{}\r\n  ", 2)] {
            let err = refused(&file(header, 0));
            assert_reason(&err, "padded with bytes other than spaces");
            assert_eq!(err.offset, 8 + at, "{header:?}");
        }
        let err = refused(&file("{} x", 0));
        assert_reason(&err, "trailing characters");
    }

    #[test]
    fn duplicate_tensor_key_is_refused() {
        let header = object(&[tensor("a", "U8", &[1], 0, 1), tensor("a", "U8", &[1], 1, 2)]);
        let err = refused(&file(&header, 2));
        assert_reason(&err, r#"duplicate key "a""#);
        assert!(err.offset > 8 && err.offset < 8 + header.len() as u64);
    }

    #[test]
    fn duplicate_metadata_key_is_refused() {
        let header = r#"{"__metadata__":{"k":"1","k":"2"}}"#;
        let err = refused(&file(header, 0));
        assert_reason(&err, r#"duplicate key "k" in __metadata__"#);
        let header = r#"{"__metadata__":{},"__metadata__":{}}"#;
        let err = refused(&file(header, 0));
        assert_reason(&err, r#"duplicate key "__metadata__""#);
    }

    #[test]
    fn duplicate_tensor_field_is_refused() {
        let header = r#"{"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
        let err = refused(&file(header, 1));
        assert_reason(&err, "duplicate field `dtype`");
    }

    #[test]
    fn metadata_must_be_an_object_of_strings() {
        let err = refused(&file(r#"{"__metadata__":{"n":1}}"#, 0));
        assert_reason(&err, "expected a string");
        let err = refused(&file(r#"{"__metadata__":"x"}"#, 0));
        assert_reason(&err, "expected an object of strings");
    }

    #[test]
    fn tensor_must_be_an_object_with_exactly_its_three_fields() {
        let header = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":0}}"#;
        assert_reason(&refused(&file(header, 1)), "unknown field `extra`");
        let header = r#"{"a":{"dtype":"U8","shape":[1]}}"#;
        assert_reason(&refused(&file(header, 1)), "missing field `data_offsets`");
        let header = r#"{"a":["U8",[1],[0,1]]}"#;
        assert_reason(&refused(&file(header, 1)), "invalid type: sequence");
        assert_reason(&refused(&file(r#"{"a":7}"#, 0)), "expected a tensor object");
    }

    #[test]
    fn unknown_dtype_is_refused() {
        let header = object(&[tensor("a", "F128", &[1], 0, 16)]);
        let err = refused(&file(&header, 16));
        assert_reason(&err, "unknown variant `F128`");
        // Dtype names are case sensitive.
        let header = object(&[tensor("a", "f32", &[1], 0, 4)]);
        assert_reason(&refused(&file(&header, 4)), "unknown variant `f32`");
    }

    #[test]
    fn negative_or_fractional_dimensions_are_refused() {
        let header = r#"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}"#;
        assert_reason(&refused(&file(header, 0)), "invalid value: integer `-1`");
        let header = r#"{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}"#;
        assert_reason(&refused(&file(header, 1)), "invalid type: floating point");
    }

    #[test]
    fn data_offsets_must_be_a_pair_of_integers() {
        let header = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}"#;
        assert_reason(&refused(&file(header, 1)), "trailing");
        let header = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}"#;
        assert_reason(&refused(&file(header, 1)), "invalid value: integer `-1`");
    }

    #[test]
    fn shape_overflow_is_refused() {
        let big = 1u64 << 40;
        let header = object(&[tensor("a", "U8", &[big, big, big], 0, 1)]);
        assert_reason(&refused(&file(&header, 1)), "overflows 64 bits");
        // Elements fit, bits do not.
        let header = object(&[tensor("a", "F64", &[1 << 60], 0, 1)]);
        assert_reason(&refused(&file(&header, 1)), "overflows 64 bits");
    }

    #[test]
    fn too_many_dimensions_are_refused() {
        let shape = vec![1u64; MAX_RANK + 1];
        let header = object(&[tensor("a", "U8", &shape, 0, 1)]);
        assert_reason(&refused(&file(&header, 1)), "more than 64 dimensions");
        let shape = vec![1u64; MAX_RANK];
        let header = object(&[tensor("a", "U8", &shape, 0, 1)]);
        assert_eq!(check(&file(&header, 1)).unwrap().tensors, 1);
    }

    #[test]
    fn sub_byte_sizes_must_make_whole_bytes() {
        let header = object(&[tensor("a", "F4", &[3], 0, 2)]);
        assert_reason(&refused(&file(&header, 2)), "not a whole number of bytes");
        let header = object(&[tensor("a", "F6_E2M3", &[3], 0, 3)]);
        assert_reason(&refused(&file(&header, 3)), "not a whole number of bytes");
    }

    #[test]
    fn size_differing_from_offsets_is_refused() {
        let header = object(&[tensor("a", "F16", &[4], 0, 7)]);
        let err = refused(&file(&header, 7));
        assert_reason(&err, "needs 8 bytes, its offsets 0..7 hold 7");
        assert!(err.offset > 8);
    }

    #[test]
    fn end_before_begin_is_refused() {
        let header = object(&[tensor("a", "U8", &[0], 4, 2)]);
        assert_reason(&refused(&file(&header, 4)), "before it begins");
    }

    #[test]
    fn hole_is_refused() {
        let header = object(&[tensor("a", "U8", &[2], 0, 2), tensor("b", "U8", &[2], 3, 5)]);
        let err = refused(&file(&header, 5));
        assert_reason(
            &err,
            r#"hole: data bytes 2..3 belong to no tensor (before "b")"#,
        );
        assert_eq!(err.offset, 8);
    }

    #[test]
    fn data_not_starting_at_zero_is_a_hole() {
        let header = object(&[tensor("a", "U8", &[2], 1, 3)]);
        assert_reason(&refused(&file(&header, 3)), "hole: data bytes 0..1");
    }

    #[test]
    fn overlap_is_refused() {
        let header = object(&[tensor("a", "U8", &[4], 0, 4), tensor("b", "U8", &[4], 2, 6)]);
        let err = refused(&file(&header, 6));
        assert_reason(
            &err,
            r#"tensor "b" at 2..6 overlaps tensor "a", which ends at 4"#,
        );
    }

    #[test]
    fn last_end_must_equal_the_data_length() {
        let header = object(&[tensor("a", "U8", &[4], 0, 4)]);
        let err = refused(&file(&header, 5));
        assert_reason(
            &err,
            "tensors end at data byte 4 but the data section holds 5",
        );
        let err = refused(&file(&header, 3));
        assert_reason(
            &err,
            "tensors end at data byte 4 but the data section holds 3",
        );
    }

    #[test]
    fn empty_tensor_set_requires_no_data() {
        let err = refused(&file("{}", 1));
        assert_reason(
            &err,
            "tensors end at data byte 0 but the data section holds 1",
        );
        let err = refused(&file(r#"{"__metadata__":{}}"#, 8));
        assert_reason(&err, "holds 8");
    }

    #[test]
    fn tensor_count_is_limited() {
        let header = object(&[
            tensor("a", "U8", &[1], 0, 1),
            tensor("b", "U8", &[1], 1, 2),
            tensor("c", "U8", &[1], 2, 3),
        ]);
        let err = parse_header(header.as_bytes(), 2).unwrap_err();
        assert_reason(&err, "more than 2 tensors");
        assert_eq!(parse_header(header.as_bytes(), 3).unwrap().tensors.len(), 3);
    }

    #[test]
    fn every_dtype_has_its_size() {
        let expected = [
            ("BOOL", 8),
            ("F4", 4),
            ("F6_E2M3", 6),
            ("F6_E3M2", 6),
            ("U8", 8),
            ("I8", 8),
            ("F8_E5M2", 8),
            ("F8_E4M3", 8),
            ("F8_E8M0", 8),
            ("I16", 16),
            ("U16", 16),
            ("F16", 16),
            ("BF16", 16),
            ("I32", 32),
            ("U32", 32),
            ("F32", 32),
            ("C64", 64),
            ("F64", 64),
            ("I64", 64),
            ("U64", 64),
        ];
        for (name, bits) in expected {
            // Eight elements are a whole number of bytes for every dtype.
            let bytes = bits;
            let header = object(&[tensor("t", name, &[8], 0, bytes)]);
            let info = check(&file(&header, bytes as usize));
            assert!(info.is_ok(), "{name}: {info:?}");
        }
    }
}
