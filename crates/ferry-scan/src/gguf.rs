//! GGUF headers, streamed and checked without reading any tensor data.
//!
//! A file is the magic `GGUF`, a version, a tensor count and a metadata
//! count, the metadata key-value pairs, the tensor infos, then the data
//! section, aligned to `general.alignment` (32 by default). All integers are
//! little-endian. Counts and lengths are bounded by limits and by what the
//! rest of the file could hold before anything proportional to them is
//! allocated; arrays are skipped in chunks, never materialized.
//!
//! Value types follow ggml's `gguf.h`; tensor types, block sizes and block
//! byte sizes follow `enum ggml_type` in `ggml.h` and the block structs in
//! `ggml-common.h` (llama.cpp master, through `GGML_TYPE_Q2_0 = 42`).

use std::collections::HashSet;
use std::io::Read;

use crate::FormatError;

const FORMAT: &str = "GGUF";

const MAGIC: [u8; 4] = *b"GGUF";

/// The most tensors a header may declare.
pub const MAX_TENSORS: u64 = 1_000_000;

/// The most metadata key-value pairs a header may declare.
pub const MAX_KV: u64 = 1_000_000;

/// The longest string value accepted, in bytes: some conversions embed a
/// whole `tokenizer.json` (several MiB) as one value.
pub const MAX_STRING: u64 = 64 << 20;

/// How deep arrays of arrays may nest (an array of scalars is depth 1).
pub const MAX_ARRAY_DEPTH: u32 = 4;

/// The alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The GGUF spec caps keys at 2^16 - 1 bytes.
const MAX_KEY_LEN: u64 = 65_535;

/// All keys together, so that duplicate detection stays small whatever the
/// file's size.
const MAX_KEY_BYTES: u64 = 64 << 20;

/// ggml's `GGML_MAX_NAME` is 64 bytes with the terminating NUL.
const MAX_TENSOR_NAME_LEN: u64 = 63;

/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: usize = 4;

/// The smallest encodings of a key-value pair (empty key, one-byte value)
/// and of a tensor info (empty name, one dimension): what a count must at
/// least cost in bytes.
const MIN_KV_LEN: u64 = 8 + 4 + 1;
const MIN_TENSOR_INFO_LEN: u64 = 8 + 4 + 8 + 4 + 8;

/// Arrays and strings are read through a buffer of at most this many bytes.
const CHUNK_LEN: u64 = 64 << 10;

const ALIGNMENT_KEY: &str = "general.alignment";
const ARCHITECTURE_KEY: &str = "general.architecture";

/// What a valid GGUF file holds, as far as its header tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufInfo {
    /// The format version (2 or 3).
    pub version: u32,
    /// How many tensors the header describes.
    pub tensors: usize,
    /// How many metadata key-value pairs it holds.
    pub metadata: usize,
    /// The data section's alignment.
    pub alignment: u64,
    /// `general.architecture`, when it is a string.
    pub architecture: Option<String>,
}

/// Checks a GGUF file read from `reader`, whose length is `file_len`.
///
/// Reads the header only (up to the end of the tensor infos). Refused: a bad
/// magic; versions other than 2 and 3; counts above [`MAX_TENSORS`] or
/// [`MAX_KV`] or more than the file could hold; strings longer than
/// [`MAX_STRING`], than the file, or not UTF-8; unknown value types; bools
/// other than 0 and 1; arrays longer than the file could hold or nested
/// deeper than [`MAX_ARRAY_DEPTH`]; duplicate keys or tensor names; a
/// `general.alignment` that is not a non-zero power of two in a UINT32;
/// tensors with 0 or more than 4 dimensions, an unknown ggml type, a row not
/// made of whole blocks, a size that overflows, an offset off the alignment,
/// data outside the file, or data overlapping another tensor's.
pub fn check_gguf<R: Read>(reader: &mut R, file_len: u64) -> Result<GgufInfo, FormatError> {
    let mut input = HeaderReader::new(reader, file_len);
    let version = read_preamble(&mut input)?;
    let tensor_count = input.u64("the tensor count")?;
    let kv_count = input.u64("the metadata count")?;
    check_counts(tensor_count, kv_count, input.remaining())?;
    let metadata = read_metadata(&mut input, kv_count)?;
    let mut tensors = read_tensor_infos(&mut input, tensor_count, metadata.alignment)?;
    check_tensor_data(&mut tensors, input.position, file_len, metadata.alignment)?;
    Ok(GgufInfo {
        version,
        tensors: tensors.len(),
        metadata: metadata.count,
        alignment: metadata.alignment,
        architecture: metadata.architecture,
    })
}

fn error(offset: u64, reason: impl Into<String>) -> FormatError {
    FormatError::new(FORMAT, offset, reason)
}

/// Reads the header in order, knowing its position for error offsets and
/// refusing to read past the end the file is said to have.
struct HeaderReader<'r, R> {
    inner: &'r mut R,
    position: u64,
    file_len: u64,
    buffer: Vec<u8>,
}

impl<'r, R: Read> HeaderReader<'r, R> {
    fn new(inner: &'r mut R, file_len: u64) -> Self {
        HeaderReader {
            inner,
            position: 0,
            file_len,
            buffer: Vec::new(),
        }
    }

    fn remaining(&self) -> u64 {
        self.file_len.saturating_sub(self.position)
    }

    fn ensure_available(&self, len: u64, what: &str) -> Result<(), FormatError> {
        let remaining = self.remaining();
        if len > remaining {
            return Err(error(
                self.position,
                format!("{what} needs {len} bytes but the file has {remaining} left"),
            ));
        }
        Ok(())
    }

