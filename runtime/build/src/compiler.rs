//! The script compiler: finds a pipeline crate, compiles it with cargo into a target directory
//! shared by all pipelines compiled with the same cache directory, and caches the binary by a
//! hash of everything that goes into it, so an unchanged pipeline starts without invoking cargo.
//!
//! # Which toolchain
//!
//! A pipeline is MonkeyCI's code, not the project's, so the repository's own
//! `rust-toolchain.toml` (an old MSRV pin, say) does not choose the toolchain that compiles it
//! ([`Toolchain`]): a `rust-toolchain.toml` (or `rust-toolchain`) in the pipeline crate's own
//! directory does; else the toolchain `RUSTUP_TOOLCHAIN` names for this process (under
//! `cargo run`, the one MonkeyCI itself was built with); else rustup's default. The jobs the
//! pipeline runs follow the repository's pin (see `monkeyci_jobs::hostenv`).
//!
//! It does not run the binary (the [`controller`](crate::controller) does) and does not remove
//! old binaries (the [`prune`](crate::prune) module does).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// Why a pipeline could not be found or compiled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither the directory nor its `.monkeyci` holds a `Cargo.toml`; the directory searched.
    #[error(
        "no pipeline in {}: expected {}/.monkeyci/Cargo.toml or a Cargo.toml in it (create one with `monkeyci init`)",
        .0.display(), .0.display()
    )]
    NotFound(PathBuf),
    /// A file or directory of the pipeline (or the directory itself) cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A `Cargo.toml` is not valid TOML.
    #[error("{} is not a valid Cargo.toml", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Where and why it does not parse.
        #[source]
        source: toml::de::Error,
    },
    /// The pipeline's manifest names no package; the manifest.
    #[error("{} has no `[package]` with a name: a pipeline is a binary crate", .0.display())]
    NoPackage(PathBuf),
    /// `cargo` could not be started or waited for.
    #[error("cannot run `cargo` (is Rust installed?)")]
    Cargo(#[source] std::io::Error),
    /// cargo failed; its diagnostics went to stderr.
    #[error("the pipeline crate does not compile (cargo's diagnostics are above)")]
    CompileFailed,
    /// cargo succeeded without building a binary; the package's name.
    #[error("cargo built no binary for `{0}`: a pipeline needs a src/main.rs ending in `monkeyci_sdk::main!();`")]
    NoBinary(String),
    /// The cache directory cannot be written, so nothing can be compiled into it.
    #[error(
        "cannot write the pipeline cache {} (set MONKEYCI_CACHE_DIR to a writable directory)",
        dir.display()
    )]
    CacheNotWritable {
        /// The cache directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The compiled binary could not be copied into the cache.
    #[error("cannot store the compiled pipeline in {}", path.display())]
    Cache {
        /// Where the binary was to go.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// The profile pipelines are built with, on top of cargo's `dev`.
const PROFILE: [&str; 2] = [
    // The sdk masks secrets at every launch with aho-corasick: unoptimised, a PEM key costs
    // 150-250 ms a launch (a resume included); optimised, a few.
    "profile.dev.package.aho-corasick.opt-level=3",
    // Line tables keep panics' backtraces readable; full debug info made every cached pipeline
    // binary 45 MB instead of 20, and its link slower.
    "profile.dev.debug=\"line-tables-only\"",
];

/// A pipeline crate on disk.
#[derive(Debug, Clone)]
pub struct PipelineCrate {
    /// The crate's directory.
    pub dir: PathBuf,
    /// Its `Cargo.toml`.
    pub manifest: PathBuf,
    /// Its package name.
    pub package: String,
    /// Whether it names `monkeyci-sdk` by path (no `[patch]` needed then).
    sdk_by_path: bool,
}

impl PipelineCrate {
    /// The pipeline of repository `dir`: `dir/.monkeyci`, or `dir` itself if it is a crate.
    pub fn locate(dir: &Path) -> Result<PipelineCrate, Error> {
        let dir = dir.canonicalize().map_err(|source| Error::Read { path: dir.to_owned(), source })?;
        let candidates = [dir.join(".monkeyci"), dir.clone()];
        let crate_dir = candidates
            .into_iter()
            .find(|d| d.join("Cargo.toml").is_file())
            .ok_or_else(|| Error::NotFound(dir.clone()))?;
        let manifest = crate_dir.join("Cargo.toml");
        let doc = read_manifest(&manifest)?;
        let package = doc
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| Error::NoPackage(manifest.clone()))?
            .to_owned();
        let sdk_by_path = dependency_tables(&doc)
            .filter_map(|table| table.get("monkeyci-sdk"))
            .any(|dep| dep.get("path").is_some() || dep.get("workspace").is_some());
        Ok(PipelineCrate { dir: crate_dir, manifest, package, sdk_by_path })
    }
}

fn read_manifest(path: &Path) -> Result<toml::Table, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    text.parse::<toml::Table>().map_err(|source| Error::Manifest { path: path.to_owned(), source })
}

