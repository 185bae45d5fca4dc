//! ONNX models: tensors may keep their data in external files named by a
//! `location`; one that leaves the model's directory (absolute, or through
//! `..`) makes loading read any file the loader can. The protobuf is walked
//! field by field (model, graph, node, attribute, tensor) without holding
//! it: tensor data is skipped.

use std::io::{self, Read};

use crate::verdict::{Finding, Verdict};

/// Nesting of messages followed (graphs inside attributes inside nodes).
const MAX_DEPTH: u32 = 64;
/// Longest key or value of an external-data entry kept.
const MAX_ENTRY: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
    SparseTensor,
    Entry,
}

impl Message {
    /// The submessage a length-delimited field holds, if followed.
    fn child(self, field: u64) -> Option<Message> {
        use Message::*;
        match (self, field) {
            (Model, 7) => Some(Graph),
            (Graph, 1) => Some(Node),
            (Graph, 5) => Some(Tensor),
            (Graph, 15) => Some(SparseTensor),
            (Node, 5) => Some(Attribute),
            (Attribute, 5 | 10) => Some(Tensor),
            (Attribute, 6 | 11) => Some(Graph),
            (Attribute, 22 | 23) => Some(SparseTensor),
            (SparseTensor, 1 | 2) => Some(Tensor),
            (Tensor, 13) => Some(Entry),
            _ => None,
        }
    }
}

struct Walker<R> {
    reader: R,
    position: u64,
    findings: Vec<Finding>,
}

/// Scans an ONNX model of `len` bytes.
pub fn scan_onnx<R: Read>(reader: &mut R, len: u64) -> Vec<Finding> {
    let mut walker = Walker {
        reader,
        position: 0,
        findings: Vec::new(),
    };
    if let Err(reason) = walker.message(Message::Model, len, 0) {
        let offset = walker.position;
        walker.findings.push(Finding::new(
            Verdict::Invalid,
            Some(offset),
            format!("onnx: {reason}"),
        ));
    }
    walker.findings
}

impl<R: Read> Walker<R> {
    fn byte(&mut self) -> Result<u8, String> {
        let mut one = [0u8; 1];
        self.reader
            .read_exact(&mut one)
            .map_err(|_| "truncated".to_string())?;
        self.position += 1;
        Ok(one[0])
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    fn skip(&mut self, len: u64) -> Result<(), String> {
        let skipped = io::copy(&mut (&mut self.reader).take(len), &mut io::sink())
            .map_err(|e| e.to_string())?;
        self.position += skipped;
        if skipped == len {
            Ok(())
        } else {
            Err("truncated".into())
        }
    }

    fn bytes(&mut self, len: u64) -> Result<Vec<u8>, String> {
        let mut kept = vec![0u8; len as usize];
        self.reader
            .read_exact(&mut kept)
            .map_err(|_| "truncated".to_string())?;
        self.position += len;
        Ok(kept)
    }

    /// Walks a message of `len` bytes.
    fn message(&mut self, kind: Message, len: u64, depth: u32) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("messages nested deeper than {MAX_DEPTH}"));
        }
        let end = self.position + len;
        let mut entry = (None::<String>, None::<String>);
        let mut locations = Vec::new();
        while self.position < end {
            let key = self.varint()?;
            let (field, wire) = (key >> 3, key & 7);
            match wire {
                0 => {
                    self.varint()?;
                }
                1 => self.skip(8)?,
                5 => self.skip(4)?,
                2 => {
                    let size = self.varint()?;
                    if size > end.saturating_sub(self.position) {
                        return Err(format!("field {field} runs past its message"));
                    }
                    match kind.child(field) {
                        Some(Message::Entry) => {
                            if let Some(location) = self.entry(size)? {
                                locations.push(location);
                            }
                        }
                        Some(child) => self.message(child, size, depth + 1)?,
                        None if kind == Message::Entry && size <= MAX_ENTRY => {
                            let text = String::from_utf8_lossy(&self.bytes(size)?).into_owned();
                            if field == 1 {
                                entry.0 = Some(text);
                            } else if field == 2 {
                                entry.1 = Some(text);
                            }
                        }
                        None => self.skip(size)?,
                    }
                }
                other => return Err(format!("wire type {other} (groups are not ONNX)")),
            }
        }
        if self.position != end {
            return Err("a field runs past its message".into());
        }
        for location in locations {
            if let Some(reason) = escapes(&location) {
                self.findings.push(Finding::new(
                    Verdict::Dangerous,
                    Some(end),
                    format!("external data {location:?} {reason}"),
                ));
            }
        }
        Ok(())
    }

    /// An external-data entry; its value when the key is `location`.
    fn entry(&mut self, size: u64) -> Result<Option<String>, String> {
        let end = self.position + size;
        let (mut key, mut value) = (None, None);
        while self.position < end {
            let tag = self.varint()?;
            let (field, wire) = (tag >> 3, tag & 7);
            if wire != 2 {
                return Err("an external-data entry with a non-string field".into());
            }
            let len = self.varint()?;
            if len > end.saturating_sub(self.position) || len > MAX_ENTRY {
                return Err("an external-data entry too long".into());
            }
            let text = String::from_utf8_lossy(&self.bytes(len)?).into_owned();
            match field {
                1 => key = Some(text),
                2 => value = Some(text),
                _ => {}
            }
        }
        Ok((key.as_deref() == Some("location"))
            .then_some(value)
            .flatten())
    }
}

/// Why a location leaves the model directory, if it does.
fn escapes(location: &str) -> Option<&'static str> {
    if location.starts_with('/') || location.starts_with('\\') || location.contains(':') {
        return Some("is an absolute path");
    }
    if location.split(['/', '\\']).any(|part| part == "..") {
        return Some("climbs out of the model directory");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut value: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn field(number: u64, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(number << 3 | 2, &mut out);
        varint(body.len() as u64, &mut out);
        out.extend_from_slice(body);
        out
    }

    /// model { graph { initializer { external_data { location } } } }
    fn model_with_location(location: &str) -> Vec<u8> {
        let entry = [field(1, b"location"), field(2, location.as_bytes())].concat();
        let tensor = [field(8, b"weight"), field(13, &entry)].concat();
        let graph = field(5, &tensor);
        field(7, &graph)
    }

    #[test]
    fn external_data_must_stay_in_the_model_directory() {
        for safe in ["weights.bin", "data/w.bin"] {
            let model = model_with_location(safe);
            assert!(
                scan_onnx(&mut &model[..], model.len() as u64).is_empty(),
                "{safe}"
            );
        }
        for bad in ["/etc/passwd", "../../secret", "a/../../b", "C:\\x"] {
            let model = model_with_location(bad);
            let findings = scan_onnx(&mut &model[..], model.len() as u64);
            assert_eq!(findings.len(), 1, "{bad}");
            assert_eq!(findings[0].verdict, Verdict::Dangerous);
        }
    }

    #[test]
    fn malformed_protobuf_is_invalid() {
        let mut model = model_with_location("w.bin");
        model.truncate(model.len() - 3);
        let findings = scan_onnx(&mut &model[..], model.len() as u64);
        assert_eq!(findings[0].verdict, Verdict::Invalid);
        let group = [0x0b];
        assert_eq!(scan_onnx(&mut &group[..], 1)[0].verdict, Verdict::Invalid);
    }
}
