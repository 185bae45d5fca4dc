//! Choosing a manifest from an index by platform.

use std::fmt;
use std::str::FromStr;

use ferry_spec::oci::Descriptor;

/// `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture (`amd64`).
    pub architecture: String,
    /// Variant (`v8`).
    pub variant: Option<String>,
}

impl Platform {
    /// The platform ferry runs on, in OCI names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: architecture.to_string(),
            variant: (architecture == "arm64").then(|| "v8".to_string()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(format!(
                "invalid platform {s:?} (expected os/arch[/variant])"
            )),
        }
    }
}

/// Ranks an index entry for `wanted`: exact match first, then the same
/// os/arch with another or no variant, then entries without a platform.
fn rank(entry: &Descriptor, wanted: &Platform) -> Option<u8> {
    let Some(platform) = entry.platform() else {
        return Some(3);
    };
    if platform.os().to_string() != wanted.os
        || platform.architecture().to_string() != wanted.architecture
    {
        return None;
    }
    let variant = platform.variant().clone();
    match (&variant, &wanted.variant) {
        (a, b) if a == b => Some(0),
        (None, _) | (_, None) => Some(1),
        (Some(have), Some(want)) => {
            // Compatible variants: an older variant of the same architecture runs (v7 on v8).
            let number = |v: &str| v.trim_start_matches('v').parse::<u32>().ok();
            match (number(have), number(want)) {
                (Some(h), Some(w)) if h <= w => Some(2),
                _ => None,
            }
        }
    }
}

/// The best entry of an index for `wanted`.
pub fn choose<'a>(entries: &'a [Descriptor], wanted: &Platform) -> Option<&'a Descriptor> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| rank(e, wanted).map(|r| (r, i, e)))
        .min_by_key(|(r, i, _)| (*r, *i))
        .map(|(_, _, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_spec::oci::{Arch, MediaType, Os, PlatformBuilder};

    fn entry(n: u8, platform: Option<(&str, &str, Option<&str>)>) -> Descriptor {
        let digest = ferry_spec::digest::sha256_digest(&[n]);
        let mut d = Descriptor::new(MediaType::ImageManifest, 1, digest);
        if let Some((os, arch, variant)) = platform {
            let mut b = PlatformBuilder::default()
                .os(Os::from(os))
                .architecture(Arch::from(arch));
            if let Some(v) = variant {
                b = b.variant(v.to_string());
            }
            d.set_platform(Some(b.build().unwrap()));
        }
        d
    }

    #[test]
    fn exact_then_compatible_then_platformless() {
        let entries = vec![
            entry(0, None),
            entry(1, Some(("linux", "arm64", Some("v7")))),
            entry(2, Some(("linux", "amd64", None))),
            entry(3, Some(("linux", "arm64", Some("v8")))),
        ];
        let arm64v8: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(
            choose(&entries, &arm64v8).unwrap().size(),
            entries[3].size()
        );
        assert_eq!(
            choose(&entries, &arm64v8).unwrap().digest(),
            entries[3].digest()
        );
        let arm64v9: Platform = "linux/arm64/v9".parse().unwrap();
        assert_eq!(
            choose(&entries, &arm64v9).unwrap().digest(),
            entries[1].digest()
        );
        let amd: Platform = "linux/amd64".parse().unwrap();
        assert_eq!(
            choose(&entries, &amd).unwrap().digest(),
            entries[2].digest()
        );
        let wasm: Platform = "wasip1/wasm".parse().unwrap();
        assert_eq!(
            choose(&entries, &wasm).unwrap().digest(),
            entries[0].digest()
        );
        assert!(choose(&entries[1..], &wasm).is_none());
        assert!("linux".parse::<Platform>().is_err());
    }
}