fn dependency_tables(doc: &toml::Table) -> impl Iterator<Item = &toml::Table> {
    ["dependencies", "build-dependencies"].into_iter().filter_map(|key| doc.get(key)?.as_table())
}

/// A compiled pipeline.
#[derive(Debug, Clone)]
pub struct CompiledScript {
    /// The binary to run.
    pub binary: PathBuf,
}

/// Compiles pipeline crates with cargo.
#[derive(Debug, Clone)]
pub struct Compiler {
    cache_dir: PathBuf,
    sdk_path: Option<PathBuf>,
    sandbox: Option<crate::sandbox::Sandbox>,
}

impl Compiler {
    /// `cache_dir` holds the shared target directory and the binary cache; `sdk_path`, if
    /// set, is the local sdk checkout that crates depending on `monkeyci-sdk` by version use.
    pub fn new(cache_dir: PathBuf, sdk_path: Option<PathBuf>) -> Compiler {
        Compiler { cache_dir, sdk_path, sandbox: None }
    }

    /// Runs cargo (and so the pipeline's build scripts and proc macros) in `sandbox`; the
    /// target dir is made writable in it.
    pub fn sandboxed(mut self, mut sandbox: crate::sandbox::Sandbox) -> Compiler {
        sandbox.writable.push(self.target_dir());
        self.sandbox = Some(sandbox);
        self
    }

    fn target_dir(&self) -> PathBuf {
        self.cache_dir.join("target")
    }

    /// A `cargo <subcommand>` for `krate`, with the shared target dir, the sdk patch and the
    /// pipeline's [`Toolchain`].
    pub fn cargo(&self, krate: &PipelineCrate, subcommand: &str) -> Command {
        let program = |name: std::ffi::OsString| match &self.sandbox {
            Some(sandbox) => {
                // bwrap does not search PATH for its program the way a shell does.
                let path = which::which(&name).unwrap_or_else(|_| PathBuf::from(&name));
                sandbox.command(&path)
            }
            None => Command::new(name),
        };
        let mut cmd = match Toolchain::of(&krate.dir) {
            // The rustup proxy reads the crate's own file, unless told otherwise.
            Toolchain::PipelineFile(_) => {
                let mut cmd = program("cargo".into());
                cmd.env_remove("RUSTUP_TOOLCHAIN");
                cmd
            }
            Toolchain::Named(name) => {
                let mut cmd = program(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
                cmd.env("RUSTUP_TOOLCHAIN", name);
                cmd
            }
            Toolchain::OnPath => program(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())),
        };
        cmd.arg(subcommand)
            .arg("--manifest-path")
            .arg(&krate.manifest)
            .arg("--target-dir")
            .arg(self.target_dir())
            .current_dir(&krate.dir)
            // One-shot builds gain nothing from incremental compilation and pay its disk cost.
            .env("CARGO_INCREMENTAL", "0");
        for setting in PROFILE {
            cmd.arg("--config").arg(setting);
        }
        if let (false, Some(sdk)) = (krate.sdk_by_path, &self.sdk_path) {
            cmd.arg("--config").arg(format!("patch.crates-io.monkeyci-sdk.path={}", toml_string(sdk)));
        }
        cmd
    }

    /// The compiled binary of `krate`: from the cache when nothing that goes into it changed,
    /// else built with cargo (diagnostics go to stderr as cargo prints them).
    pub fn compile(&self, krate: &PipelineCrate) -> Result<CompiledScript, Error> {
        self.compile_reporting(krate, None::<std::fs::File>)
    }

