//! Architecture test: no circle in the import graph between the files of any crate of the workspace.
//!
//! The runtime, the sdk and the future server must keep a layered structure: every file stands above
//! the files it imports, so each one can be read, tested and moved knowing only what lies below it.
//! The issue asks that "the import graph of the files shows no circle between files in the runtime
//! or the sdk". This test holds every library and binary crate of the workspace to that.
//!
//! How the graph is read (with `std` only, no parser crate):
//! - crates: directories up to three levels below the workspace root with a `Cargo.toml` that has a
//!   `[package]` and a `src/` directory (skipping `target`, `examples`, `tests`, `node_modules` and
//!   hidden directories);
//! - rooms: the files under `src/`, one module each (`lib.rs`/`main.rs` is the crate root, `foo.rs` or
//!   `foo/mod.rs` is `foo`, `foo/bar.rs` is `foo::bar`); `src/bin/*` are crates of their own;
//! - arrows: file A -> file B when A names a path into B's module: `use crate::..`, `use super::..`,
//!   `use self::..`, a child module by its bare name (`use view::BuildView`, `live::LiveBlock`), and
//!   the same paths inline in code (`crate::render::format_ms(..)`, `super::now_ms()`). A path goes
//!   to the longest prefix that is a file; a name re-exported by an ancestor's `mod.rs`/`lib.rs`
//!   counts as an arrow to that ancestor. Not arrows: `mod x;` declarations, a file naming itself,
//!   names that a file only hands on from another crate (`use monkeyci_protocol as protocol`), and
//!   everything under `#[cfg(test)]` (inline test modules, and `#[cfg(test)] mod tests;` files).
//!
//! Circles are the strongly connected components of that graph (Tarjan), so each tangle is reported
//! once, with a circle through each of its files and the names that tie every step.
//!
//! Run standalone: `rustc --edition 2024 --test tests/architecture/main.rs -o /tmp/arch-test` and
//! `ARCH_ROOT=/path/to/workspace /tmp/arch-test --nocapture`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Directories never searched for crates (hidden ones are skipped as well).
const SKIPPED_DIRS: [&str; 4] = ["target", "examples", "tests", "node_modules"];
/// How deep below the workspace root crates are looked for.
const CRATE_SEARCH_DEPTH: usize = 3;

#[test]
fn no_circle_between_files_of_a_crate() {
    let graph = scan_workspace(&workspace_root());
    let tangles = graph.tangles();
    assert!(
        tangles.is_empty(),
        "the import graph between files has {} circle(s); every file must stand above the files it imports \
         (move the shared names down into a file of their own, or the caller up):\n\n{}",
        tangles.len(),
        graph.report(&tangles)
    );
}

#[test]
fn the_scan_sees_the_workspace() {
    let root = workspace_root();
    let graph = scan_workspace(&root);
    println!(
        "architecture: {} crates, {} files, {} edges checked under {}",
        graph.crates,
        graph.files.len(),
        graph.edges.len(),
        root.display()
    );
    assert!(graph.crates > 0, "no crate found under {}: the architecture test would pass vacuously", root.display());
    assert!(!graph.files.is_empty(), "no source file found under {}", root.display());
}

// ---------------------------------------------------------------------------------------------------
// The workspace: its root, its crates, and the units (library or binary) in each.

/// `ARCH_ROOT` if set; otherwise the first directory upwards from this package (or from the current
/// directory) whose `Cargo.toml` has a `[workspace]`.
fn workspace_root() -> PathBuf {
    if let Some(root) = std::env::var_os("ARCH_ROOT") {
        return PathBuf::from(root);
    }
    let start = match option_env!("CARGO_MANIFEST_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_dir().expect("the current directory"),
    };
    let found = start.ancestors().find(|dir| has_table(&dir.join("Cargo.toml"), "workspace"));
    found.map_or_else(|| start.clone(), Path::to_path_buf)
}

/// Whether the TOML file at `path` exists and has the table `[name]`.
fn has_table(path: &Path, name: &str) -> bool {
    let header = format!("[{name}]");
    fs::read_to_string(path).is_ok_and(|toml| toml.lines().any(|line| line.trim_start().starts_with(&header)))
}

