//! The safetensors container: writing a header, and reading one back with
//! every rule checked (for tests of anything that writes or copies shards).
//!
//! Layout: an 8-byte little-endian header length, a JSON header (padded
//! with spaces to a multiple of 8 bytes), then the tensors' bytes, each
//! tensor at `data_offsets` relative to the end of the header, contiguous.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde_json::Value;

/// One tensor entry of a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name.
    pub name: String,
    /// `BF16`, `F32`, ...
    pub dtype: String,
    /// The dimensions.
    pub shape: Vec<u64>,
    /// Start and end of its bytes, relative to the end of the header.
    pub data_offsets: (u64, u64),
}

/// A parsed and checked header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Tensors in data order.
    pub tensors: Vec<TensorEntry>,
    /// `__metadata__`, when present.
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// Where the tensors' bytes start in the file (8 + header length).
    pub data_start: u64,
}

/// Bytes per element of a safetensors dtype name.
pub fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// The bytes that start a file holding `tensors` (name, dtype, shape) in
/// this order: length prefix and padded JSON header. The tensors' data
/// follows, contiguous, in the same order.
pub(crate) fn header_bytes(tensors: &[(&str, &str, &[u64])]) -> Vec<u8> {
    let mut json = String::from(r#"{"__metadata__":{"format":"pt"}"#);
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let size = dtype_size(dtype).unwrap_or(1) * shape.iter().product::<u64>();
        let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
        // Tensor names here are ASCII without quotes or backslashes.
        let _ = write!(
            json,
            r#","{name}":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{offset},{}]}}"#,
            dims.join(","),
            offset + size
        );
        offset += size;
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Reads and checks the header of the safetensors file at `path`: a sane
/// length, JSON, known dtypes, offsets that match dtype size x shape, are
/// contiguous from 0 and end exactly at the end of the file.
pub fn read_header(path: &Path) -> io::Result<Header> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > 100 << 20 || 8 + header_len > file_len {
        return Err(invalid(format!(
            "header length {header_len} does not fit a {file_len}-byte file"
        )));
    }
    let mut text = vec![0u8; header_len as usize];
    file.read_exact(&mut text)?;
    let value: Value =
        serde_json::from_slice(&text).map_err(|e| invalid(format!("header is not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(invalid("header is not a JSON object".into()));
    };
    let mut metadata = None;
    let mut tensors = Vec::new();
    for (name, entry) in map {
        if name == "__metadata__" {
            match entry {
                Value::Object(m) if m.values().all(Value::is_string) => metadata = Some(m),
                _ => return Err(invalid("__metadata__ is not a string map".into())),
            }
            continue;
        }
        tensors.push(tensor_entry(name, &entry)?);
    }
    tensors.sort_by_key(|t| t.data_offsets);
    let mut expected_start = 0;
    for t in &tensors {
        let (start, end) = t.data_offsets;
        if start != expected_start {
            return Err(invalid(format!(
                "{}: data starts at {start}, expected {expected_start} (gap or overlap)",
                t.name
            )));
        }
        expected_start = end;
    }
    let data_start = 8 + header_len;
    if data_start + expected_start != file_len {
        return Err(invalid(format!(
            "tensors end at {} but the file has {file_len} bytes",
            data_start + expected_start
        )));
    }
    Ok(Header {
        tensors,
        metadata,
        data_start,
    })
}

fn tensor_entry(name: String, entry: &Value) -> io::Result<TensorEntry> {
    let dtype = entry["dtype"]
        .as_str()
        .ok_or_else(|| invalid(format!("{name}: no dtype")))?
        .to_string();
    let element = dtype_size(&dtype).ok_or_else(|| invalid(format!("{name}: dtype {dtype}")))?;
    let shape: Vec<u64> = entry["shape"]
        .as_array()
        .ok_or_else(|| invalid(format!("{name}: no shape")))?
        .iter()
        .map(|d| {
            d.as_u64()
                .ok_or_else(|| invalid(format!("{name}: bad dim")))
        })
        .collect::<io::Result<_>>()?;
    let offsets = entry["data_offsets"]
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| invalid(format!("{name}: no data_offsets pair")))?;
    let (Some(start), Some(end)) = (offsets[0].as_u64(), offsets[1].as_u64()) else {
        return Err(invalid(format!("{name}: data_offsets are not integers")));
    };
    let size = shape
        .iter()
        .try_fold(element, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid(format!("{name}: size overflows")))?;
    if end < start || end - start != size {
        return Err(invalid(format!(
            "{name}: {dtype} {shape:?} needs {size} bytes, data_offsets [{start}, {end}]"
        )));
    }
    Ok(TensorEntry {
        name,
        dtype,
        shape,
        data_offsets: (start, end),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_and_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let mut bytes = header_bytes(&[("a", "BF16", &[3, 5]), ("b.weight", "F32", &[7])]);
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(header_len % 8, 0);
        assert_eq!(bytes.len() as u64, 8 + header_len);
        bytes.extend(std::iter::repeat_n(0u8, 3 * 5 * 2 + 7 * 4));
        std::fs::write(&path, &bytes).unwrap();
        let header = read_header(&path).unwrap();
        assert_eq!(header.tensors.len(), 2);
        assert_eq!(header.tensors[1].data_offsets, (30, 58));
        assert_eq!(header.metadata.unwrap()["format"], "pt");

        // One byte short: refused.
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        assert!(read_header(&path).is_err());
    }
}