    /// [`Compiler::compile`], with cargo's diagnostics (and the line saying a compile starts)
    /// written to `diagnostics` instead of stderr (a file, or a pipe a service reads into the
    /// build's log as cargo goes).
    pub fn compile_reporting<D>(&self, krate: &PipelineCrate, diagnostics: Option<D>) -> Result<CompiledScript, Error>
    where
        D: std::io::Write + Into<Stdio>,
    {
        let hash = self.source_hash(krate)?;
        let cached = self.cache_dir.join("bin").join(&hash).join(&krate.package);
        if cached.is_file() {
            mark_used(cached.parent().unwrap_or(&cached));
            return Ok(CompiledScript { binary: cached });
        }
        let starting = format!("compiling pipeline `{}` ({})", krate.package, krate.dir.display());
        let diagnostics = match diagnostics {
            Some(mut file) => {
                let _ = writeln!(file, "{starting}");
                file.into()
            }
            None => {
                eprintln!("{starting}");
                Stdio::inherit()
            }
        };
        // Cargo keys a package's artifacts in the shared target dir by its name and version,
        // not its path: another pipeline of the same name (every `monkeyci init` pipeline is
        // called `pipeline`) may have left a build that cargo takes as this one, up to date.
        // So its artifacts go first, and the lock keeps another compile from putting them back
        // before this one is done. Only the pipeline crate itself is rebuilt: about a second.
        let _lock = self.compile_lock()?;
        let cleaned =
            self.cargo(krate, "clean").args(["-p", &krate.package, "--quiet"]).status().map_err(Error::Cargo)?;
        if !cleaned.success() {
            return Err(Error::CompileFailed);
        }
        let mut child = self
            .cargo(krate, "build")
            .arg("--message-format=json-render-diagnostics")
            .stdout(Stdio::piped())
            .stderr(diagnostics)
            .spawn()
            .map_err(Error::Cargo)?;
        let mut executable = None;
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                if msg["reason"] == "compiler-artifact"
                    && msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"))
                    && let Some(exe) = msg["executable"].as_str()
                {
                    executable = Some(PathBuf::from(exe));
                }
            }
        }
        let status = child.wait().map_err(Error::Cargo)?;
        if !status.success() {
            return Err(Error::CompileFailed);
        }
        let executable = executable.ok_or_else(|| Error::NoBinary(krate.package.clone()))?;
        // Cargo may have just written the lock file (a new pipeline has none, or its lock
        // lacked the pipeline itself): key the binary by the sources as they are now, so the
        // next local run finds it, and as they were, so a fresh clone of the same commit (a
        // server's next build) finds it too.
        let after = self.source_hash(krate)?;
        if after != hash {
            store(&executable, &self.cache_dir.join("bin").join(&hash).join(&krate.package))?;
        }
        let cached = self.cache_dir.join("bin").join(after).join(&krate.package);
        store(&executable, &cached)?;
        Ok(CompiledScript { binary: cached })
    }

    /// Holds every compile of this cache's target dir off until it is dropped.
    /// It is taken before cargo runs, so a cache that cannot be written is reported as such,
    /// not as a pipeline that does not compile.
    fn compile_lock(&self) -> Result<std::fs::File, Error> {
        let cache_err = |source| Error::CacheNotWritable { dir: self.cache_dir.clone(), source };
        std::fs::create_dir_all(self.target_dir()).map_err(cache_err)?;
        let path = self.cache_dir.join("compile.lock");
        let file = std::fs::File::options().create(true).truncate(false).write(true).open(&path).map_err(cache_err)?;
        file.lock().map_err(cache_err)?;
        Ok(file)
    }

    /// A hash of the crate's sources, its path dependencies' sources, the lock file, the
    /// toolchain and the flags: whatever changes the binary.
    fn source_hash(&self, krate: &PipelineCrate) -> Result<String, Error> {
        let mut hasher = Sha256::new();
        hasher.update(concat!("monkeyci-runtime ", env!("CARGO_PKG_VERSION"), "\n"));
        for setting in PROFILE {
            hasher.update(format!("{setting}\n"));
        }
        hasher.update(toolchain_id(&krate.dir).as_bytes());
        for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"] {
            if let Some(value) = std::env::var_os(var) {
                hasher.update(format!("{var}={}\n", value.to_string_lossy()));
            }
        }
        // Paths inside the repository are hashed relative to it, so the same pipeline checked
        // out elsewhere (a server's agent clones each build into a new directory) is the same
        // binary; paths outside it (the sdk) are hashed as they are.
        let krate_dir = krate.dir.canonicalize().unwrap_or_else(|_| krate.dir.clone());
        let base = Base(krate_dir.parent().unwrap_or(&krate_dir).to_owned());
        if let Some(lock) = find_up(&krate.dir, "Cargo.lock") {
            hash_file(&mut hasher, &base, &lock)?;
        }
        let mut crates = vec![krate.dir.clone()];
        if !krate.sdk_by_path
            && let Some(sdk) = &self.sdk_path
        {
            crates.push(sdk.clone());
        }
        let mut seen = BTreeSet::new();
        while let Some(dir) = crates.pop() {
            let dir = dir.canonicalize().unwrap_or(dir);
            if !seen.insert(dir.clone()) {
                continue;
            }
            hasher.update(format!("crate {}\n", base.show(&dir)));
            let manifest = dir.join("Cargo.toml");
            hash_file(&mut hasher, &base, &manifest)?;
            for file in ["build.rs", "rust-toolchain.toml", "rust-toolchain"] {
                if dir.join(file).is_file() {
                    hash_file(&mut hasher, &base, &dir.join(file))?;
                }
            }
            hash_tree(&mut hasher, &base, &dir.join("src"))?;
            crates.extend(path_dependencies(&dir, &read_manifest(&manifest)?)?);
        }
        Ok(hex::encode(hasher.finalize()))
    }
}