    fn fill(&mut self, bytes: &mut [u8], what: &str) -> Result<(), FormatError> {
        let len = bytes.len() as u64;
        self.ensure_available(len, what)?;
        self.inner
            .read_exact(bytes)
            .map_err(|e| error(self.position, format!("cannot read {what}: {e}")))?;
        self.position += len;
        Ok(())
    }

    /// Reads `len` bytes (at most [`CHUNK_LEN`] or [`MAX_STRING`]) into the
    /// reused buffer.
    fn chunk(&mut self, len: u64, what: &str) -> Result<&[u8], FormatError> {
        self.ensure_available(len, what)?;
        let len_in_memory = usize::try_from(len)
            .map_err(|_| error(self.position, format!("{what} does not fit in memory")))?;
        self.buffer.clear();
        self.buffer.resize(len_in_memory, 0);
        let position = self.position;
        self.inner
            .read_exact(&mut self.buffer)
            .map_err(|e| error(position, format!("cannot read {what}: {e}")))?;
        self.position += len;
        Ok(&self.buffer)
    }

    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let mut bytes = [0u8; 4];
        self.fill(&mut bytes, what)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes, what)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Skips `len` bytes by reading them in chunks.
    fn skip(&mut self, len: u64, what: &str) -> Result<(), FormatError> {
        self.ensure_available(len, what)?;
        let mut left = len;
        while left > 0 {
            let chunk_len = left.min(CHUNK_LEN);
            self.chunk(chunk_len, what)?;
            left -= chunk_len;
        }
        Ok(())
    }

    /// Reads a GGUF string (u64 length, UTF-8 bytes) of at most `max_len`
    /// bytes, leaving it in the buffer.
    fn string_bytes(&mut self, what: &str, max_len: u64) -> Result<&str, FormatError> {
        let start = self.position;
        let len = self.u64(what)?;
        if len > max_len {
            return Err(error(
                start,
                format!("{what} is {len} bytes long, more than the limit of {max_len}"),
            ));
        }
        let text_start = self.position;
        let bytes = self.chunk(len, what)?;
        std::str::from_utf8(bytes).map_err(|e| {
            error(
                text_start + e.valid_up_to() as u64,
                format!("{what} is not valid UTF-8"),
            )
        })
    }

    fn string(&mut self, what: &str, max_len: u64) -> Result<String, FormatError> {
        self.string_bytes(what, max_len).map(str::to_owned)
    }
}

/// The magic and the version.
fn read_preamble<R: Read>(input: &mut HeaderReader<'_, R>) -> Result<u32, FormatError> {
    let mut magic = [0u8; 4];
    input.fill(&mut magic, "the magic")?;
    if magic != MAGIC {
        return Err(error(
            0,
            format!("bad magic {magic:02x?}, expected \"GGUF\""),
        ));
    }
    let version = input.u32("the version")?;
    match version {
        2 | 3 => Ok(version),
        1 => Err(error(
            4,
            "GGUF version 1 is not supported (it predates 64-bit counts and lengths); \
             versions 2 and 3 are",
        )),
        _ => Err(error(
            4,
            format!("unsupported GGUF version {version}; versions 2 and 3 are supported"),
        )),
    }
}

/// Refuses counts above the limits or above what the rest of the file could
/// hold, before anything is allocated for them.
fn check_counts(tensor_count: u64, kv_count: u64, remaining: u64) -> Result<(), FormatError> {
    const TENSOR_COUNT_OFFSET: u64 = 8;
    const KV_COUNT_OFFSET: u64 = 16;
    if tensor_count > MAX_TENSORS {
        return Err(error(
            TENSOR_COUNT_OFFSET,
            format!("tensor count {tensor_count} exceeds the limit of {MAX_TENSORS}"),
        ));
    }
    if kv_count > MAX_KV {
        return Err(error(
            KV_COUNT_OFFSET,
            format!("metadata count {kv_count} exceeds the limit of {MAX_KV}"),
        ));
    }
    // Both counts are bounded above, so this cannot overflow.
    let needed = tensor_count * MIN_TENSOR_INFO_LEN + kv_count * MIN_KV_LEN;
    if needed > remaining {
        return Err(error(
            TENSOR_COUNT_OFFSET,
            format!(
                "{tensor_count} tensors and {kv_count} metadata pairs need at least {needed} \
                 bytes but the file has {remaining} left"
            ),
        ));
    }
    Ok(())
}

/// The metadata value types of ggml's `gguf.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Uint8,
    Int8,
    Uint16,
    Int16,
    Uint32,
    Int32,
    Float32,
    Bool,
    String,
    Array,
    Uint64,
    Int64,
    Float64,
}

