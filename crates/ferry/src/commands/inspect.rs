//! `ferry ls` and `ferry inspect`.

use std::io::Write;

use ferry_spec::annotations as ann;
use ferry_spec::config::ModelPackConfig;
use ferry_spec::kitfile::{self, Kitfile};
use ferry_spec::media;
use ferry_spec::oci::{Descriptor, ImageManifest};
use ferry_store::Store;
use ferry_store::index::ref_name;

use crate::cli::InspectArgs;
use crate::exit::Exit;
use crate::output::{print_json, short_digest};
use crate::report::{InspectReport, InspectedLayer, ListedArtifact};
use crate::size::human;

fn describe(store: &Store, entry: &Descriptor) -> ListedArtifact {
    let manifest = store.read_manifest(entry.digest()).ok();
    let size = manifest
        .as_ref()
        .map(|m| {
            entry.size() + m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>()
        })
        .unwrap_or(entry.size());
    let created = manifest.as_ref().and_then(|m| {
        m.annotations()
            .as_ref()
            .and_then(|a| a.get(ann::CREATED).cloned())
            .or_else(|| read_config(store, m).and_then(|c| c.descriptor.created_at))
            .or_else(|| top_level_created(store, m))
    });
    ListedArtifact {
        reference: ref_name(entry).unwrap_or("<none>").to_string(),
        digest: entry.digest().to_string(),
        size,
        created,
    }
}

/// `created` at a config's top level (image and Wasm configs).
fn top_level_created(store: &Store, manifest: &ImageManifest) -> Option<String> {
    let bytes = store.read_document(manifest.config().digest()).ok()?;
    let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    config.get("created")?.as_str().map(str::to_string)
}