/// The directories of a crate's path dependencies, including `workspace = true` ones whose
/// path is in the workspace's manifest.
fn path_dependencies(dir: &Path, doc: &toml::Table) -> Result<Vec<PathBuf>, Error> {
    let mut dirs = Vec::new();
    let mut workspace: Option<(PathBuf, toml::Table)> = None;
    for table in dependency_tables(doc) {
        for (name, dep) in table {
            if let Some(path) = dep.get("path").and_then(|p| p.as_str()) {
                dirs.push(dir.join(path));
            } else if dep.get("workspace").and_then(|w| w.as_bool()) == Some(true) {
                if workspace.is_none() {
                    workspace = find_workspace_root(dir)?;
                }
                if let Some((root, ws)) = &workspace
                    && let Some(path) = ws
                        .get("workspace")
                        .and_then(|w| w.get("dependencies"))
                        .and_then(|d| d.get(name))
                        .and_then(|d| d.get("path"))
                        .and_then(|p| p.as_str())
                {
                    dirs.push(root.join(path));
                }
            }
        }
    }
    Ok(dirs)
}

fn find_workspace_root(dir: &Path) -> Result<Option<(PathBuf, toml::Table)>, Error> {
    for ancestor in dir.ancestors() {
        let manifest = ancestor.join("Cargo.toml");
        if manifest.is_file() {
            let doc = read_manifest(&manifest)?;
            if doc.contains_key("workspace") {
                return Ok(Some((ancestor.to_owned(), doc)));
            }
        }
    }
    Ok(None)
}

fn find_up(dir: &Path, name: &str) -> Option<PathBuf> {
    dir.ancestors().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The directory a pipeline's own paths are hashed relative to: its repository's root.
struct Base(PathBuf);

impl Base {
    /// `path` as it goes into the hash: relative to the base when inside it.
    fn show(&self, path: &Path) -> String {
        match path.strip_prefix(&self.0) {
            Ok(inside) => format!("./{}", inside.display()),
            Err(_) => path.display().to_string(),
        }
    }
}

fn hash_file(hasher: &mut Sha256, base: &Base, path: &Path) -> Result<(), Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    hasher.update(format!("file {} {}\n", base.show(path), bytes.len()));
    hasher.update(&bytes);
    Ok(())
}

fn hash_tree(hasher: &mut Sha256, base: &Base, dir: &Path) -> Result<(), Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::Read { path: dir.to_owned(), source }),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            hash_tree(hasher, base, &path)?;
        } else {
            hash_file(hasher, base, &path)?;
        }
    }
    Ok(())
}

/// The toolchain that compiles a pipeline crate (see the module's docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toolchain {
    /// The crate's own `rust-toolchain.toml` or `rust-toolchain`, which rustup reads.
    PipelineFile(PathBuf),
    /// A rustup toolchain by name: `RUSTUP_TOOLCHAIN`'s, or rustup's default.
    Named(String),
    /// No rustup to ask: the `cargo` on the `PATH`.
    OnPath,
}

impl Toolchain {
    /// The toolchain for the pipeline crate in `dir`.
    ///
    /// ```
    /// use monkeyci_build::compiler::Toolchain;
    ///
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("rust-toolchain.toml"), "[toolchain]\nchannel = \"1.95\"\n")?;
    /// assert_eq!(Toolchain::of(dir.path()), Toolchain::PipelineFile(dir.path().join("rust-toolchain.toml")));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn of(dir: &Path) -> Toolchain {
        let own =
            ["rust-toolchain.toml", "rust-toolchain"].into_iter().map(|file| dir.join(file)).find(|p| p.is_file());
        if let Some(file) = own {
            return Toolchain::PipelineFile(file);
        }
        if let Some(name) = std::env::var("RUSTUP_TOOLCHAIN").ok().filter(|name| !name.is_empty()) {
            return Toolchain::Named(name);
        }
        match rustup_settings().and_then(|settings| default_toolchain(&settings)) {
            Some(name) => Toolchain::Named(name),
            None => Toolchain::OnPath,
        }
    }
}