/// Directories under `root` (itself included) holding a package with a `src/` directory.
fn find_crates(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
        if has_table(&dir.join("Cargo.toml"), "package") && dir.join("src").is_dir() {
            found.push(dir.to_path_buf());
        }
        if depth == CRATE_SEARCH_DEPTH {
            return;
        }
        for sub in sorted_entries(dir) {
            let name = sub.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            if sub.is_dir() && !name.starts_with('.') && !SKIPPED_DIRS.contains(&name.as_str()) {
                walk(&sub, depth + 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(root, 0, &mut found);
    found
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect(),
        Err(_) => Vec::new(),
    };
    entries.sort();
    entries
}

/// The `.rs` files under `dir`, as paths relative to it with `/` separators.
fn rust_files(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, found: &mut Vec<String>) {
        for path in sorted_entries(dir) {
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            if path.is_dir() {
                walk(&path, &format!("{prefix}{name}/"), found);
            } else if name.ends_with(".rs") {
                found.push(format!("{prefix}{name}"));
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, "", &mut found);
    found
}

/// One source file of a unit.
#[derive(Debug, Clone)]
struct SourceFile {
    /// The path shown in reports (relative to the workspace root).
    path: String,
    /// The module the file is, from the unit's root (`[]` for `lib.rs`/`main.rs`).
    module: Vec<String>,
    source: String,
}

/// The files of one compiled crate: a library, the binary of `src/main.rs`, or one of `src/bin/`.
type Unit = Vec<SourceFile>;

/// The module of the file at `rel` (relative to the unit's module directory).
fn module_of(rel: &str) -> Vec<String> {
    if rel == "lib.rs" || rel == "main.rs" {
        return Vec::new();
    }
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    stem.split('/').map(str::to_owned).collect()
}

fn units_of_crate(root: &Path, crate_dir: &Path) -> Vec<Unit> {
    let src = crate_dir.join("src");
    let shown = |rel: &str| {
        let full = src.join(rel);
        full.strip_prefix(root).unwrap_or(&full).to_string_lossy().replace('\\', "/")
    };
    let read = |rel: &str| fs::read_to_string(src.join(rel)).unwrap_or_else(|err| panic!("read {}: {err}", shown(rel)));
    let file = |rel: &str, module: Vec<String>| SourceFile { path: shown(rel), module, source: read(rel) };

    let (bins, rest): (Vec<String>, Vec<String>) =
        rust_files(&src).into_iter().partition(|rel| rel.starts_with("bin/"));
    let has = |name: &str| rest.iter().any(|rel| rel == name);
    let mut units = Vec::new();
    if has("lib.rs") && has("main.rs") {
        // The binary owns `main.rs` and the modules it declares; the library owns the rest.
        let declared = parse(&read("main.rs"), &[]).declared;
        let owned_by_main = |rel: &str| {
            rel == "main.rs"
                || declared.iter().any(|name| rel == format!("{name}.rs") || rel.starts_with(&format!("{name}/")))
        };
        units.push(rest.iter().filter(|rel| owned_by_main(rel)).map(|rel| file(rel, module_of(rel))).collect());
        units.push(rest.iter().filter(|rel| !owned_by_main(rel)).map(|rel| file(rel, module_of(rel))).collect());
    } else if has("lib.rs") || has("main.rs") {
        units.push(rest.iter().map(|rel| file(rel, module_of(rel))).collect());
    }
    // `bin/NAME.rs` or `bin/NAME/main.rs` is a root; its modules live under `bin/NAME/`.
    let mut by_bin: BTreeMap<String, Unit> = BTreeMap::new();
    for rel in &bins {
        let inner = &rel["bin/".len()..];
        let (name, module) = match inner.split_once('/') {
            Some((name, below)) => (name, module_of(below)),
            None => (inner.strip_suffix(".rs").unwrap_or(inner), Vec::new()),
        };
        by_bin.entry(name.to_owned()).or_default().push(file(rel, module));
    }
    units.extend(by_bin.into_values());
    units
}

// ---------------------------------------------------------------------------------------------------
// The lexer: identifiers, `::` and punctuation; literals, comments and lifetimes are dropped to one token.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An identifier or keyword (`r#name` as `name`; `$name` keeps its `$`).
    Ident(String),
    PathSep,
    Punct(char),
    /// A string, char or number literal, or a lifetime.
    Literal,
}

fn is_ident_start(ch: char) -> bool {
    ch == '_' || ch.is_alphabetic()
}

fn is_ident_continue(ch: char) -> bool {
    ch == '_' || ch.is_alphanumeric()
}

fn lex(source: &str) -> Vec<Tok> {
    let c: Vec<char> = source.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            i = skip_block_comment(&c, i);
        } else if ch == '"' {
            i = skip_string(&c, i + 1);
            toks.push(Tok::Literal);
        } else if ch == '\'' {
            i = skip_char_or_lifetime(&c, i);
            toks.push(Tok::Literal);
        } else if is_ident_start(ch) {
            if let Some(end) = skip_prefixed_literal(&c, i) {
                i = end;
                toks.push(Tok::Literal);
                continue;
            }
            let start = if ch == 'r' && next == Some('#') { i + 2 } else { i };
            let end = ident_end(&c, start);
            toks.push(Tok::Ident(c[start..end].iter().collect()));
            i = end;
        } else if ch.is_ascii_digit() {
            i = ident_end(&c, i);
            toks.push(Tok::Literal);
        } else if ch == ':' && next == Some(':') {
            toks.push(Tok::PathSep);
            i += 2;
        } else if ch == '$' && next.is_some_and(is_ident_start) {
            let end = ident_end(&c, i + 1);
            toks.push(Tok::Ident(c[i..end].iter().collect()));
            i = end;
        } else {
            toks.push(Tok::Punct(ch));
            i += 1;
        }
    }
    toks
}

fn ident_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() && is_ident_continue(c[i]) {
        i += 1;
    }
    i
}

