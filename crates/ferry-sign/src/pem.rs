//! PEM blocks in and out. Decoding is lenient about line width (cosign and
//! Go write 64 columns, some tools 76) and skips `EC PARAMETERS` blocks that
//! `openssl ecparam -genkey` puts before the key.

use pem_rfc7468::{Decoder, LineEnding};

use crate::error::{Result, SignError};

/// Key files and public keys are small; anything larger is not a key.
pub(crate) const MAX_PEM_SIZE: usize = 64 * 1024;

/// The first PEM block of `text` other than `EC PARAMETERS`: its label and
/// decoded bytes.
pub(crate) fn decode(text: &str, what: &'static str) -> Result<(String, Vec<u8>)> {
    if text.len() > MAX_PEM_SIZE {
        return Err(SignError::TooLarge {
            what,
            size: text.len(),
            limit: MAX_PEM_SIZE,
        });
    }
    let mut rest = text;
    loop {
        let start = rest
            .find("-----BEGIN ")
            .ok_or_else(|| SignError::malformed(what, "no PEM block (-----BEGIN ...-----)"))?;
        let block = &rest[start..];
        let label_end = block[11..]
            .find("-----")
            .ok_or_else(|| SignError::malformed(what, "unterminated PEM header"))?;
        let label = &block[11..11 + label_end];
        let footer = format!("-----END {label}-----");
        let end = block
            .find(&footer)
            .ok_or_else(|| SignError::malformed(what, format!("no {footer} line")))?
            + footer.len();
        if label == "EC PARAMETERS" {
            rest = &block[end..];
            continue;
        }
        let mut decoder = Decoder::new_detect_wrap(&block.as_bytes()[..end])
            .map_err(|e| SignError::malformed(what, e))?;
        let mut bytes = Vec::new();
        decoder
            .decode_to_end(&mut bytes)
            .map_err(|e| SignError::malformed(what, e))?;
        return Ok((label.to_string(), bytes));
    }
}

/// A PEM block with 64-column lines and a trailing newline, as Go and
/// Python's `cryptography` write it (model_signing hashes these exact bytes).
pub(crate) fn encode(label: &str, bytes: &[u8]) -> String {
    // Only fails for labels that are not valid PEM labels; ours are constants.
    pem_rfc7468::encode_string(label, LineEnding::LF, bytes).unwrap_or_default()
}
