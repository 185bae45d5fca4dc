//! What a model directory says about itself: modctl's Modelfile or KitOps'
//! Kitfile. Either declares the category of files; a Kitfile also chooses
//! which files are packed (KitOps packs only the paths it lists).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferry_spec::annotations as ann;
use ferry_spec::kitfile::Kitfile;
use ferry_spec::media::Category;
use ferry_spec::modelfile::{Modelfile, ModelfileMatcher};

use super::kitignore::KitIgnore;
use super::walk::{self, KitScope, Reach, SourceFile};
use crate::error::{IoContext, Result, StoreError};

/// The names `kit pack` looks for in a directory, after ferry's Modelfile.
pub const KITFILE_NAMES: [&str; 3] = ["Kitfile", "kitfile", ".kitfile"];

/// A recipe as read from disk.
#[derive(Debug, Clone)]
pub enum Recipe {
    /// A Modelfile and its text (kept in the manifest, as modctl does).
    Modelfile {
        /// The parsed Modelfile (boxed, as the Kitfile: both are large).
        modelfile: Box<Modelfile>,
        /// Its text.
        text: String,
    },
    /// A Kitfile and the category of every file it lists.
    Kitfile {
        /// The parsed Kitfile.
        kitfile: Box<Kitfile>,
        /// The directory's `.kitignore` (empty when there is none).
        ignore: KitIgnore,
        /// Relative path → category, for the files below its paths.
        categories: HashMap<String, Category>,
    },
}

/// A recipe found for a directory, with where it was.
#[derive(Debug)]
pub struct Found {
    /// The recipe.
    pub recipe: Recipe,
    /// Its file.
    pub path: PathBuf,
    /// Its path inside the directory, when it is there (it is not packed).
    pub rel: Option<String>,
}

/// Reads the recipe `-f` names, else `DIR/Modelfile`, else a Kitfile in
/// `DIR`. A file given with `-f` is a Kitfile when it reads as one. One
/// found in `DIR` that is a link may lead where the files' links may
/// (`reach`): its text is kept in the manifest.
pub fn find(
    dir: &Path,
    given: Option<&Path>,
    reach: Reach,
    kitignore: bool,
) -> Result<Option<Found>> {
    let (path, read_from, rel) = match given {
        Some(path) => {
            // A recipe given with -f that lives inside the directory is not packed.
            let rel = path
                .canonicalize()
                .ok()
                .zip(dir.canonicalize().ok())
                .and_then(|(p, d)| {
                    p.strip_prefix(&d)
                        .ok()
                        .map(|r| r.to_string_lossy().into_owned())
                });
            (path.to_path_buf(), path.to_path_buf(), rel)
        }
        None => {
            let names = std::iter::once("Modelfile").chain(KITFILE_NAMES);
            let Some(name) = names
                .into_iter()
                .find(|name| std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| !m.is_dir()))
            else {
                return Ok(None);
            };
            let path = dir.join(name);
            let read_from = walk::readable_in(dir, &path, reach)?;
            (path, read_from, Some(name.to_string()))
        }
    };
    let text = std::fs::read_to_string(&read_from).ctx("reading recipe", &path)?;
    let recipe = if is_kitfile(&path, &text) {
        let kitfile = Kitfile::from_yaml(&text).map_err(|source| StoreError::Kitfile {
            path: path.clone(),
            source,
        })?;
        Recipe::Kitfile {
            kitfile: Box::new(kitfile),
            ignore: if kitignore {
                KitIgnore::read(dir, reach)?
            } else {
                KitIgnore::default()
            },
            categories: HashMap::new(),
        }
    } else {
        match Modelfile::parse(&text) {
            Ok(modelfile) => Recipe::Modelfile {
                modelfile: Box::new(modelfile),
                text,
            },
            Err(source) => return Err(StoreError::Modelfile { path, source }),
        }
    };
    Ok(Some(Found { recipe, path, rel }))
}

impl Found {
    /// For a Kitfile: the paths it lists and its `.kitignore`, which alone
    /// choose the files to walk.
    pub fn kit_scope(&self) -> Result<Option<KitScope>> {
        let Recipe::Kitfile {
            kitfile, ignore, ..
        } = &self.recipe
        else {
            return Ok(None);
        };
        let paths = kitfile.paths().map_err(|source| StoreError::Kitfile {
            path: self.path.clone(),
            source,
        })?;
        Ok(Some(KitScope {
            listed: paths.into_iter().map(|p| p.path).collect(),
            ignore: ignore.clone(),
        }))
    }

