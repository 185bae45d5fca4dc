//! `ferry attach` and `ferry discover`.

use std::collections::BTreeMap;
use std::io::Write;

use ferry_registry::client::Endpoint;
use ferry_registry::referrers::{
    self, AttachOptions, FallbackPolicy, ReferrerNode, list_referrers, referrer_tree,
    resolve_descriptor,
};
use ferry_spec::oci::Descriptor;
use ferry_store::index::normalize_reference;

use super::transfer::{client, runtime};
use crate::cli::{AttachArgs, DiscoverArgs};
use crate::exit::{Exit, usage_error};
use crate::output::print_json;
use crate::progress::TransferBar;
use crate::report::{AttachReport, DiscoverReport, Referrer, Subject};

pub fn attach(args: &AttachArgs, quiet: bool) -> anyhow::Result<Exit> {
    let subject = normalize_reference(&args.reference)?;
    let options = AttachOptions {
        artifact_type: args.artifact_type.clone(),
        files: args.files.clone(),
        layer_media_type: args.media_type.clone(),
        annotations: annotation_map(&args.annotations)?,
        concurrency: args.transport.concurrency,
        fallback: FallbackPolicy::default(),
    };
    let client = client(&args.transport)?;
    let bar = TransferBar::new(quiet, "attaching");
    let result = runtime()?.block_on(referrers::attach(&client, &subject, &options, &bar));
    bar.finish();
    let attached = result?;
    if args.json {
        print_json(&AttachReport {
            reference: attached.reference.clone(),
            digest: attached.descriptor.digest().to_string(),
            artifact_type: args.artifact_type.clone(),
            subject: Subject {
                reference: subject.whole(),
                media_type: attached.subject.media_type().to_string(),
                digest: attached.subject.digest().to_string(),
                size: attached.subject.size(),
            },
            referrers_api: attached.fallback.is_none(),
            fallback_tag: attached.fallback.as_ref().map(|f| f.tag.clone()),
            fallback_attempts: attached.fallback.as_ref().map(|f| f.attempts),
        })?;
    } else {
        println!("{}", attached.reference);
        if let Some(fallback) = &attached.fallback
            && !quiet
        {
            eprintln!(
                "note: {} has no referrers API; listed the referrer under tag {}",
                subject.registry(),
                fallback.tag
            );
        }
    }
    Ok(Exit::Ok)
}

/// The `--annotation` pairs (clap checked each); a key given twice is a
/// usage error, since which value was meant is unknown.
pub(super) fn annotation_map(
    pairs: &[(String, String)],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut annotations = BTreeMap::new();
    for (key, value) in pairs {
        if annotations.insert(key.clone(), value.clone()).is_some() {
            return Err(usage_error(
                &["attach"],
                format!("--annotation {key:?} is given twice"),
            ));
        }
    }
    Ok(annotations)
}

pub fn discover(args: &DiscoverArgs) -> anyhow::Result<Exit> {
    let reference = normalize_reference(&args.reference)?;
    let endpoint = Endpoint::of(&reference);
    let client = client(&args.transport)?;
    let artifact_type = args.artifact_type.as_deref();
    let runtime = runtime()?;
    let subject = runtime.block_on(resolve_descriptor(&client, &reference))?;
    let shown = format!(
        "{}/{}@{}",
        endpoint.registry,
        endpoint.repository,
        subject.digest()
    );
    if args.tree {
        let tree = runtime.block_on(referrer_tree(
            &client,
            &endpoint,
            subject.digest(),
            artifact_type,
            usize::from(args.depth),
        ))?;
        if args.json {
            print_json(&DiscoverReport {
                reference: shown,
                digest: subject.digest().to_string(),
                source: None,
                referrers: tree.iter().map(node_report).collect(),
            })?;
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{shown}")?;
            print_tree(&mut out, &tree, "")?;
        }
        return Ok(Exit::Ok);
    }
    let listed = runtime.block_on(list_referrers(
        &client,
        &endpoint,
        subject.digest(),
        artifact_type,
    ))?;
    if args.json {
        print_json(&DiscoverReport {
            reference: shown,
            digest: subject.digest().to_string(),
            source: Some(listed.source.name()),
            referrers: listed.descriptors.iter().map(referrer_report).collect(),
        })?;
    } else {
        let mut out = std::io::stdout().lock();
        for descriptor in &listed.descriptors {
            writeln!(
                out,
                "{}  {}",
                descriptor.digest(),
                artifact_type_of(descriptor)
            )?;
        }
    }
    Ok(Exit::Ok)
}

fn artifact_type_of(descriptor: &Descriptor) -> String {
    descriptor
        .artifact_type()
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_else(|| "<unknown type>".to_string())
}

/// A referrer without its own referrers (the flat listing).
fn referrer_report(descriptor: &Descriptor) -> Referrer {
    Referrer {
        media_type: descriptor.media_type().to_string(),
        digest: descriptor.digest().to_string(),
        size: descriptor.size(),
        artifact_type: descriptor.artifact_type().as_ref().map(|t| t.to_string()),
        annotations: descriptor
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        referrers: Vec::new(),
        repeated: false,
        truncated: false,
    }
}

fn node_report(node: &ReferrerNode) -> Referrer {
    Referrer {
        referrers: node.referrers.iter().map(node_report).collect(),
        repeated: node.repeated,
        truncated: node.truncated,
        ..referrer_report(&node.descriptor)
    }
}

fn print_tree(out: &mut impl Write, nodes: &[ReferrerNode], prefix: &str) -> std::io::Result<()> {
    for (i, node) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let (branch, indent) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let mut line = format!(
            "{prefix}{branch}{}  {}",
            artifact_type_of(&node.descriptor),
            node.descriptor.digest()
        );
        if node.repeated {
            line.push_str("  (shown above)");
        }
        if node.truncated {
            line.push_str("  (its referrers are not shown)");
        }
        writeln!(out, "{line}")?;
        print_tree(out, &node.referrers, &format!("{prefix}{indent}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_annotation_key_is_a_usage_error() {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let map = annotation_map(&pairs(&[("a", "1"), ("b", "x=y")])).unwrap();
        assert_eq!(map["b"], "x=y");
        let twice = annotation_map(&pairs(&[("a", "1"), ("a", "2")])).unwrap_err();
        let usage = twice.downcast_ref::<clap::Error>().expect("a usage error");
        assert!(usage.to_string().contains("given twice"), "{usage}");
    }
}
