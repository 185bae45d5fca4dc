//! NumPy `.npy` arrays: an object array's data is a pickle, unpickled by
//! `numpy.load(allow_pickle=True)`; other arrays are plain bytes.

use std::io::Read;

use crate::pickle::{PickleReport, scan_pickle};
use crate::verdict::{Finding, Verdict};

/// Longest header read (NumPy itself refuses headers over 10,000 bytes by
/// default).
pub const MAX_HEADER: usize = 1 << 20;

/// The findings of the header, and the scan of the pickle an object array
/// carries.
pub fn scan_npy<R: Read>(mut reader: R) -> (Vec<Finding>, Option<PickleReport>) {
    let invalid = |offset: u64, reason: String| {
        (
            vec![Finding::new(Verdict::Invalid, Some(offset), reason)],
            None,
        )
    };
    let mut preamble = [0u8; 8];
    if reader.read_exact(&mut preamble).is_err() || &preamble[..6] != b"\x93NUMPY" {
        return invalid(0, "npy: no \\x93NUMPY magic".into());
    }
    let header_len = match preamble[6] {
        1 => {
            let mut len = [0u8; 2];
            if reader.read_exact(&mut len).is_err() {
                return invalid(8, "npy: truncated header length".into());
            }
            usize::from(u16::from_le_bytes(len))
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            if reader.read_exact(&mut len).is_err() {
                return invalid(8, "npy: truncated header length".into());
            }
            u32::from_le_bytes(len) as usize
        }
        major => return invalid(6, format!("npy: version {major} (known: 1 to 3)")),
    };
    if header_len > MAX_HEADER {
        return invalid(
            8,
            format!("npy: a {header_len}-byte header, more than {MAX_HEADER}"),
        );
    }
    let mut header = vec![0u8; header_len];
    if reader.read_exact(&mut header).is_err() {
        return invalid(10, "npy: truncated header".into());
    }
    let Ok(header) = String::from_utf8(header) else {
        return invalid(10, "npy: the header is not text".into());
    };
    if !holds_objects(&header) {
        return (Vec::new(), None);
    }
    let finding = Finding::new(
        Verdict::Suspicious,
        Some(0),
        "an object array: its data is a pickle, loaded only with allow_pickle=True",
    );
    (vec![finding], Some(scan_pickle(reader)))
}

/// True when the header may describe objects: any quoted token of the
/// whole header is an object type code (`O`, `|O`, `O8`) or `object`. Read
/// this widely on purpose: a field named `fortran_order` or an unusual
/// spelling must not hide an object array (a false positive only costs
/// scanning the data as a pickle).
fn holds_objects(header: &str) -> bool {
    header.split(['\'', '"']).skip(1).step_by(2).any(|quoted| {
        let code = quoted.trim_start_matches(['|', '<', '>', '=']);
        code.eq_ignore_ascii_case("object")
            || code
                .strip_prefix(['O', 'o'])
                .is_some_and(|digits| digits.chars().all(|c| c.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, data: &[u8]) -> Vec<u8> {
        let header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}\n");
        let mut file = b"\x93NUMPY\x01\x00".to_vec();
        file.extend_from_slice(&(header.len() as u16).to_le_bytes());
        file.extend_from_slice(header.as_bytes());
        file.extend_from_slice(data);
        file
    }

    #[test]
    fn plain_arrays_are_safe_and_object_arrays_are_scanned() {
        let (findings, pickle) = scan_npy(&npy("'<f4'", &[0; 4])[..]);
        assert!(findings.is_empty() && pickle.is_none());
        let (findings, pickle) = scan_npy(&npy("'|O'", b"cposix\nsystem\n.")[..]);
        assert_eq!(findings[0].verdict, Verdict::Suspicious);
        assert_eq!(pickle.unwrap().verdict(), Verdict::Dangerous);
        let structured = "[('a', '<f4'), ('b', '|O')]";
        assert!(scan_npy(&npy(structured, b"N.")[..]).1.is_some());
        assert!(!holds_objects(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}"
        ));
    }

    #[test]
    fn malformed_headers_are_invalid() {
        for bad in [
            &b"\x93NUMPX\x01\x00"[..],
            b"\x93NUMPY\x09\x00\x00\x00",
            b"\x93NUMPY\x01\x00\xff\xff{",
        ] {
            let (findings, _) = scan_npy(bad);
            assert_eq!(findings[0].verdict, Verdict::Invalid, "{bad:?}");
        }
    }
}