impl ValueType {
    fn from_code(code: u32) -> Option<ValueType> {
        Some(match code {
            0 => ValueType::Uint8,
            1 => ValueType::Int8,
            2 => ValueType::Uint16,
            3 => ValueType::Int16,
            4 => ValueType::Uint32,
            5 => ValueType::Int32,
            6 => ValueType::Float32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::Uint64,
            11 => ValueType::Int64,
            12 => ValueType::Float64,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            ValueType::Uint8 => "UINT8",
            ValueType::Int8 => "INT8",
            ValueType::Uint16 => "UINT16",
            ValueType::Int16 => "INT16",
            ValueType::Uint32 => "UINT32",
            ValueType::Int32 => "INT32",
            ValueType::Float32 => "FLOAT32",
            ValueType::Bool => "BOOL",
            ValueType::String => "STRING",
            ValueType::Array => "ARRAY",
            ValueType::Uint64 => "UINT64",
            ValueType::Int64 => "INT64",
            ValueType::Float64 => "FLOAT64",
        }
    }

    /// The fewest bytes one value can take: its size when fixed, the length
    /// field of a string, the element type and count of an array.
    fn min_len(self) -> u64 {
        match self {
            ValueType::Uint8 | ValueType::Int8 | ValueType::Bool => 1,
            ValueType::Uint16 | ValueType::Int16 => 2,
            ValueType::Uint32 | ValueType::Int32 | ValueType::Float32 => 4,
            ValueType::Uint64 | ValueType::Int64 | ValueType::Float64 | ValueType::String => 8,
            ValueType::Array => 4 + 8,
        }
    }
}

struct Metadata {
    count: usize,
    alignment: u64,
    architecture: Option<String>,
}

fn read_metadata<R: Read>(
    input: &mut HeaderReader<'_, R>,
    kv_count: u64,
) -> Result<Metadata, FormatError> {
    let mut keys = HashSet::new();
    let mut key_bytes = 0u64;
    let mut alignment = DEFAULT_ALIGNMENT;
    let mut architecture = None;
    for _ in 0..kv_count {
        let key_offset = input.position;
        let key = input.string("a metadata key", MAX_KEY_LEN)?;
        if keys.contains(&key) {
            return Err(error(key_offset, format!("duplicate metadata key {key:?}")));
        }
        key_bytes += key.len() as u64;
        if key_bytes > MAX_KEY_BYTES {
            return Err(error(
                key_offset,
                format!("metadata keys exceed {MAX_KEY_BYTES} bytes in total"),
            ));
        }
        let type_offset = input.position;
        let code = input.u32("a value type")?;
        let value_type = ValueType::from_code(code).ok_or_else(|| {
            error(
                type_offset,
                format!("metadata {key:?} has unknown value type {code}"),
            )
        })?;
        match key.as_str() {
            ALIGNMENT_KEY => {
                if value_type != ValueType::Uint32 {
                    return Err(error(
                        type_offset,
                        format!("{ALIGNMENT_KEY} is {}, not UINT32", value_type.name()),
                    ));
                }
                let value_offset = input.position;
                let value = input.u32(ALIGNMENT_KEY)?;
                if !value.is_power_of_two() {
                    return Err(error(
                        value_offset,
                        format!("{ALIGNMENT_KEY} {value} is not a non-zero power of two"),
                    ));
                }
                alignment = u64::from(value);
            }
            ARCHITECTURE_KEY if value_type == ValueType::String => {
                architecture = Some(input.string(ARCHITECTURE_KEY, MAX_STRING)?);
            }
            _ => skip_value(input, value_type, 0)?,
        }
        keys.insert(key);
    }
    Ok(Metadata {
        count: keys.len(),
        alignment,
        architecture,
    })
}

/// Reads past one value, checking it; `depth` is how many arrays enclose it.
fn skip_value<R: Read>(
    input: &mut HeaderReader<'_, R>,
    value_type: ValueType,
    depth: u32,
) -> Result<(), FormatError> {
    match value_type {
        ValueType::Bool => skip_bools(input, 1),
        ValueType::String => input.string_bytes("a string value", MAX_STRING).map(drop),
        ValueType::Array => skip_array(input, depth + 1),
        fixed => input.skip(fixed.min_len(), "a value"),
    }
}

fn skip_array<R: Read>(input: &mut HeaderReader<'_, R>, depth: u32) -> Result<(), FormatError> {
    let array_offset = input.position;
    if depth > MAX_ARRAY_DEPTH {
        return Err(error(
            array_offset,
            format!("arrays nest deeper than {MAX_ARRAY_DEPTH} levels"),
        ));
    }
    let code = input.u32("an array element type")?;
    let element_type = ValueType::from_code(code).ok_or_else(|| {
        error(
            array_offset,
            format!("array has unknown element type {code}"),
        )
    })?;
    let count_offset = input.position;
    let count = input.u64("an array length")?;
    let remaining = input.remaining();
    let fits = count
        .checked_mul(element_type.min_len())
        .is_some_and(|len| len <= remaining);
    if !fits {
        return Err(error(
            count_offset,
            format!(
                "array of {count} {} values cannot fit in the {remaining} bytes left",
                element_type.name()
            ),
        ));
    }
    match element_type {
        ValueType::Bool => skip_bools(input, count),
        ValueType::String | ValueType::Array => {
            for _ in 0..count {
                skip_value(input, element_type, depth)?;
            }
            Ok(())
        }
        // The product was checked against the bytes left just above.
        fixed => input.skip(count * fixed.min_len(), "array values"),
    }
}

/// Reads `count` bools in chunks, each 0 or 1.
fn skip_bools<R: Read>(input: &mut HeaderReader<'_, R>, count: u64) -> Result<(), FormatError> {
    let mut left = count;
    while left > 0 {
        let chunk_len = left.min(CHUNK_LEN);
        let chunk_offset = input.position;
        let chunk = input.chunk(chunk_len, "a bool value")?;
        if let Some((index, value)) = chunk.iter().enumerate().find(|(_, value)| **value > 1) {
            return Err(error(
                chunk_offset + index as u64,
                format!("bool value {value} is neither 0 nor 1"),
            ));
        }
        left -= chunk_len;
    }
    Ok(())
}

/// A ggml tensor type: how many elements a block holds and its size.
struct GgmlType {
    code: u32,
    name: &'static str,
    block_len: u64,
    block_bytes: u64,
}

const fn ggml_type(code: u32, name: &'static str, block_len: u64, block_bytes: u64) -> GgmlType {
    GgmlType {
        code,
        name,
        block_len,
        block_bytes,
    }
}

/// `QK_K`, the super-block of the k-quants and i-quants.
const QK_K: u64 = 256;

/// `enum ggml_type` with removed slots (4, 5, 31-33, 36-38) left out.
const GGML_TYPES: &[GgmlType] = &[
    ggml_type(0, "F32", 1, 4),
    ggml_type(1, "F16", 1, 2),
    ggml_type(2, "Q4_0", 32, 2 + 16),
    ggml_type(3, "Q4_1", 32, 2 + 2 + 16),
    ggml_type(6, "Q5_0", 32, 2 + 4 + 16),
    ggml_type(7, "Q5_1", 32, 2 + 2 + 4 + 16),
    ggml_type(8, "Q8_0", 32, 2 + 32),
    ggml_type(9, "Q8_1", 32, 2 + 2 + 32),
    ggml_type(10, "Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
    ggml_type(11, "Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
    ggml_type(12, "Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2),
    ggml_type(13, "Q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2),
    ggml_type(14, "Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
    ggml_type(15, "Q8_K", QK_K, 4 + QK_K + 2 * (QK_K / 16)),
    ggml_type(16, "IQ2_XXS", QK_K, 2 + QK_K / 4),
    ggml_type(17, "IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32),
    ggml_type(18, "IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8),
    ggml_type(19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16),
    ggml_type(20, "IQ4_NL", 32, 2 + 16),
    ggml_type(21, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
    ggml_type(22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16),
    ggml_type(23, "IQ4_XS", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2),
    ggml_type(24, "I8", 1, 1),
    ggml_type(25, "I16", 1, 2),
    ggml_type(26, "I32", 1, 4),
    ggml_type(27, "I64", 1, 8),
    ggml_type(28, "F64", 1, 8),
    ggml_type(29, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
    ggml_type(30, "BF16", 1, 2),
    ggml_type(34, "TQ1_0", QK_K, 2 + 4 * 13),
    ggml_type(35, "TQ2_0", QK_K, 2 + QK_K / 4),
    ggml_type(39, "MXFP4", 32, 1 + 16),
    ggml_type(40, "NVFP4", 64, 4 + 32),
    ggml_type(41, "Q1_0", 128, 2 + 128 / 8),
    ggml_type(42, "Q2_0", 64, 2 + 64 / 4),
];

fn find_ggml_type(code: u32) -> Option<&'static GgmlType> {
    GGML_TYPES.iter().find(|ggml_type| ggml_type.code == code)
}

/// A tensor info, reduced to what the data check needs.
struct TensorInfo {
    name: String,
    /// Where its info starts in the file, for errors found later.
    info_offset: u64,
    offset: u64,
    size: u64,
}

fn read_tensor_infos<R: Read>(
    input: &mut HeaderReader<'_, R>,
    tensor_count: u64,
    alignment: u64,
) -> Result<Vec<TensorInfo>, FormatError> {
    let mut names = HashSet::new();
    let mut tensors = Vec::new();
    for _ in 0..tensor_count {
        let info_offset = input.position;
        let name = input.string("a tensor name", MAX_TENSOR_NAME_LEN)?;
        if names.contains(&name) {
            return Err(error(
                info_offset,
                format!("duplicate tensor name {name:?}"),
            ));
        }
        let dims_offset = input.position;
        let n_dims = input.u32("a dimension count")?;
        let n_dims = usize::try_from(n_dims)
            .ok()
            .filter(|n| (1..=MAX_DIMS).contains(n))
            .ok_or_else(|| {
                error(
                    dims_offset,
                    format!("tensor {name:?} has {n_dims} dimensions, not 1 to {MAX_DIMS}"),
                )
            })?;
        let mut dims = [1u64; MAX_DIMS];
        for dim in dims.iter_mut().take(n_dims) {
            *dim = input.u64("a dimension")?;
        }
        let dims = &dims[..n_dims];
        let type_offset = input.position;
        let code = input.u32("a tensor type")?;
        let ggml_type = find_ggml_type(code).ok_or_else(|| {
            error(
                type_offset,
                format!("tensor {name:?} has unknown ggml type {code}"),
            )
        })?;
        let size = tensor_size(dims, ggml_type)
            .map_err(|reason| error(dims_offset, format!("tensor {name:?}: {reason}")))?;
        let offset_offset = input.position;
        let offset = input.u64("a tensor offset")?;
        if !offset.is_multiple_of(alignment) {
            return Err(error(
                offset_offset,
                format!(
                    "tensor {name:?} data offset {offset} is not a multiple of the alignment \
                     {alignment}"
                ),
            ));
        }
        names.insert(name.clone());
        tensors.push(TensorInfo {
            name,
            info_offset,
            offset,
            size,
        });
    }
    Ok(tensors)
}

/// The byte size of a tensor: whole blocks per row, as ggml lays it out.
fn tensor_size(dims: &[u64], ggml_type: &GgmlType) -> Result<u64, String> {
    // ggml counts elements in int64.
    let max_elements = i64::MAX as u64;
    let elements = dims
        .iter()
        .try_fold(1u64, |product, &dim| {
            (dim <= max_elements)
                .then(|| product.checked_mul(dim))
                .flatten()
        })
        .filter(|&elements| elements <= max_elements)
        .ok_or_else(|| format!("dimensions {dims:?} overflow 63 bits"))?;
    let row_len = dims.first().copied().unwrap_or(1);
    if !row_len.is_multiple_of(ggml_type.block_len) {
        return Err(format!(
            "row of {row_len} elements is not a whole number of {} blocks of {}",
            ggml_type.name, ggml_type.block_len
        ));
    }
    (elements / ggml_type.block_len)
        .checked_mul(ggml_type.block_bytes)
        .ok_or_else(|| format!("{elements} {} elements overflow 64 bits", ggml_type.name))
}

/// Every tensor's data must lie in the data section, which starts at the
/// header's end rounded up to the alignment, and no two may overlap.
fn check_tensor_data(
    tensors: &mut [TensorInfo],
    header_end: u64,
    file_len: u64,
    alignment: u64,
) -> Result<(), FormatError> {
    let data_start = header_end.checked_next_multiple_of(alignment);
    let data_len = match data_start.and_then(|start| file_len.checked_sub(start)) {
        Some(len) => len,
        // A file without tensors may end right after its header.
        None if tensors.is_empty() => 0,
        None => {
            return Err(error(
                header_end,
                format!("the data section would start past the end of the file ({file_len} bytes)"),
            ));
        }
    };
    for tensor in tensors.iter() {
        let end = tensor.offset.checked_add(tensor.size);
        if end.is_none_or(|end| end > data_len) {
            return Err(error(
                tensor.info_offset,
                format!(
                    "tensor {:?} needs {} bytes at data offset {}, past the end of the \
                     {data_len}-byte data section",
                    tensor.name, tensor.size, tensor.offset
                ),
            ));
        }
    }
    tensors.sort_by_key(|tensor| (tensor.offset, tensor.size));
    let mut covered = 0u64;
    let mut previous: Option<&str> = None;
    // Empty tensors occupy nothing, so they overlap nothing.
    for tensor in tensors.iter().filter(|tensor| tensor.size > 0) {
        if tensor.offset < covered {
            return Err(error(
                tensor.info_offset,
                format!(
                    "tensor {:?} at data bytes {}..{} overlaps tensor {:?}, which ends at {covered}",
                    tensor.name,
                    tensor.offset,
                    tensor.offset + tensor.size,
                    previous.unwrap_or_default()
                ),
            ));
        }
        covered = tensor.offset + tensor.size;
        previous = Some(&tensor.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::time::{Duration, Instant};

    use super::*;

    const UINT8: u32 = 0;
    const UINT32: u32 = 4;
    const INT32: u32 = 5;
    const BOOL: u32 = 7;
    const STRING: u32 = 8;
    const ARRAY: u32 = 9;
    const UINT64: u32 = 10;
    const FLOAT64: u32 = 12;

    const F32: u32 = 0;
    const Q4_0: u32 = 2;
    const Q4_K: u32 = 12;

    fn gguf_string(text: &str) -> Vec<u8> {
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes
    }

    /// An array value: element type, count, then the encoded elements.
    fn array(element_type: u32, count: u64, elements: &[u8]) -> Vec<u8> {
        let mut bytes = element_type.to_le_bytes().to_vec();
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(elements);
        bytes
    }

    /// Builds a GGUF file piece by piece; the counts follow what was added
    /// unless overridden.
    struct GgufFile {
        version: u32,
        tensor_count: Option<u64>,
        kv_count: Option<u64>,
        metadata: Vec<u8>,
        kvs: u64,
        infos: Vec<u8>,
        tensors: u64,
        alignment: u64,
        data_len: u64,
    }

    impl GgufFile {
        fn new() -> Self {
            GgufFile {
                version: 3,
                tensor_count: None,
                kv_count: None,
                metadata: Vec::new(),
                kvs: 0,
                infos: Vec::new(),
                tensors: 0,
                alignment: DEFAULT_ALIGNMENT,
                data_len: 0,
            }
        }

        fn kv(mut self, key: &str, value_type: u32, value: &[u8]) -> Self {
            self.metadata.extend(gguf_string(key));
            self.metadata.extend(value_type.to_le_bytes());
            self.metadata.extend_from_slice(value);
            self.kvs += 1;
            self
        }

        fn alignment(self, alignment: u32) -> Self {
            let mut file = self.kv(ALIGNMENT_KEY, UINT32, &alignment.to_le_bytes());
            file.alignment = u64::from(alignment);
            file
        }

        fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> Self {
            self.infos.extend(gguf_string(name));
            self.infos.extend((dims.len() as u32).to_le_bytes());
            for dim in dims {
                self.infos.extend(dim.to_le_bytes());
            }
            self.infos.extend(ggml_type.to_le_bytes());
            self.infos.extend(offset.to_le_bytes());
            self.tensors += 1;
            self
        }

        fn data(mut self, len: u64) -> Self {
            self.data_len = len;
            self
        }

        /// The header, without padding or data.
        fn header(&self) -> Vec<u8> {
            let mut bytes = MAGIC.to_vec();
            bytes.extend(self.version.to_le_bytes());
            bytes.extend(self.tensor_count.unwrap_or(self.tensors).to_le_bytes());
            bytes.extend(self.kv_count.unwrap_or(self.kvs).to_le_bytes());
            bytes.extend_from_slice(&self.metadata);
            bytes.extend_from_slice(&self.infos);
            bytes
        }

        fn bytes(&self) -> Vec<u8> {
            let mut bytes = self.header();
            let data_start = (bytes.len() as u64).next_multiple_of(self.alignment);
            bytes.resize((data_start + self.data_len) as usize, 0);
            bytes
        }
    }

    fn check(bytes: &[u8]) -> Result<GgufInfo, FormatError> {
        check_gguf(&mut Cursor::new(bytes), bytes.len() as u64)
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
        assert_eq!(err.format, "GGUF");
    }

    /// Where the metadata starts: magic, version and both counts.
    const METADATA_START: u64 = 4 + 4 + 8 + 8;

    #[test]
    fn minimal_file_is_valid() {
        let info = check(&GgufFile::new().bytes()).unwrap();
        assert_eq!(
            info,
            GgufInfo {
                version: 3,
                tensors: 0,
                metadata: 0,
                alignment: 32,
                architecture: None,
            }
        );
    }

    #[test]
    fn minimal_file_without_padding_is_valid() {
        let header = GgufFile::new().header();
        assert_eq!(header.len(), 24);
        assert_eq!(check(&header).unwrap().tensors, 0);
    }

    #[test]
    fn version_2_is_valid() {
        let mut file = GgufFile::new();
        file.version = 2;
        assert_eq!(check(&file.bytes()).unwrap().version, 2);
    }

    #[test]
    fn file_with_metadata_and_tensors_is_valid() {
        let strings = [gguf_string("a"), gguf_string("bc")].concat();
        let nested = array(
            ARRAY,
            2,
            &[array(UINT8, 2, &[1, 2]), array(UINT8, 0, &[])].concat(),
        );
        let file = GgufFile::new()
            .kv("general.architecture", STRING, &gguf_string("llama"))
            .kv("general.name", STRING, &gguf_string("tiny"))
            .kv("llama.block_count", UINT32, &2u32.to_le_bytes())
            .kv("llama.rope.freq_base", FLOAT64, &1e4f64.to_le_bytes())
            .kv("llama.use_parallel_residual", BOOL, &[1])
            .kv("tokenizer.ggml.tokens", ARRAY, &array(STRING, 2, &strings))
            .kv("tokenizer.ggml.scores", ARRAY, &array(BOOL, 3, &[0, 1, 0]))
            .kv("nested", ARRAY, &nested)
            .alignment(64)
            // 8 x 4 f32 = 128 bytes; 256 x 2 Q4_K = 2 blocks of 144 bytes.
            .tensor("token_embd.weight", &[8, 4], F32, 0)
            .tensor("blk.0.attn_q.weight", &[256, 2], Q4_K, 128)
            .tensor("output_norm.weight", &[32], Q4_0, 448)
            .tensor("empty", &[0], F32, 0)
            .data(448 + 18);
        let bytes = file.bytes();
        let mut reader = Cursor::new(&bytes);
        let info = check_gguf(&mut reader, bytes.len() as u64).unwrap();
        assert_eq!(
            info,
            GgufInfo {
                version: 3,
                tensors: 4,
                metadata: 9,
                alignment: 64,
                architecture: Some("llama".to_owned()),
            }
        );
        // Only the header is read, never the data.
        assert_eq!(reader.position(), file.header().len() as u64);
    }

    #[test]
    fn architecture_of_another_type_is_skipped() {
        let file = GgufFile::new().kv("general.architecture", UINT32, &7u32.to_le_bytes());
        let info = check(&file.bytes()).unwrap();
        assert_eq!(info.architecture, None);
        assert_eq!(info.metadata, 1);
    }

    #[test]
    fn bad_magic_is_refused() {
        let mut bytes = GgufFile::new().bytes();
        bytes[..4].copy_from_slice(b"GGML");
        let err = refused(&bytes);
        assert_reason(&err, "bad magic");
        assert_eq!(err.offset, 0);
        assert_reason(
            &refused(b"GG"),
            "the magic needs 4 bytes but the file has 2 left",
        );
    }

    #[test]
    fn version_1_is_refused_clearly() {
        let mut file = GgufFile::new();
        file.version = 1;
        let err = refused(&file.bytes());
        assert_reason(&err, "GGUF version 1 is not supported");
        assert_eq!(err.offset, 4);
        file.version = 4;
        assert_reason(&refused(&file.bytes()), "unsupported GGUF version 4");
        // A big-endian file's version reads as a huge number.
        file.version = 3u32.swap_bytes();
        assert_reason(&refused(&file.bytes()), "unsupported GGUF version");
    }

    #[test]
    fn tensor_count_2_pow_60_fails_fast() {
        let mut file = GgufFile::new();
        file.tensor_count = Some(1 << 60);
        let started = Instant::now();
        let err = refused(&file.bytes());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_reason(&err, "tensor count 1152921504606846976 exceeds the limit");
        assert_eq!(err.offset, 8);
    }

    #[test]
    fn counts_beyond_what_the_file_holds_are_refused() {
        let mut file = GgufFile::new();
        file.tensor_count = Some(MAX_TENSORS);
        let started = Instant::now();
        let err = refused(&file.bytes());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_reason(&err, "1000000 tensors and 0 metadata pairs need at least");
        let mut file = GgufFile::new();
        file.kv_count = Some(3);
        assert_reason(&refused(&file.bytes()), "need at least 39 bytes");
    }

    #[test]
    fn metadata_count_over_the_limit_is_refused() {
        let mut file = GgufFile::new();
        file.kv_count = Some(MAX_KV + 1);
        let err = refused(&file.bytes());
        assert_reason(&err, "metadata count 1000001 exceeds the limit");
        assert_eq!(err.offset, 16);
    }

    #[test]
    fn string_length_2_pow_62_is_refused() {
        let mut key = (1u64 << 62).to_le_bytes().to_vec();
        key.extend_from_slice(b"k");
        let mut file = GgufFile::new();
        file.kv_count = Some(1);
        file.metadata = key;
        file.metadata.extend(UINT8.to_le_bytes());
        file.metadata.push(0);
        let err = refused(&file.bytes());
        assert_reason(&err, "a metadata key is 4611686018427387904 bytes long");
        assert_eq!(err.offset, METADATA_START);
        let value = (1u64 << 62).to_le_bytes();
        let file = GgufFile::new().kv("k", STRING, &value);
        assert_reason(
            &refused(&file.bytes()),
            "a string value is 4611686018427387904 bytes",
        );
    }

    #[test]
    fn string_longer_than_the_file_is_refused() {
        let mut value = 100u64.to_le_bytes().to_vec();
        value.extend_from_slice(b"short");
        let file = GgufFile::new().kv("k", STRING, &value);
        assert_reason(
            &refused(&file.header()),
            "needs 100 bytes but the file has 5 left",
        );
    }

    #[test]
    fn string_that_is_not_utf8_is_refused() {
        let mut value = 3u64.to_le_bytes().to_vec();
        value.extend_from_slice(&[b'a', 0xc3, 0x28]);
        let file = GgufFile::new().kv("k", STRING, &value);
        let err = refused(&file.bytes());
        assert_reason(&err, "a string value is not valid UTF-8");
        // magic..counts, key (8 + 1), type (4), length (8), then "a".
        assert_eq!(err.offset, METADATA_START + 9 + 4 + 8 + 1);
    }

    #[test]
    fn bool_value_2_is_refused() {
        let file = GgufFile::new().kv("flag", BOOL, &[2]);
        let err = refused(&file.bytes());
        assert_reason(&err, "bool value 2 is neither 0 nor 1");
        assert_eq!(err.offset, METADATA_START + 8 + 4 + 4);
        let file = GgufFile::new().kv("flags", ARRAY, &array(BOOL, 3, &[1, 0, 7]));
        let err = refused(&file.bytes());
        assert_reason(&err, "bool value 7");
        assert_eq!(err.offset, METADATA_START + 8 + 5 + 4 + 12 + 2);
    }

    #[test]
    fn unknown_value_type_is_refused() {
        let file = GgufFile::new().kv("k", 13, &[0; 8]);
        let err = refused(&file.bytes());
        assert_reason(&err, r#"metadata "k" has unknown value type 13"#);
        assert_eq!(err.offset, METADATA_START + 9);
        let file = GgufFile::new().kv("k", ARRAY, &array(99, 0, &[]));
        assert_reason(&refused(&file.bytes()), "array has unknown element type 99");
    }

    #[test]
    fn huge_array_count_is_refused() {
        let file = GgufFile::new().kv("k", ARRAY, &array(UINT64, 1 << 61, &[]));
        let started = Instant::now();
        let err = refused(&file.bytes());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_reason(
            &err,
            "array of 2305843009213693952 UINT64 values cannot fit",
        );
        // One element more than the bytes left.
        let file = GgufFile::new().kv("k", ARRAY, &array(INT32, 3, &[0; 8]));
        assert_reason(
            &refused(&file.header()),
            "array of 3 INT32 values cannot fit in the 8",
        );
    }

    #[test]
    fn large_arrays_are_skipped_in_chunks() {
        let values = vec![0u8; 3 * CHUNK_LEN as usize + 5];
        let file = GgufFile::new()
            .kv("k", ARRAY, &array(UINT8, values.len() as u64, &values))
            .kv("b", ARRAY, &array(BOOL, values.len() as u64, &values));
        assert_eq!(check(&file.bytes()).unwrap().metadata, 2);
    }

    #[test]
    fn arrays_nest_to_a_bounded_depth() {
        let mut value = array(UINT8, 1, &[9]);
        for _ in 1..MAX_ARRAY_DEPTH {
            value = array(ARRAY, 1, &value);
        }
        let file = GgufFile::new().kv("deep", ARRAY, &value);
        assert_eq!(check(&file.bytes()).unwrap().metadata, 1);
        let file = GgufFile::new().kv("deeper", ARRAY, &array(ARRAY, 1, &value));
        assert_reason(&refused(&file.bytes()), "arrays nest deeper than 4 levels");
    }

    #[test]
    fn duplicate_key_is_refused() {
        let file = GgufFile::new()
            .kv("a", UINT8, &[1])
            .kv("b", UINT8, &[1])
            .kv("a", UINT32, &[0; 4]);
        let err = refused(&file.bytes());
        assert_reason(&err, r#"duplicate metadata key "a""#);
        assert_eq!(err.offset, METADATA_START + 2 * (9 + 4 + 1));
    }

    #[test]
    fn alignment_must_be_a_uint32_power_of_two() {
        let file = GgufFile::new().kv(ALIGNMENT_KEY, UINT64, &32u64.to_le_bytes());
        assert_reason(
            &refused(&file.bytes()),
            "general.alignment is UINT64, not UINT32",
        );
        for bad in [0u32, 24] {
            let file = GgufFile::new().kv(ALIGNMENT_KEY, UINT32, &bad.to_le_bytes());
            let err = refused(&file.bytes());
            assert_reason(&err, "is not a non-zero power of two");
        }
        let file = GgufFile::new()
            .alignment(8)
            .tensor("t", &[2], F32, 8)
            .data(16);
        assert_eq!(check(&file.bytes()).unwrap().alignment, 8);
    }

    #[test]
    fn unknown_ggml_type_is_refused() {
        for removed in [4, 5, 31, 33, 36, 38, 43, u32::MAX] {
            let file = GgufFile::new().tensor("t", &[32], removed, 0).data(64);
            let err = refused(&file.bytes());
            assert_reason(&err, &format!("unknown ggml type {removed}"));
            assert_eq!(err.offset, METADATA_START + 9 + 4 + 8);
        }
    }

    #[test]
    fn dimension_count_must_be_1_to_4() {
        let file = GgufFile::new().tensor("t", &[], F32, 0);
        assert_reason(&refused(&file.bytes()), "has 0 dimensions, not 1 to 4");
        let file = GgufFile::new().tensor("t", &[1; 5], F32, 0).data(4);
        assert_reason(&refused(&file.bytes()), "has 5 dimensions");
        let file = GgufFile::new().tensor("t", &[1; 4], F32, 0).data(4);
        assert_eq!(check(&file.bytes()).unwrap().tensors, 1);
    }

    #[test]
    fn tensor_size_overflow_is_refused() {
        let file = GgufFile::new().tensor("t", &[1 << 40, 1 << 40], F32, 0);
        assert_reason(&refused(&file.bytes()), "overflow 63 bits");
        let file = GgufFile::new().tensor("t", &[1 << 62], F32, 0);
        assert_reason(&refused(&file.bytes()), "elements overflow 64 bits");
        let file = GgufFile::new().tensor("t", &[0, u64::MAX], F32, 0);
        assert_reason(&refused(&file.bytes()), "overflow 63 bits");
    }

    #[test]
    fn rows_must_be_whole_blocks() {
        let file = GgufFile::new().tensor("t", &[48, 2], Q4_0, 0).data(128);
        assert_reason(
            &refused(&file.bytes()),
            "row of 48 elements is not a whole number",
        );
        // Whole elements are not enough: the row itself must be whole blocks.
        let file = GgufFile::new().tensor("t", &[16, 2], Q4_0, 0).data(128);
        assert_reason(&refused(&file.bytes()), "row of 16 elements");
    }

    #[test]
    fn misaligned_offset_is_refused() {
        let file = GgufFile::new().tensor("t", &[4], F32, 16).data(64);
        let err = refused(&file.bytes());
        assert_reason(&err, "data offset 16 is not a multiple of the alignment 32");
        assert_eq!(err.offset, METADATA_START + 9 + 4 + 8 + 4);
    }

    #[test]
    fn tensor_past_the_end_of_the_file_is_refused() {
        let file = GgufFile::new().tensor("t", &[8], F32, 0).data(31);
        let err = refused(&file.bytes());
        assert_reason(
            &err,
            r#"tensor "t" needs 32 bytes at data offset 0, past the end"#,
        );
        assert_eq!(err.offset, METADATA_START);
        let file = GgufFile::new().tensor("t", &[8], F32, 1 << 63).data(32);
        assert_reason(
            &refused(&file.bytes()),
            "past the end of the 32-byte data section",
        );
        // Tensors, but the data section would begin after the file ends.
        let file = GgufFile::new().tensor("t", &[0], F32, 0);
        assert_reason(&refused(&file.header()), "would start past the end");
    }

    #[test]
    fn overlapping_tensors_are_refused() {
        let file = GgufFile::new()
            .tensor("a", &[16], F32, 0)
            .tensor("b", &[16], F32, 32)
            .data(96);
        let err = refused(&file.bytes());
        assert_reason(
            &err,
            r#"tensor "b" at data bytes 32..96 overlaps tensor "a""#,
        );
        assert!(err.offset > METADATA_START);
        // Touching is not overlapping.
        let file = GgufFile::new()
            .tensor("a", &[8], F32, 0)
            .tensor("b", &[8], F32, 32)
            .data(64);
        assert_eq!(check(&file.bytes()).unwrap().tensors, 2);
    }

    #[test]
    fn duplicate_tensor_name_is_refused() {
        let file = GgufFile::new()
            .tensor("t", &[8], F32, 0)
            .tensor("t", &[8], F32, 32)
            .data(64);
        let err = refused(&file.bytes());
        assert_reason(&err, r#"duplicate tensor name "t""#);
        assert_eq!(err.offset, METADATA_START + 9 + 4 + 8 + 4 + 8);
    }

    #[test]
    fn tensor_name_of_64_bytes_is_refused() {
        let name = "n".repeat(64);
        let file = GgufFile::new().tensor(&name, &[8], F32, 0).data(32);
        assert_reason(&refused(&file.bytes()), "a tensor name is 64 bytes long");
        let file = GgufFile::new().tensor(&name[1..], &[8], F32, 0).data(32);
        assert_eq!(check(&file.bytes()).unwrap().tensors, 1);
    }

    #[test]
    fn reader_shorter_than_the_claimed_file_is_refused() {
        let bytes = GgufFile::new().kv("k", UINT32, &[0; 4]).header();
        let cut = &bytes[..bytes.len() - 2];
        let err = check_gguf(&mut Cursor::new(cut), 1 << 20).unwrap_err();
        assert_reason(&err, "cannot read a value");
    }

    #[test]
    fn block_sizes_match_ggml() {
        let expected: &[(&str, u64, u64)] = &[
            ("Q8_1", 32, 36),
            ("Q2_K", 256, 84),
            ("Q3_K", 256, 110),
            ("Q4_K", 256, 144),
            ("Q5_K", 256, 176),
            ("Q6_K", 256, 210),
            ("Q8_K", 256, 292),
            ("IQ2_XXS", 256, 66),
            ("IQ2_XS", 256, 74),
            ("IQ3_XXS", 256, 98),
            ("IQ1_S", 256, 50),
            ("IQ3_S", 256, 110),
            ("IQ2_S", 256, 82),
            ("IQ4_XS", 256, 136),
            ("IQ1_M", 256, 56),
            ("TQ1_0", 256, 54),
            ("TQ2_0", 256, 66),
            ("MXFP4", 32, 17),
            ("NVFP4", 64, 36),
            ("Q1_0", 128, 18),
            ("Q2_0", 64, 18),
        ];
        for &(name, block_len, block_bytes) in expected {
            let ggml_type = GGML_TYPES.iter().find(|t| t.name == name).unwrap();
            assert_eq!(
                (ggml_type.block_len, ggml_type.block_bytes),
                (block_len, block_bytes),
                "{name}"
            );
        }
        let mut codes: Vec<u32> = GGML_TYPES.iter().map(|t| t.code).collect();
        codes.dedup();
        assert_eq!(codes.len(), 35);
    }
}