/// From the `/` of `/*`, past the matching `*/` (block comments nest).
fn skip_block_comment(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// From just after an opening `"`, past the closing one.
fn skip_string(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// From a `'`: past a char literal (`'x'`, `'\n'`, `'\u{1F600}'`), or past a lifetime or label (`'a`).
fn skip_char_or_lifetime(c: &[char], i: usize) -> usize {
    match c.get(i + 1) {
        Some('\\') => {
            let mut j = i + 3;
            while j < c.len() && c[j] != '\'' {
                j += 1;
            }
            j + 1
        }
        Some(_) if c.get(i + 2) == Some(&'\'') => i + 3,
        _ => ident_end(c, i + 1),
    }
}

/// At an identifier start: the end of a literal with a prefix (`b"..", b'.', c"..", r"..", r#".."#,
/// br#".."#, cr".."`), or `None` if this is an identifier (including a raw one, `r#name`).
fn skip_prefixed_literal(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(c[j], 'b' | 'c') {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return match c.get(j) {
            Some('"') if j > i => Some(skip_string(c, j + 1)),
            Some('\'') if j > i && c[i] == 'b' => Some(skip_char_or_lifetime(c, j)),
            _ => None,
        };
    }
    j += 1;
    let mut hashes = 0;
    while c.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(j)
}

// ---------------------------------------------------------------------------------------------------
// The parser: the paths that one file names, outside test code.

/// A path named in a file, before it is resolved against the unit's modules.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PathRef {
    /// The module the path stands in (the file's module plus any inline `mod x { .. }`).
    scope: Vec<String>,
    /// The segments, from the first (`crate`, `super`, `self`, `$crate` or a bare name).
    segments: Vec<String>,
    /// For a `use` at file level: the name it binds (the alias, or the last segment).
    binds: Option<String>,
}

/// What one file says about its imports.
#[derive(Debug, Default)]
struct Facts {
    paths: Vec<PathRef>,
    /// Modules declared under `#[cfg(test)]` (`#[cfg(test)] mod tests;`): whole files of test code.
    test_modules: Vec<Vec<String>>,
    /// Modules declared at file level with `mod x;`.
    declared: Vec<String>,
    /// Names standing for this crate (`extern crate self as name;`).
    crate_aliases: Vec<String>,
}

fn parse(source: &str, module: &[String]) -> Facts {
    let toks = lex(source);
    let mut facts = Facts::default();
    let ident = |k: usize| match toks.get(k) {
        Some(Tok::Ident(name)) => Some(name.as_str()),
        _ => None,
    };
    let punct = |k: usize, ch: char| toks.get(k) == Some(&Tok::Punct(ch));
    // Inline modules entered, with the brace depth inside each.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let mut depth = 0;
    let scope = |inline: &[(String, usize)]| {
        let mut scope = module.to_vec();
        scope.extend(inline.iter().map(|(name, _)| name.clone()));
        scope
    };
    let mut i = 0;
    while i < toks.len() {
        if punct(i, '#') {
            let inner = punct(i + 1, '!');
            let open = i + 1 + usize::from(inner);
            if punct(open, '[') {
                let close = matching(&toks, open);
                if is_cfg_test(&toks[open + 1..close.min(toks.len())]) {
                    if inner && inline.is_empty() {
                        break; // `#![cfg(test)]`: the whole file is test code
                    }
                    if !inner {
                        i = skip_item(&toks, close + 1, &scope(&inline), &mut facts.test_modules);
                        continue;
                    }
                }
            }
            i += 1;
        } else if ident(i) == Some("use") {
            let mut found = Vec::new();
            i = use_tree(&toks, i + 1, &mut Vec::new(), &mut found);
            let here = scope(&inline);
            for (segments, alias) in found {
                let binds = if inline.is_empty() { binding(&segments, alias) } else { None };
                facts.paths.push(PathRef { scope: here.clone(), segments, binds });
            }
        } else if ident(i) == Some("mod") && ident(i + 1).is_some() {
            let name = ident(i + 1).unwrap_or_default().to_owned();
            if punct(i + 2, ';') && inline.is_empty() {
                facts.declared.push(name);
            } else if punct(i + 2, '{') {
                pending_mod = Some(name);
            }
            i += 2;
        } else if ident(i) == Some("extern") && ident(i + 1) == Some("crate") && ident(i + 2) == Some("self") {
            if let (Some("as"), Some(alias)) = (ident(i + 3), ident(i + 4)) {
                facts.crate_aliases.push(alias.to_owned());
            }
            i += 3;
        } else if punct(i, '{') {
            depth += 1;
            if let Some(name) = pending_mod.take() {
                inline.push((name, depth));
            }
            i += 1;
        } else if punct(i, '}') {
            if inline.last().is_some_and(|(_, inside)| *inside == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
            i += 1;
        } else if let Some(first) = ident(i).filter(|_| toks.get(i + 1) == Some(&Tok::PathSep)) {
            let after_path_sep = i > 0 && toks[i - 1] == Tok::PathSep;
            let after_dot = i > 0 && punct(i - 1, '.');
            let in_visibility = i > 1 && ident(i - 1) == Some("in") && punct(i - 2, '('); // pub(in crate::x)
            let mut segments = vec![first.to_owned()];
            let mut k = i + 1;
            while toks.get(k) == Some(&Tok::PathSep) {
                match ident(k + 1) {
                    Some(name) => segments.push(name.to_owned()),
                    None => break,
                }
                k += 2;
            }
            let usable = first == "$crate" || !(first.starts_with('$') || first == "Self");
            if usable && !after_path_sep && !after_dot && !in_visibility && segments.len() > 1 {
                facts.paths.push(PathRef { scope: scope(&inline), segments, binds: None });
            }
            i = k;
        } else {
            i += 1;
        }
    }
    facts
}

/// The index of the bracket closing the one at `open` (or the end of the tokens).
fn matching(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, tok) in toks.iter().enumerate().skip(open) {
        match tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// `cfg(test)` or `cfg(all(test, ..))`: code that exists only in tests.
fn is_cfg_test(attr: &[Tok]) -> bool {
    let word = |k: usize, text: &str| attr.get(k) == Some(&Tok::Ident(text.to_owned()));
    let open = |k: usize| attr.get(k) == Some(&Tok::Punct('('));
    let close = |k: usize| attr.get(k) == Some(&Tok::Punct(')'));
    word(0, "cfg")
        && open(1)
        && ((word(2, "test") && close(3) && attr.len() == 4) || (word(2, "all") && open(3) && word(4, "test")))
}

/// Skips the item that starts at `i` (after a `#[cfg(test)]`), returning the index after it. A
/// `mod name;` there declares a module of test code.
fn skip_item(toks: &[Tok], mut i: usize, scope: &[String], test_modules: &mut Vec<Vec<String>>) -> usize {
    while toks.get(i) == Some(&Tok::Punct('#')) && toks.get(i + 1) == Some(&Tok::Punct('[')) {
        i = matching(toks, i + 1) + 1;
    }
    let mut k = i;
    if toks.get(k) == Some(&Tok::Ident("pub".to_owned())) {
        k += 1;
        if toks.get(k) == Some(&Tok::Punct('(')) {
            k = matching(toks, k) + 1;
        }
    }
    if let (Some(Tok::Ident(keyword)), Some(Tok::Ident(name)), Some(Tok::Punct(';'))) =
        (toks.get(k), toks.get(k + 1), toks.get(k + 2))
        && keyword == "mod"
    {
        let mut module = scope.to_vec();
        module.push(name.clone());
        test_modules.push(module);
        return k + 3;
    }
    let mut depth = 0usize;
    while let Some(tok) = toks.get(i) {
        match tok {
            Tok::Punct('(' | '[') => depth += 1,
            Tok::Punct(')' | ']') => depth = depth.saturating_sub(1),
            Tok::Punct(';') if depth == 0 => return i + 1,
            Tok::Punct('{') if depth == 0 => return matching(toks, i) + 1,
            Tok::Punct('}') if depth == 0 => return i, // the end of the enclosing block: leave it
            _ => {}
        }
        i += 1;
    }
    i
}

/// Reads a use tree from `i` (after `use`, or inside a `{ .. }` group): every full path it names, with
/// its alias. A glob ends in `*`. Returns the index after the tree.
fn use_tree(
    toks: &[Tok],
    mut i: usize,
    prefix: &mut Vec<String>,
    found: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    let depth = prefix.len();
    if prefix.is_empty() && toks.get(i) == Some(&Tok::PathSep) {
        prefix.push("::".to_owned()); // a global path: another crate
        i += 1;
    }
    loop {
        match toks.get(i) {
            Some(Tok::Ident(name)) => {
                prefix.push(name.clone());
                i += 1;
                if toks.get(i) == Some(&Tok::PathSep) {
                    i += 1;
                    continue;
                }
                let mut alias = None;
                if toks.get(i) == Some(&Tok::Ident("as".to_owned())) {
                    if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                        alias = Some(name.clone());
                    }
                    i += 2;
                }
                found.push((prefix.clone(), alias));
            }
            Some(Tok::Punct('*')) => {
                prefix.push("*".to_owned());
                found.push((prefix.clone(), None));
                i += 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                while let Some(tok) = toks.get(i) {
                    match tok {
                        Tok::Punct('}') => {
                            i += 1;
                            break;
                        }
                        Tok::Punct(',') => i += 1,
                        _ => {
                            let before = i;
                            i = use_tree(toks, i, prefix, found);
                            if i == before {
                                i += 1; // not a use tree after all: do not loop on it
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        prefix.truncate(depth);
        return i;
    }
}

/// The name a `use` binds in its module: the alias, else the last segment (`x::{self}` binds `x`).
fn binding(segments: &[String], alias: Option<String>) -> Option<String> {
    if alias.is_some() {
        return alias;
    }
    match segments {
        [.., parent, last] if last == "self" => Some(parent.clone()),
        [.., last] if last != "*" => Some(last.clone()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------------
// The graph: files, the arrows between them with the names that tie them, and its circles.

#[derive(Debug, Default)]
struct Graph {
    crates: usize,
    files: Vec<String>,
    /// (from, to) -> the names `from` takes from `to`.
    edges: BTreeMap<(usize, usize), BTreeSet<String>>,
}

enum Resolved {
    /// The file (index in the unit) whose module the path goes into, and the name taken from it
    /// (the module's own name when the path names the module itself).
    Internal(usize, String),
    /// A path into another crate.
    External,
}

/// The names a unit's files resolve paths with.
struct Names<'a> {
    /// File module -> index of its file in the unit.
    modules: &'a BTreeMap<Vec<String>, usize>,
    /// Names standing for the crate itself (`extern crate self as name`).
    aliases: &'a [String],
    /// Modules the file brought into scope by `use` (`use crate::{plan, scheduler}`), by local name.
    imported: &'a BTreeMap<String, Vec<String>>,
}

/// Resolves `path` against the unit's file modules: to the longest module prefix that is a file.
fn resolve(path: &PathRef, names: &Names<'_>) -> Option<Resolved> {
    let Names { modules, aliases, imported } = names;
    let segments = &path.segments;
    let first = segments.first()?.as_str();
    let (mut full, rest) = if first == "crate" || first == "$crate" || aliases.iter().any(|alias| alias == first) {
        (Vec::new(), &segments[1..])
    } else if first == "self" {
        (path.scope.clone(), &segments[1..])
    } else if first == "super" {
        let mut base = path.scope.clone();
        let supers = segments.iter().take_while(|segment| *segment == "super").count();
        for _ in 0..supers {
            base.pop()?;
        }
        (base, &segments[supers..])
    } else {
        let mut child = path.scope.clone();
        child.push(first.to_owned());
        if modules.contains_key(&child) {
            (path.scope.clone(), &segments[..])
        } else if let Some(module) = imported.get(first) {
            (module.clone(), &segments[1..])
        } else {
            return Some(Resolved::External);
        }
    };
    full.extend(rest.iter().filter(|segment| *segment != "self").cloned());
    (0..=full.len()).rev().find_map(|len| {
        let file = *modules.get(&full[..len])?;
        let name = full.get(len).or(full.last()).map_or_else(|| "crate".to_owned(), String::clone);
        Some(Resolved::Internal(file, name))
    })
}

fn scan_workspace(root: &Path) -> Graph {
    let crates = find_crates(root);
    let mut graph = Graph { crates: crates.len(), ..Graph::default() };
    for crate_dir in &crates {
        for unit in units_of_crate(root, crate_dir) {
            graph.add_unit(&unit);
        }
    }
    graph
}

impl Graph {
    /// Adds one unit's files and the arrows between them.
    fn add_unit(&mut self, unit: &[SourceFile]) {
        let facts: Vec<Facts> = unit.iter().map(|file| parse(&file.source, &file.module)).collect();
        let test_modules: Vec<&Vec<String>> = facts.iter().flat_map(|facts| &facts.test_modules).collect();
        let aliases: Vec<String> = facts.iter().flat_map(|facts| facts.crate_aliases.iter().cloned()).collect();
        let is_test = |module: &[String]| test_modules.iter().any(|test| module.starts_with(test));
        let kept: Vec<usize> = (0..unit.len()).filter(|&k| !is_test(&unit[k].module)).collect();
        let modules: BTreeMap<Vec<String>, usize> = kept.iter().map(|&k| (unit[k].module.clone(), k)).collect();

        // What each file binds by `use`: names of another crate's (naming them through this file is no
        // arrow), and modules of this one (`plan::planned(..)` after `use crate::plan`).
        let no_imports = BTreeMap::new();
        let mut external: Vec<BTreeSet<String>> = vec![BTreeSet::new(); unit.len()];
        let mut imported: Vec<BTreeMap<String, Vec<String>>> = vec![BTreeMap::new(); unit.len()];
        for &k in &kept {
            let names = Names { modules: &modules, aliases: &aliases, imported: &no_imports };
            for path in &facts[k].paths {
                let Some(bound) = &path.binds else { continue };
                match resolve(path, &names) {
                    Some(Resolved::External) => {
                        external[k].insert(bound.clone());
                    }
                    Some(Resolved::Internal(file, name)) if unit[file].module.last() == Some(&name) => {
                        imported[k].insert(bound.clone(), unit[file].module.clone());
                    }
                    _ => {}
                }
            }
        }

        // Graph indices of the kept files (test files are not rooms).
        let mut index: BTreeMap<usize, usize> = BTreeMap::new();
        for &k in &kept {
            index.insert(k, self.files.len());
            self.files.push(unit[k].path.clone());
        }
        for &from in &kept {
            let names = Names { modules: &modules, aliases: &aliases, imported: &imported[from] };
            for path in &facts[from].paths {
                if let Some(Resolved::Internal(to, name)) = resolve(path, &names)
                    && to != from
                    && !external[to].contains(&name)
                {
                    self.edges.entry((index[&from], index[&to])).or_default().insert(name);
                }
            }
        }
    }

    fn successors(&self, from: usize) -> impl Iterator<Item = usize> + '_ {
        self.edges.range((from, 0)..(from + 1, 0)).map(|(&(_, to), _)| to)
    }

    /// The strongly connected components with more than one file (Tarjan), each sorted.
    fn tangles(&self) -> Vec<Vec<usize>> {
        struct Tarjan<'a> {
            graph: &'a Graph,
            index: Vec<Option<usize>>,
            low: Vec<usize>,
            on_stack: Vec<bool>,
            stack: Vec<usize>,
            next: usize,
            found: Vec<Vec<usize>>,
        }
        impl Tarjan<'_> {
            fn visit(&mut self, v: usize) {
                self.index[v] = Some(self.next);
                self.low[v] = self.next;
                self.next += 1;
                self.stack.push(v);
                self.on_stack[v] = true;
                let successors: Vec<usize> = self.graph.successors(v).collect();
                for w in successors {
                    match self.index[w] {
                        None => {
                            self.visit(w);
                            self.low[v] = self.low[v].min(self.low[w]);
                        }
                        Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                        Some(_) => {}
                    }
                }
                if Some(self.low[v]) == self.index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort_by(|a, b| self.graph.files[*a].cmp(&self.graph.files[*b]));
                        self.found.push(component);
                    }
                }
            }
        }
        let n = self.files.len();
        let mut tarjan = Tarjan {
            graph: self,
            index: vec![None; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            next: 0,
            found: Vec::new(),
        };
        for v in 0..n {
            if tarjan.index[v].is_none() {
                tarjan.visit(v);
            }
        }
        let mut found = tarjan.found;
        found.sort_by(|a, b| self.files[a[0]].cmp(&self.files[b[0]]));
        found
    }

    /// A shortest circle from `start` back to it, inside `component`: the files in order, `start` first.
    fn shortest_circle(&self, start: usize, component: &BTreeSet<usize>) -> Vec<usize> {
        let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(v) = queue.pop_front() {
            for w in self.successors(v).filter(|w| component.contains(w)) {
                if w == start {
                    let mut circle = vec![v];
                    while let Some(&before) = came_from.get(circle.last().unwrap_or(&start)) {
                        circle.push(before);
                    }
                    circle.reverse();
                    return circle;
                }
                if let std::collections::btree_map::Entry::Vacant(entry) = came_from.entry(w) {
                    entry.insert(v);
                    queue.push_back(w);
                }
            }
        }
        vec![start]
    }

    /// Every tangle: its files, a circle through each of them with the names that tie every step,
    /// and all the arrows inside it.
    fn report(&self, tangles: &[Vec<usize>]) -> String {
        let mut out = String::new();
        let tie = |from: usize, to: usize| {
            let names = self.edges.get(&(from, to)).map(|names| names.iter().cloned().collect::<Vec<_>>());
            format!("{} -> {} ({})", self.files[from], self.files[to], names.unwrap_or_default().join(", "))
        };
        for (n, component) in tangles.iter().enumerate() {
            let files: Vec<&str> = component.iter().map(|&k| self.files[k].as_str()).collect();
            let _ = writeln!(out, "circle {}: {} files: {}", n + 1, files.len(), files.join(", "));
            let members: BTreeSet<usize> = component.iter().copied().collect();
            let mut covered = BTreeSet::new();
            for &start in component {
                if covered.contains(&start) {
                    continue;
                }
                let circle = self.shortest_circle(start, &members);
                covered.extend(circle.iter().copied());
                let mut names: Vec<&str> = circle.iter().map(|&k| self.files[k].as_str()).collect();
                names.push(&self.files[start]);
                let _ = writeln!(out, "  {}", names.join(" -> "));
                for (k, &from) in circle.iter().enumerate() {
                    let _ = writeln!(out, "      {}", tie(from, circle[(k + 1) % circle.len()]));
                }
            }
            let _ = writeln!(out, "  all arrows inside:");
            for &from in component {
                for to in self.successors(from).filter(|to| members.contains(to)) {
                    let _ = writeln!(out, "      {}", tie(from, to));
                }
            }
            out.push('\n');
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------------
// The parser and resolver on small examples.

#[cfg(test)]
mod tests {
    use super::*;

    /// The graph of one crate given as `(path under src/, source)` pairs.
    fn graph_of(files: &[(&str, &str)]) -> Graph {
        let unit: Unit = files
            .iter()
            .map(|(rel, source)| SourceFile {
                path: format!("src/{rel}"),
                module: module_of(rel),
                source: (*source).to_owned(),
            })
            .collect();
        let mut graph = Graph { crates: 1, ..Graph::default() };
        graph.add_unit(&unit);
        graph
    }

    /// The names `from` takes from `to` (paths under `src/`), or `None` without an arrow.
    fn tie(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
        let at = |rel: &str| graph.files.iter().position(|file| *file == format!("src/{rel}")).unwrap();
        graph.edges.get(&(at(from), at(to))).map(|names| names.iter().cloned().collect())
    }

    fn names(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|name| (*name).to_owned()).collect())
    }

    #[test]
    fn modules_follow_the_file_layout() {
        assert_eq!(module_of("lib.rs"), Vec::<String>::new());
        assert_eq!(module_of("main.rs"), Vec::<String>::new());
        assert_eq!(module_of("render/mod.rs"), ["render"]);
        assert_eq!(module_of("render.rs"), ["render"]);
        assert_eq!(module_of("engine/files.rs"), ["engine", "files"]);
    }

    #[test]
    fn a_grouped_use_ties_each_module_it_names() {
        let graph = graph_of(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\npub(crate) use crate::{a::X, b::{Y, Z}, c::{self, deep::W}};"),
            ("a.rs", "pub struct X;"),
            ("b.rs", "pub struct Y;\npub struct Z;"),
            ("c/mod.rs", "pub mod deep;"),
            ("c/deep.rs", "pub struct W;"),
        ]);
        assert_eq!(tie(&graph, "lib.rs", "a.rs"), names(&["X"]));
        assert_eq!(tie(&graph, "lib.rs", "b.rs"), names(&["Y", "Z"]));
        assert_eq!(tie(&graph, "lib.rs", "c/mod.rs"), names(&["c"]));
        assert_eq!(tie(&graph, "lib.rs", "c/deep.rs"), names(&["W"]));
        assert_eq!(graph.edges.len(), 4, "`mod` declarations are no arrows: {:?}", graph.edges);
    }

    #[test]
    fn super_resolves_from_a_nested_module() {
        let graph = graph_of(&[
            ("main.rs", "mod cli;\npub(crate) struct Outcome;"),
            ("cli/mod.rs", "mod cmd;\npub(crate) struct Args;"),
            ("cli/cmd/mod.rs", "mod cache;\npub(crate) use super::Args;"),
            (
                "cli/cmd/cache.rs",
                "use super::super::Args;\nfn f() { let _ = super::helper(); let _ = crate::Outcome; }",
            ),
        ]);
        assert_eq!(tie(&graph, "cli/cmd/mod.rs", "cli/mod.rs"), names(&["Args"]));
        assert_eq!(tie(&graph, "cli/cmd/cache.rs", "cli/mod.rs"), names(&["Args"]));
        assert_eq!(tie(&graph, "cli/cmd/cache.rs", "cli/cmd/mod.rs"), names(&["helper"]));
        assert_eq!(tie(&graph, "cli/cmd/cache.rs", "main.rs"), names(&["Outcome"]));
        assert_eq!(tie(&graph, "cli/mod.rs", "cli/cmd/mod.rs"), None);
    }

    #[test]
    fn inline_paths_go_to_the_longest_module_that_is_a_file() {
        let graph = graph_of(&[
            ("main.rs", "mod api;\nmod engine;\nmod render;"),
            ("render.rs", "pub(crate) fn format_ms(_: u64) {}"),
            ("engine/mod.rs", "pub(crate) mod files;\npub(crate) struct ContainerJobs;"),
            ("engine/files.rs", "pub(crate) struct ActionArtifacts;"),
            (
                "api/mod.rs",
                "fn f(jobs: crate::engine::ContainerJobs) -> crate::engine::files::ActionArtifacts {\n\
                 \x20   crate::render::format_ms(1);\n\
                 \x20   Vec::<u8>::new().iter().collect::<Vec<_>>();\n\
                 \x20   std::process::exit(0)\n}",
            ),
        ]);
        assert_eq!(tie(&graph, "api/mod.rs", "engine/mod.rs"), names(&["ContainerJobs"]));
        assert_eq!(tie(&graph, "api/mod.rs", "engine/files.rs"), names(&["ActionArtifacts"]));
        assert_eq!(tie(&graph, "api/mod.rs", "render.rs"), names(&["format_ms"]));
        assert_eq!(graph.edges.len(), 3, "{:?}", graph.edges);
    }

    #[test]
    fn a_child_module_named_bare_is_an_arrow() {
        let graph = graph_of(&[
            ("main.rs", "mod render;"),
            (
                "render/mod.rs",
                "mod live;\nmod view;\npub(crate) use view::BuildView;\nfn f() { live::LiveBlock::new(); }",
            ),
            ("render/view.rs", "pub(crate) struct BuildView;"),
            ("render/live.rs", "use super::BuildView;\npub(crate) struct LiveBlock;"),
        ]);
        assert_eq!(tie(&graph, "render/mod.rs", "render/view.rs"), names(&["BuildView"]));
        assert_eq!(tie(&graph, "render/mod.rs", "render/live.rs"), names(&["LiveBlock"]));
        assert_eq!(tie(&graph, "render/live.rs", "render/mod.rs"), names(&["BuildView"]));
        let tangles = graph.tangles();
        assert_eq!(tangles.len(), 1, "render/mod.rs and render/live.rs import each other");
        assert_eq!(tangles[0].len(), 2);
    }

    #[test]
    fn test_code_is_ignored() {
        let graph = graph_of(&[
            ("lib.rs", "mod a;\nmod b;"),
            (
                "a.rs",
                "pub struct X;\n\
                 #[cfg(test)]\nmod tests {\n    use crate::b::Y;\n    fn f() { let _ = crate::b::Y; let _ = '}'; }\n}\n\
                 #[cfg(test)]\nuse crate::b::Z;\n\
                 #[cfg(test)]\n#[path = \"a_tests.rs\"]\nmod more_tests;\n\
                 #[cfg(all(test, unix))]\nfn helper() -> crate::b::Y { todo!() }\n\
                 fn after() { let _ = crate::b::W; }",
            ),
            ("a/more_tests.rs", "use crate::b::Y;"),
            ("b.rs", "pub struct Y;\npub struct Z;\npub struct W;"),
        ]);
        assert_eq!(tie(&graph, "a.rs", "b.rs"), names(&["W"]), "only the path after the test code counts");
        assert!(!graph.files.contains(&"src/a/more_tests.rs".to_owned()), "a `#[cfg(test)] mod x;` file is test code");
        assert_eq!(graph.edges.len(), 1, "{:?}", graph.edges);
    }

    #[test]
    fn literals_and_comments_are_not_paths() {
        let graph = graph_of(&[
            ("lib.rs", "mod a;\nmod b;"),
            ("b.rs", "pub struct Y;\npub struct Z;"),
            (
                "a.rs",
                "//! See [`crate::b::Y`].\n\
                 /* crate::b::Y /* nested */ crate::b::Y */\n\
                 fn f<'a>(s: &'a str) -> &'a str {\n\
                 \x20   let _ = \"crate::b::Y \\\" crate::b::Y\";\n\
                 \x20   let _ = r#\"use crate::b::Y; \" crate::b::Y\"#;\n\
                 \x20   let _ = b\"crate::b::Y\";\n\
                 \x20   let _ = ('\"', '\\'', b'\"');\n\
                 \x20   let r#type = crate::b::Z;\n\
                 \x20   s\n}",
            ),
        ]);
        assert_eq!(tie(&graph, "a.rs", "b.rs"), names(&["Z"]));
    }

    #[test]
    fn a_module_brought_in_by_use_resolves_its_inline_paths() {
        let graph = graph_of(&[
            ("lib.rs", "mod plan;\nmod script;\nmod scheduler;"),
            ("plan.rs", "pub(crate) fn planned() {}"),
            ("scheduler.rs", "pub(crate) fn run() {}"),
            ("script.rs", "use crate::{plan, scheduler as sched};\nfn f() { plan::planned(); sched::run(); }"),
        ]);
        assert_eq!(tie(&graph, "script.rs", "plan.rs"), names(&["plan", "planned"]));
        assert_eq!(tie(&graph, "script.rs", "scheduler.rs"), names(&["run", "scheduler"]));
    }

    #[test]
    fn names_handed_on_from_another_crate_are_no_arrow() {
        let graph = graph_of(&[
            ("lib.rs", "mod a;\nuse other_crate as protocol;\npub use tokio::join;\npub struct Own;"),
            (
                "a.rs",
                "use crate::protocol::Event;\nfn f() { crate::join!(); crate::protocol::now(); let _ = crate::Own; }",
            ),
        ]);
        assert_eq!(tie(&graph, "a.rs", "lib.rs"), names(&["Own"]));
    }

    #[test]
    fn a_parent_and_its_child_are_no_circle_by_themselves() {
        let graph = graph_of(&[
            ("lib.rs", "mod render;"),
            ("render/mod.rs", "mod plain;\npub(crate) struct BuildView;"),
            ("render/plain.rs", "use super::BuildView;"),
        ]);
        assert_eq!(tie(&graph, "render/plain.rs", "render/mod.rs"), names(&["BuildView"]));
        assert!(graph.tangles().is_empty());
    }

    #[test]
    fn a_circle_between_two_files_is_found_and_reported() {
        let graph = graph_of(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;"),
            ("a.rs", "use crate::b::Y;\npub struct X;"),
            ("b.rs", "pub struct Y;\nfn f() -> crate::a::X { todo!() }"),
            ("c.rs", "use crate::{a::X, b::Y};"),
        ]);
        let tangles = graph.tangles();
        assert_eq!(tangles.len(), 1);
        let report = graph.report(&tangles);
        assert!(report.contains("circle 1: 2 files: src/a.rs, src/b.rs"), "{report}");
        assert!(report.contains("src/a.rs -> src/b.rs -> src/a.rs"), "{report}");
        assert!(report.contains("src/a.rs -> src/b.rs (Y)"), "{report}");
        assert!(report.contains("src/b.rs -> src/a.rs (X)"), "{report}");
        assert!(!report.contains("src/c.rs"), "{report}");
    }

    #[test]
    fn every_tangle_is_reported_once() {
        let graph = graph_of(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\nmod d;\nmod e;"),
            ("a.rs", "use crate::b::B;"),
            ("b.rs", "use crate::{a::A, c::C};"),
            ("c.rs", "use crate::a::A;"),
            ("d.rs", "use crate::e::E;"),
            ("e.rs", "use crate::d::D;"),
        ]);
        let tangles = graph.tangles();
        assert_eq!(tangles.len(), 2);
        assert_eq!(tangles[0].len(), 3);
        assert_eq!(tangles[1].len(), 2);
    }
}
