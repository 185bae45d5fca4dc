//! `ferry attach` and `ferry discover`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use ferry_registry::client::Endpoint;
use ferry_registry::referrers::{
    self, AttachOptions, FallbackPolicy, ReferrerNode, list_referrers, referrer_tree,
    resolve_descriptor,
};
use ferry_spec::oci::Descriptor;
use ferry_store::index::normalize_reference;
use serde_json::{Value, json};

use super::transfer::{client, runtime};
use crate::cli::{AttachArgs, DiscoverArgs};
use crate::output::print_json;
use crate::progress::TransferBar;

pub fn attach(args: &AttachArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let subject = normalize_reference(&args.reference)?;
    let options = AttachOptions {
        artifact_type: args.artifact_type.clone(),
        files: args.files.clone(),
        layer_media_type: args.media_type.clone(),
        annotations: parse_annotations(&args.annotations)?,
        concurrency: args.transport.concurrency,
        fallback: FallbackPolicy::default(),
    };
    let client = client(&args.transport)?;
    let bar = TransferBar::new(quiet, "attaching");
    let result = runtime()?.block_on(referrers::attach(&client, &subject, &options, &bar));
    bar.finish();
    let attached = result?;
    if args.json {
        print_json(&json!({
            "reference": attached.reference,
            "digest": attached.descriptor.digest().to_string(),
            "artifactType": args.artifact_type,
            "subject": {
                "reference": subject.whole(),
                "mediaType": attached.subject.media_type().to_string(),
                "digest": attached.subject.digest().to_string(),
                "size": attached.subject.size(),
            },
            "referrersApi": attached.fallback.is_none(),
            "fallbackTag": attached.fallback.as_ref().map(|f| f.tag.clone()),
            "fallbackAttempts": attached.fallback.as_ref().map(|f| f.attempts),
        }))?;
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
    Ok(ExitCode::SUCCESS)
}

/// `KEY=VALUE` pairs; a key given twice is an error.
fn parse_annotations(values: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut annotations = BTreeMap::new();
    for value in values {
        let Some((key, val)) = value.split_once('=') else {
            bail!("annotation {value:?} is not KEY=VALUE");
        };
        if key.is_empty() {
            bail!("annotation {value:?} has an empty key");
        }
        if annotations
            .insert(key.to_string(), val.to_string())
            .is_some()
        {
            bail!("annotation {key:?} is given twice");
        }
    }
    Ok(annotations)
}

pub fn discover(args: &DiscoverArgs) -> anyhow::Result<ExitCode> {
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
            print_json(&json!({
                "reference": shown,
                "digest": subject.digest().to_string(),
                "referrers": tree.iter().map(node_json).collect::<Vec<_>>(),
            }))?;
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{shown}")?;
            print_tree(&mut out, &tree, "")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let listed = runtime.block_on(list_referrers(
        &client,
        &endpoint,
        subject.digest(),
        artifact_type,
    ))?;
    if args.json {
        print_json(&json!({
            "reference": shown,
            "digest": subject.digest().to_string(),
            "source": listed.source.name(),
            "referrers": listed.descriptors.iter().map(descriptor_json).collect::<Vec<_>>(),
        }))?;
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
    Ok(ExitCode::SUCCESS)
}

fn artifact_type_of(descriptor: &Descriptor) -> String {
    descriptor
        .artifact_type()
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_else(|| "<unknown type>".to_string())
}

fn descriptor_json(descriptor: &Descriptor) -> Value {
    let mut value = json!({
        "mediaType": descriptor.media_type().to_string(),
        "digest": descriptor.digest().to_string(),
        "size": descriptor.size(),
        "artifactType": descriptor.artifact_type().as_ref().map(|t| t.to_string()),
    });
    if let Some(annotations) = descriptor.annotations() {
        let sorted: BTreeMap<_, _> = annotations.iter().collect();
        value["annotations"] = json!(sorted);
    }
    value
}

fn node_json(node: &ReferrerNode) -> Value {
    let mut value = descriptor_json(&node.descriptor);
    value["referrers"] = Value::Array(node.referrers.iter().map(node_json).collect());
    if node.repeated {
        value["repeated"] = Value::Bool(true);
    }
    if node.truncated {
        value["truncated"] = Value::Bool(true);
    }
    value
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
    fn annotations_parse_and_reject_bad_pairs() {
        let parsed =
            parse_annotations(&["a=1".to_string(), "b=x=y".to_string(), "c=".to_string()]).unwrap();
        assert_eq!(parsed["a"], "1");
        assert_eq!(parsed["b"], "x=y");
        assert_eq!(parsed["c"], "");
        assert!(parse_annotations(&["novalue".to_string()]).is_err());
        assert!(parse_annotations(&["=v".to_string()]).is_err());
        let twice = parse_annotations(&["a=1".to_string(), "a=2".to_string()]).unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
    }
}