fn read_config(store: &Store, manifest: &ImageManifest) -> Option<ModelPackConfig> {
    let bytes = store.read_document(manifest.config().digest()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn ls(store: &Store, json: bool) -> anyhow::Result<Exit> {
    let listed: Vec<ListedArtifact> = store
        .entries()?
        .iter()
        .map(|entry| describe(store, entry))
        .collect();
    if json {
        print_json(&listed)?;
        return Ok(Exit::Ok);
    }
    let mut out = std::io::stdout().lock();
    let width = listed
        .iter()
        .map(|l| l.reference.len())
        .max()
        .unwrap_or(9)
        .max(9);
    writeln!(
        out,
        "{:width$}  {:12}  {:>10}  CREATED",
        "REFERENCE", "DIGEST", "SIZE"
    )?;
    for l in &listed {
        writeln!(
            out,
            "{:width$}  {:12}  {:>10}  {}",
            l.reference,
            short_digest(&l.digest),
            human(l.size),
            l.created.as_deref().unwrap_or("-")
        )?;
    }
    Ok(Exit::Ok)
}

/// ` (N unpacked)` for a compressed layer whose file metadata gives the
/// content size, else nothing.
fn unpacked_note(layer: &Descriptor) -> String {
    let compressed = media::parse_layer_media_type(layer.media_type().as_ref())
        .is_some_and(|(_, e)| matches!(e, media::Encoding::TarGzip | media::Encoding::TarZstd));
    let size = layer
        .annotations()
        .as_ref()
        .and_then(ann::file_metadata_json)
        .and_then(|json| serde_json::from_str::<ann::FileMetadata>(json).ok())
        .map(|m| m.size);
    match size {
        Some(size) if compressed => format!(" ({} unpacked)", human(size)),
        _ => String::new(),
    }
}

/// One layer as `inspect` shows it.
fn layer_row(layer: &Descriptor) -> InspectedLayer {
    let annotations = layer.annotations().clone().unwrap_or_default();
    let path = annotations
        .get(ann::FILEPATH)
        .or_else(|| annotations.get(ann::FILEPATH_LEGACY))
        .or_else(|| annotations.get(ann::TITLE))
        .cloned();
    let media_type = layer.media_type().to_string();
    let (category, encoding) = match media::parse_layer_media_type(&media_type) {
        Some((c, e)) => (Some(c.name()), Some(e.suffix())),
        None => (None, None),
    };
    InspectedLayer {
        path,
        category,
        encoding,
        media_type,
        digest: layer.digest().to_string(),
        size: layer.size(),
        untested: annotations
            .get(ann::MEDIATYPE_UNTESTED)
            .is_some_and(|v| v == "true"),
    }
}

/// A ModelKit's layers carry no path annotation: the Kitfile (its config)
/// says which path each holds; the category column shows its section.
fn name_modelkit_layers(kitfile: &Kitfile, manifest: &ImageManifest, rows: &mut [InspectedLayer]) {
    for (row, path) in rows.iter_mut().zip(kitfile.manifest_layer_paths(manifest)) {
        if let Some(path) = path {
            row.path.get_or_insert(if path.path.is_empty() {
                ".".to_string()
            } else {
                path.path
            });
            row.category.get_or_insert(path.kind.segment());
        }
    }
}

/// What image configs and Wasm configs (`application/vnd.wasm.config.v0+json`)
/// say at their top level: the platform, when made, and a component's
/// imports and exports. ModelPack configs have none of these fields.
fn write_platform(out: &mut impl Write, config: &serde_json::Value) -> std::io::Result<()> {
    let top = |key: &str| config.get(key).and_then(|v| v.as_str());
    if let (Some(os), Some(architecture)) = (top("os"), top("architecture")) {
        writeln!(out, "{:14}{os}/{architecture}", "Platform:")?;
    }
    if let Some(created) = top("created") {
        writeln!(out, "{:14}{created}", "Created:")?;
    }
    if let Some(author) = top("author") {
        writeln!(out, "{:14}{author}", "Author:")?;
    }
    for (label, key) in [("Imports:", "imports"), ("Exports:", "exports")] {
        let names: Vec<&str> = config
            .get("component")
            .and_then(|c| c.get(key))
            .and_then(|v| v.as_array())
            .map(|names| names.iter().filter_map(|n| n.as_str()).collect())
            .unwrap_or_default();
        if !names.is_empty() {
            writeln!(out, "{label:14}{}", names.join(", "))?;
        }
    }
    Ok(())
}

pub fn inspect(store: &Store, args: &InspectArgs) -> anyhow::Result<Exit> {
    let resolved = store.resolve(&args.reference)?;
    let digest = resolved.descriptor.digest().clone();
    let manifest_bytes = store.read_document(&digest)?;
    if args.manifest {
        std::io::stdout().write_all(&manifest_bytes)?;
        println!();
        return Ok(Exit::Ok);
    }
    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)?;
    let config_bytes = store.read_document(manifest.config().digest())?;
    if args.config {
        std::io::stdout().write_all(&config_bytes)?;
        println!();
        return Ok(Exit::Ok);
    }
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap_or_default();
    let mut layers: Vec<InspectedLayer> = manifest.layers().iter().map(layer_row).collect();
    let kitfile = (manifest.config().media_type().to_string()
        == kitfile::MEDIA_TYPE_MODELKIT_CONFIG)
        .then(|| Kitfile::from_json(&config_bytes).ok())
        .flatten();
    if let Some(kitfile) = &kitfile {
        name_modelkit_layers(kitfile, &manifest, &mut layers);
    }
    let artifact_type = manifest
        .artifact_type()
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_else(|| manifest.config().media_type().to_string());
    if args.json {
        print_json(&InspectReport {
            reference: resolved.reference,
            digest: digest.to_string(),
            artifact_type,
            config,
            layers,
        })?;
        return Ok(Exit::Ok);
    }
    let mut out = std::io::stdout().lock();
    if let Some(reference) = &resolved.reference {
        writeln!(out, "Reference:    {reference}")?;
    }
    writeln!(out, "Digest:       {digest}")?;
    writeln!(out, "ArtifactType: {artifact_type}")?;
    if let Some(kitfile) = &kitfile {
        let model = kitfile.model.clone().unwrap_or_default();
        for (label, value) in [
            ("Name", &kitfile.package.name),
            ("Version", &kitfile.package.version),
            ("Model", &model.name),
            ("Format", &model.format),
            ("Framework", &model.framework),
        ] {
            if let Some(value) = value {
                writeln!(out, "{:14}{value}", format!("{label}:"))?;
            }
        }
    }
    let field = |section: &str, key: &str| {
        config
            .get(section)
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    for (label, section, key) in [
        ("Name", "descriptor", "name"),
        ("Family", "descriptor", "family"),
        ("Version", "descriptor", "version"),
        ("Created", "descriptor", "createdAt"),
        ("Architecture", "config", "architecture"),
        ("Format", "config", "format"),
        ("ParamSize", "config", "paramSize"),
        ("Precision", "config", "precision"),
        ("Quantization", "config", "quantization"),
    ] {
        if let Some(value) = field(section, key) {
            writeln!(out, "{:14}{value}", format!("{label}:"))?;
        }
    }
    write_platform(&mut out, &config)?;
    writeln!(out, "Layers:")?;
    let width = layers
        .iter()
        .filter_map(|l| l.path.as_deref().map(str::len))
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "  {:width$}  {:8}  {:>10}  MEDIA TYPE",
        "PATH", "CATEGORY", "SIZE"
    )?;
    for (layer, descriptor) in layers.iter().zip(manifest.layers()) {
        writeln!(
            out,
            "  {:width$}  {:8}  {:>10}  {}{}",
            layer.path.as_deref().unwrap_or("-"),
            layer.category.unwrap_or("-"),
            human(layer.size),
            layer.media_type,
            unpacked_note(descriptor),
        )?;
    }
    Ok(Exit::Ok)
}
