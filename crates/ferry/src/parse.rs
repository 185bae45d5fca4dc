//! clap value parsers: each flag value is checked once, while the command
//! line is parsed, so a bad value is a usage error (exit 2) naming its flag.

use std::time::Duration;

use ferry_registry::platform::Platform;

/// `os/arch[/variant]` (`linux/arm64/v8`).
pub fn platform(value: &str) -> Result<Platform, String> {
    value.parse()
}

/// A size in bytes: `123`, `64K`, `64KiB`, `1.5M`, `2 GB`. K, M, G and T are
/// powers of 1024 whether or not an `i` follows.
pub fn size(value: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(value.trim())
        .map_err(|e| format!("{e} (expected a size such as 4096, 64KiB or 1.5G)"))
}

/// `ORG/NAME[@REV]` of `--from-hf-cache`.
pub fn hf_request(value: &str) -> Result<ferry_store::pack::hf_cache::Request, String> {
    ferry_store::pack::hf_cache::parse_request(value).map_err(|e| e.to_string())
}

/// A duration in one style for every flag: `90s`, `15m`, `24h`, `1h 30m`.
pub fn duration(value: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(value)
        .map_err(|e| format!("{e} (expected a duration such as 30s, 15m or 24h)"))?;
    if duration.is_zero() {
        return Err("must be longer than zero".to_string());
    }
    Ok(duration)
}

/// A count that must be at least one (a limit of zero would refuse everything).
pub fn positive(value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e} (expected a whole number such as 64)")),
    }
}

/// An RFC 3339 date-time, returned in its normalized form.
pub fn rfc3339(value: &str) -> Result<String, String> {
    use time::format_description::well_known::Rfc3339;
    let parsed = time::OffsetDateTime::parse(value, &Rfc3339).map_err(|e| {
        format!("{e} (expected an RFC 3339 date-time such as 2024-05-01T12:00:00Z)")
    })?;
    parsed.format(&Rfc3339).map_err(|e| e.to_string())
}

/// `FILE:MEDIATYPE` for `pack --generic --config`.
pub fn config_file(value: &str) -> Result<ferry_store::pack::generic::ConfigFile, String> {
    value.parse()
}

/// A `KEY=VALUE` annotation; the value may be empty or contain `=`.
pub fn annotation(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some(("", _)) => Err("the key is empty (expected KEY=VALUE)".to_string()),
        Some((key, val)) => Ok((key.to_string(), val.to_string())),
        None => Err("expected KEY=VALUE".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size("123"), Ok(123));
        assert_eq!(size("64K"), Ok(65536));
        assert_eq!(size("64KiB"), Ok(65536));
        assert_eq!(size("64 KB"), Ok(65536));
        assert_eq!(size("1.5M"), Ok(1_572_864));
        assert_eq!(size("2gb"), Ok(2 << 30));
        for bad in ["12parsecs", "", "-1", "K"] {
            let error = size(bad).unwrap_err();
            assert!(error.contains("64KiB"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("24h"), Ok(Duration::from_secs(24 * 3600)));
        assert_eq!(duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(duration("60").unwrap_err().contains("30s"));
        assert!(duration("soon").is_err());
        assert!(duration("0s").unwrap_err().contains("zero"));
    }

    #[test]
    fn times_are_rfc3339_normalized() {
        assert_eq!(
            rfc3339("2024-05-01T12:00:00+00:00").as_deref(),
            Ok("2024-05-01T12:00:00Z")
        );
        assert!(rfc3339("last tuesday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn annotations_split_at_the_first_equals_sign() {
        assert_eq!(annotation("a=1"), Ok(("a".into(), "1".into())));
        assert_eq!(annotation("b=x=y"), Ok(("b".into(), "x=y".into())));
        assert_eq!(annotation("c="), Ok(("c".into(), String::new())));
        assert!(annotation("novalue").is_err());
        assert!(annotation("=v").unwrap_err().contains("empty"));
    }

    #[test]
    fn platforms_need_os_and_arch() {
        assert_eq!(
            platform("linux/arm64/v8").map(|p| p.to_string()).as_deref(),
            Ok("linux/arm64/v8")
        );
        assert!(platform("linux").is_err());
    }
}