/// rustup's `settings.toml`, if there is one.
fn rustup_settings() -> Option<String> {
    let home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|h| h.join(".rustup")))?;
    std::fs::read_to_string(home.join("settings.toml")).ok()
}

/// The `default_toolchain` of rustup's settings.
fn default_toolchain(settings: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(settings).ok()?;
    doc.get("default_toolchain")?.as_str().filter(|name| !name.is_empty()).map(str::to_owned)
}

/// Identifies the toolchain that would build a crate in `dir` without running rustc (which
/// costs tens of milliseconds through rustup): the `rustc` found first, and what selects it.
fn toolchain_id(dir: &Path) -> String {
    let mut id = String::from("toolchain");
    match Toolchain::of(dir) {
        Toolchain::PipelineFile(path) => {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            id.push_str(&format!(" {}={text}", path.display()));
        }
        Toolchain::Named(name) => id.push_str(&format!(" {name}")),
        Toolchain::OnPath => {}
    }
    let rustc = std::env::var_os("RUSTC").map(PathBuf::from).or_else(|| which::which("rustc").ok());
    if let Some(rustc) = rustc {
        let modified = std::fs::metadata(&rustc).and_then(|m| m.modified()).ok();
        id.push_str(&format!(" rustc={} {modified:?}", rustc.display()));
    }
    id.push('\n');
    id
}

/// Copies the binary into the cache under a temporary name, then renames it into place, so a
/// concurrent build never sees half a binary.
fn store(executable: &Path, cached: &Path) -> Result<(), Error> {
    let cache_err = |source| Error::Cache { path: cached.to_owned(), source };
    let dir = cached.parent().expect("cached binaries live in a directory");
    std::fs::create_dir_all(dir).map_err(cache_err)?;
    let partial = dir.join(format!(".partial-{}", std::process::id()));
    std::fs::copy(executable, &partial).map_err(cache_err)?;
    std::fs::rename(&partial, cached).map_err(cache_err)
}

/// `path` as a TOML basic string.
fn toml_string(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Notes that the cached binary in `dir` was used now: the cache keeps binaries used lately
/// (see `prune`). Best-effort: a binary whose time cannot be set is kept until it ages out.
fn mark_used(dir: &Path) {
    let now = std::time::SystemTime::now();
    if let Err(err) = std::fs::File::open(dir).and_then(|dir| dir.set_modified(now)) {
        tracing::debug!(dir = %dir.display(), %err, "cannot mark a cached binary as used");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// #9: a cache that cannot be written was blamed on the pipeline crate ("does not
    /// compile"); it is named as what it is, before cargo runs.
    #[test]
    fn a_cache_that_cannot_be_written_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let krate = tmp.path().join("repo/.monkeyci");
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::write(krate.join("Cargo.toml"), "[package]\nname = \"pipeline\"\nversion = \"0.1.0\"\n").unwrap();
        std::fs::write(krate.join("src/main.rs"), "fn main() {}\n").unwrap();
        // A file where the cache should be: no one, root included, can write below it.
        let blocker = tmp.path().join("cache-file");
        std::fs::write(&blocker, "").unwrap();
        let compiler = Compiler::new(blocker.join("cache"), None);
        let pipeline = PipelineCrate::locate(&tmp.path().join("repo")).unwrap();
        let err = compiler.compile(&pipeline).unwrap_err();
        assert!(matches!(err, Error::CacheNotWritable { .. }), "{err}");
        assert!(err.to_string().contains("MONKEYCI_CACHE_DIR"), "{err}");
    }

    /// A server's agent clones every build into a new directory: the same sources must be the
    /// same binary wherever they are, and a change anywhere in them a new one.
    #[test]
    fn the_same_pipeline_elsewhere_has_the_same_hash_and_an_edit_changes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |repo: &str, main: &str| {
            let krate = tmp.path().join(repo).join(".monkeyci");
            std::fs::create_dir_all(krate.join("src")).unwrap();
            std::fs::write(krate.join("Cargo.toml"), "[package]\nname = \"pipeline\"\nversion = \"0.1.0\"\n").unwrap();
            std::fs::write(krate.join("src/main.rs"), main).unwrap();
            PipelineCrate::locate(&tmp.path().join(repo)).unwrap()
        };
        let compiler = Compiler::new(tmp.path().join("cache"), None);
        let a = compiler.source_hash(&write("build-1/checkout", "fn main() {}\n")).unwrap();
        let b = compiler.source_hash(&write("build-2/checkout", "fn main() {}\n")).unwrap();
        let c = compiler.source_hash(&write("build-3/checkout", "fn main() { }\n")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
