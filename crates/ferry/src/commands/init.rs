//! `ferry init`: write a Modelfile from what the directory holds.

use anyhow::{Context, bail};
use ferry_spec::classify::classify;
use ferry_spec::media::Category;
use ferry_spec::modelfile::{GlobEntry, Modelfile, exact_glob};
use ferry_store::detect::detect_metadata;
use ferry_store::pack::walk::{Filter, Reach, SymlinkMode, collect_files};

use crate::cli::InitArgs;
use crate::exit::Exit;
use crate::output::print_json;
use crate::report::InitReport;

pub fn run(args: &InitArgs) -> anyhow::Result<Exit> {
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
        Reach::Contained,
    )?;
    let rel: Vec<String> = files.iter().map(|f| f.rel.clone()).collect();
    let detected = detect_metadata(&args.dir, &rel)?;
    let mut modelfile = Modelfile {
        facts: detected.clone(),
        ..Modelfile::default()
    };
    for path in &rel {
        // Each file is named exactly (escaped as modctl and ferry both
        // read it), so the Modelfile declares every category and nothing is
        // left to the heuristic at pack time.
        let entry = GlobEntry::new(exact_glob(path));
        match classify(path) {
            Category::Weight => modelfile.model.push(entry),
            Category::WeightConfig => modelfile.config.push(entry),
            Category::Code => modelfile.code.push(entry),
            Category::Doc => modelfile.doc.push(entry),
            Category::Dataset => modelfile.dataset.push(entry),
        }
    }
    let text = modelfile.render();
    ferry_spec::durable::write_file(
        &output,
        text.as_bytes(),
        None,
        ferry_spec::durable::SHARED_FILE_MODE,
    )
    .with_context(|| format!("writing {}", output.display()))?;
    if args.json {
        print_json(&InitReport {
            modelfile: output,
            files: rel.len(),
            declared: [
                ("model", modelfile.model.len()),
                ("config", modelfile.config.len()),
                ("code", modelfile.code.len()),
                ("doc", modelfile.doc.len()),
                ("dataset", modelfile.dataset.len()),
            ]
            .into(),
            metadata: detected,
        })?;
    } else {
        println!("wrote {} ({} files)", output.display(), rel.len());
    }
    Ok(Exit::Ok)
}
