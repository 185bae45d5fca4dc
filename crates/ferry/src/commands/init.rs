//! `ferry init`: write a Modelfile from what the directory holds.

use std::process::ExitCode;

use anyhow::{Context, bail};
use ferry_spec::classify::classify;
use ferry_spec::media::Category;
use ferry_spec::modelfile::{GlobEntry, Modelfile};
use ferry_store::detect::detect_metadata;
use ferry_store::pack::walk::{Filter, SymlinkMode, collect_files};

use crate::cli::InitArgs;

pub fn run(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.dir.join("Modelfile"));
    if output.exists() && !args.force {
        bail!("{} exists (use --force to overwrite)", output.display());
    }
    let filter = Filter::new(&[], &[])?;
    let files = collect_files(
        &args.dir,
        &filter,
        &["Modelfile".to_string()],
        SymlinkMode::Keep,
    )?;
    let rel: Vec<String> = files.iter().map(|f| f.rel.clone()).collect();
    let detected = detect_metadata(&args.dir, &rel)?;
    let mut modelfile = Modelfile {
        name: detected.name.clone(),
        arch: detected.arch.clone(),
        family: detected.family.clone(),
        format: detected.format.clone(),
        param_size: detected.param_size.clone(),
        precision: detected.precision.clone(),
        quantization: detected.quantization.clone(),
        ..Modelfile::default()
    };
    for path in &rel {
        // Each file is named exactly (escaped), so the Modelfile declares
        // every category and nothing is left to the heuristic at pack time.
        let entry = GlobEntry::new(globset::escape(path));
        match classify(path) {
            Category::Weight => modelfile.model.push(entry),
            Category::WeightConfig => modelfile.config.push(entry),
            Category::Code => modelfile.code.push(entry),
            Category::Doc => modelfile.doc.push(entry),
            Category::Dataset => modelfile.dataset.push(entry),
        }
    }
    let text = modelfile.render();
    let temp = output.with_extension("ferry-tmp");
    std::fs::write(&temp, &text).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, &output).with_context(|| format!("writing {}", output.display()))?;
    println!("wrote {} ({} files)", output.display(), rel.len());
    Ok(ExitCode::SUCCESS)
}
