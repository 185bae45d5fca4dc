//! Repository-name grammar of the distribution spec, shared by the client
//! (references users type) and the registry (names in URLs).

/// True for a repository name per the distribution spec:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
/// at most 255 characters.
pub fn is_valid_repository(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.split('/').all(valid_component)
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::is_valid_repository;

    #[test]
    fn repository_grammar() {
        for ok in ["a", "library/ubuntu", "a-b/c__d/e.f", "a--b", "x0/y1"] {
            assert!(is_valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "A", "UP/x", "a/", "/a", "a//b", "a/../b", "a_", "a___b", "a.-b", "a b",
        ] {
            assert!(!is_valid_repository(bad), "{bad}");
        }
        assert!(!is_valid_repository(&"a".repeat(256)));
    }
}