    /// Checks the recipe against the walked files: every Modelfile glob
    /// and every Kitfile path must match a file. For a Kitfile, keeps only
    /// the files below its paths and records their categories.
    pub fn apply(&mut self, files: &mut Vec<SourceFile>) -> Result<()> {
        match &mut self.recipe {
            Recipe::Modelfile { modelfile, .. } => {
                if let Some(glob) = modelfile
                    .unmatched_globs(files.iter().map(|f| f.rel.as_str()))
                    .first()
                {
                    return Err(StoreError::UnmatchedGlob {
                        path: self.path.clone(),
                        line: glob.line,
                        pattern: glob.pattern.clone(),
                    });
                }
            }
            Recipe::Kitfile {
                kitfile,
                categories,
                ..
            } => {
                let paths = kitfile.paths().map_err(|source| StoreError::Kitfile {
                    path: self.path.clone(),
                    source,
                })?;
                for listed in &paths {
                    let mut matched = false;
                    for file in files.iter() {
                        if below(&file.rel, &listed.path) {
                            matched = true;
                            // A file under two paths (a model directory that
                            // holds a listed doc) keeps the first, as the
                            // layers of a ModelKit would hold it first.
                            categories
                                .entry(file.rel.clone())
                                .or_insert_with(|| listed.kind.category_of(&file.rel));
                        }
                    }
                    if !matched {
                        return Err(StoreError::KitfilePathMissing {
                            path: self.path.clone(),
                            field: listed.field.clone(),
                            listed: listed.path.clone(),
                        });
                    }
                }
                files.retain(|f| categories.contains_key(&f.rel));
            }
        }
        Ok(())
    }
}

impl Recipe {
    /// The category the recipe declares for each file, compiled once.
    pub fn declarations(&self) -> Declarations<'_> {
        match self {
            Recipe::Modelfile { modelfile, .. } => Declarations::Globs(modelfile.matcher()),
            Recipe::Kitfile { categories, .. } => Declarations::Paths(categories),
        }
    }

    /// The manifest annotation that keeps the recipe whole: modctl's
    /// Modelfile text, or the Kitfile as JSON under KitOps' own key.
    pub fn annotation(&self) -> (&'static str, String) {
        match self {
            Recipe::Modelfile { text, .. } => (ann::MODELFILE, text.clone()),
            Recipe::Kitfile { kitfile, .. } => (ann::KITOPS_KITFILE, kitfile.annotation_json()),
        }
    }
}

/// Declared categories, ready to look up.
pub enum Declarations<'a> {
    /// A Modelfile's compiled globs.
    Globs(ModelfileMatcher<'a>),
    /// A Kitfile's files.
    Paths(&'a HashMap<String, Category>),
}

impl Declarations<'_> {
    /// The declared category of `rel`, if any.
    pub fn category_for(&self, rel: &str) -> Option<Category> {
        match self {
            Declarations::Globs(matcher) => matcher.category_for(rel),
            Declarations::Paths(categories) => categories.get(rel).copied(),
        }
    }
}

/// A Kitfile by its name (`Kitfile`, `*.yaml`) or its first line: a
/// Modelfile directive is a bare word, a Kitfile's first key ends in `:`.
fn is_kitfile(path: &Path, text: &str) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let by_name =
        KITFILE_NAMES.contains(&name) || name.ends_with(".yaml") || name.ends_with(".yml");
    let first_word = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#') && line != &"---")
        .and_then(|line| line.split_whitespace().next());
    by_name || first_word.is_some_and(|w| w.ends_with(':') || w.starts_with('{'))
}

/// True when `rel` is `listed` or below it (`""` lists everything).
pub(crate) fn below(rel: &str, listed: &str) -> bool {
    listed.is_empty()
        || rel == listed
        || rel
            .strip_prefix(listed)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kitfiles_are_told_from_modelfiles() {
        let kit = Path::new("recipe");
        assert!(is_kitfile(kit, "# made by hand\nmanifestVersion: 1.0.0\n"));
        assert!(is_kitfile(kit, "{\"manifestVersion\": \"1.0.0\"}"));
        assert!(is_kitfile(Path::new("x/Kitfile"), "NAME looks odd\n"));
        assert!(is_kitfile(Path::new("kit.yaml"), ""));
        assert!(!is_kitfile(kit, "# a Modelfile\nNAME tiny\nMODEL *.gguf\n"));
        assert!(!is_kitfile(Path::new("Modelfile"), "NAME tiny\n"));
    }

    #[test]
    fn a_listed_path_covers_itself_and_what_is_below() {
        assert!(below("model/a.bin", "model"));
        assert!(below("model", "model"));
        assert!(!below("models/a.bin", "model"));
        assert!(below("anything", ""));
    }
}
