//! Dependencies run one way (docs/architecture.md): no import cycle between the files under
//! `src/`, nor between its top-level modules.
//!
//! Every `.rs` file under `src/` is read and placed by following the `mod` declarations from
//! `lib.rs` and `main.rs` (two crates). Each `crate::`, `super::` and `self::` path of code
//! that is not test-only, `use` groups `{…}` included, is resolved to the file that defines
//! its target, following the `use` declarations on the way, so that a re-export in a
//! `mod.rs` does not hide which file is really used. Left out: comments and string literals
//! (a doc link is not a dependency); `#[cfg(test)]` items and the files they declare (tests
//! may use anything); and paths from a module's root file into the files it declares itself
//! (a `mod.rs` is the facade of its own files).
//!
//! Run with `--nocapture` to print the top-level edges.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

#[test]
fn files_under_src_import_each_other_one_way() {
    let analysis = analyse(&read_src());
    assert!(
        analysis.files.contains_key("lib.rs") && analysis.files.len() > 50,
        "found only {} files under src/",
        analysis.files.len()
    );
    assert!(analysis.problems.is_empty(), "{}", analysis.problems.join("\n"));
    let cycles = analysis.file_cycles();
    assert!(cycles.is_empty(), "{}", cycles.join("\n\n"));
}

#[test]
fn top_level_modules_use_each_other_one_way() {
    let analysis = analyse(&read_src());
    assert!(analysis.problems.is_empty(), "{}", analysis.problems.join("\n"));
    let edges = analysis.top_level_edges();
    assert!(edges.len() > 10, "found only {} top-level edges", edges.len());
    let mut uses: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        uses.entry(from).or_default().push(to);
    }
    for (from, to) in &uses {
        println!("{from} -> {}", to.join(", "));
    }
    let cycles = analysis.top_level_cycles();
    assert!(cycles.is_empty(), "{}", cycles.join("\n\n"));
}

#[test]
fn detects_a_cycle_between_two_files() {
    let analysis = analyse(&sources(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::B;\npub struct A;\n"),
        ("b.rs", "pub struct B;\nfn f(_: crate::a::A) {}\n"),
    ]));
    assert!(analysis.problems.is_empty(), "{:?}", analysis.problems);
    let cycles = analysis.file_cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(
        cycles[0].starts_with("import cycle between files: a.rs -> b.rs -> a.rs"),
        "{}",
        cycles[0]
    );
    assert!(cycles[0].contains("src/a.rs:1: `crate::b::B`"), "{}", cycles[0]);
    assert!(cycles[0].contains("src/b.rs:2: `crate::a::A`"), "{}", cycles[0]);
    let top = analysis.top_level_cycles();
    assert_eq!(top.len(), 1, "{top:?}");
    assert!(
        top[0].starts_with("import cycle between top-level modules: a -> b -> a"),
        "{}",
        top[0]
    );
}

#[test]
fn detects_a_cycle_behind_re_exports_and_use_groups() {
    let analysis = analyse(&sources(&[
        ("lib.rs", "mod m;\nmod top;\n"),
        (
            "m/mod.rs",
            "mod x;\nmod y;\npub(crate) use x::X;\npub use y::{Y, Z as Renamed};\n",
        ),
        ("m/x.rs", "use super::Renamed;\npub struct X;\n"),
        ("m/y.rs", "pub struct Y;\npub struct Z;\n"),
        (
            "top.rs",
            "use crate::{m::{self, Y}, other};\npub(in crate::top) fn f() -> super::m::X { todo!() }\n",
        ),
    ]));
    let edges = analysis.file_edges();
    assert!(
        edges.contains_key(&("m/x.rs".into(), "m/y.rs".into())),
        "{edges:?}"
    );
    assert!(
        edges.contains_key(&("top.rs".into(), "m/mod.rs".into())),
        "{edges:?}"
    );
    assert!(
        edges.contains_key(&("top.rs".into(), "m/y.rs".into())),
        "{edges:?}"
    );
    assert!(
        edges.contains_key(&("top.rs".into(), "m/x.rs".into())),
        "{edges:?}"
    );
    assert!(analysis.file_cycles().is_empty());

    let analysis = analyse(&sources(&[
        ("lib.rs", "mod m;\n"),
        (
            "m/mod.rs",
            "mod x;\nmod y;\npub(crate) use x::X;\npub use y::{Y, Z as Renamed};\n",
        ),
        ("m/x.rs", "use super::Renamed;\npub struct X;\n"),
        (
            "m/y.rs",
            "pub struct Y;\npub struct Z;\nimpl Z { fn x() -> super::X { super::X } }\n",
        ),
    ]));
    let cycles = analysis.file_cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].contains("m/x.rs -> m/y.rs -> m/x.rs"), "{}", cycles[0]);
    assert!(cycles[0].contains("src/m/y.rs:3: `super::X`"), "{}", cycles[0]);
}

#[test]
fn leaves_out_tests_comments_strings_and_a_root_using_its_own_files() {
    let analysis = analyse(&sources(&[
        ("lib.rs", "mod a;\nmod b;\npub use a::A;\n"),
        (
            "a.rs",
            "pub struct A;\n/// See [`crate::b::B`].\nconst S: &str = \"crate::b::B\";\n\
             const R: &str = r#\"super::b\"#;\nfn f<'a>(c: char) -> bool { c == '\"' }\n\
             #[cfg(test)]\nmod tests { use crate::b::B; }\n#[cfg(test)]\nmod more;\n",
        ),
        ("a/more.rs", "use crate::b::B;\n"),
        (
            "b.rs",
            "mod inner;\npub struct B(crate::a::A);\nfn g() { inner::h(); self::inner::h() }\n",
        ),
        ("b/inner.rs", "pub(super) fn h() { let _ = super::B; }\n"),
    ]));
    assert!(analysis.problems.is_empty(), "{:?}", analysis.problems);
    let edges: Vec<_> = analysis.file_edges().into_keys().collect();
    assert_eq!(
        edges,
        [
            ("b.rs".to_owned(), "a.rs".to_owned()),
            ("b/inner.rs".into(), "b.rs".into())
        ]
    );
}

#[test]
fn reports_files_outside_the_module_tree() {
    let analysis = analyse(&sources(&[
        ("lib.rs", "mod a;\n"),
        ("a.rs", ""),
        ("stray.rs", ""),
    ]));
    assert_eq!(analysis.problems.len(), 1, "{:?}", analysis.problems);
    assert!(
        analysis.problems[0].contains("stray.rs"),
        "{:?}",
        analysis.problems
    );
}

// ---- reading the sources

fn read_src() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text =
                    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let relative = path.strip_prefix(&root).unwrap_or(&path);
                let name: Vec<String> = relative
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect();
                out.push((name.join("/"), text));
            }
        }
    }
    out.sort();
    out
}

fn sources(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect()
}

// ---- tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

impl Token {
    fn is_word(&self, w: &str) -> bool {
        matches!(&self.tok, Tok::Word(x) if x == w)
    }

    fn is_punct(&self, c: char) -> bool {
        self.tok == Tok::Punct(c)
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Words, `::` and single punctuation; comments, string and character literals and
/// lifetimes dropped.
fn tokenize(src: &str) -> Vec<Token> {
    let s: Vec<char> = src.chars().collect();
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skips a string body from its opening quote at `i`; `hashes` > 0 for a raw string.
    let skip_string = |mut i: usize, raw: bool, hashes: usize, line: &mut usize| -> usize {
        i += 1;
        while i < s.len() {
            match s[i] {
                '\n' => *line += 1,
                '\\' if !raw => i += 1,
                '"' if (1..=hashes).all(|k| at(i + k) == '#') => return i + 1 + hashes,
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < s.len() {
        let c = s[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if s[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(i, false, 0, &mut line);
        } else if c == '\'' {
            if at(i + 1) == '\\' {
                i += 3;
                while i < s.len() && s[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                // A lifetime or a label.
                i += 1;
                while is_ident_char(at(i)) {
                    i += 1;
                }
            }
        } else if is_ident_char(c) {
            let start = i;
            while is_ident_char(at(i)) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
            if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                i = skip_string(i, false, 0, &mut line);
            } else if word == "b" && at(i) == '\'' {
                // A byte literal: the quote is read as a character literal next.
            } else if raw_prefix && (at(i) == '"' || at(i) == '#') {
                let mut hashes = 0;
                while at(i + hashes) == '#' {
                    hashes += 1;
                }
                if at(i + hashes) == '"' {
                    i = skip_string(i + hashes, true, hashes, &mut line);
                } else if word == "r" && hashes == 1 && is_ident_char(at(i + 1)) {
                    // A raw identifier, `r#type`.
                    let start = i + 1;
                    i = start;
                    while is_ident_char(at(i)) {
                        i += 1;
                    }
                    out.push(Token {
                        tok: Tok::Word(s[start..i].iter().collect()),
                        line,
                    });
                } else {
                    out.push(Token {
                        tok: Tok::Word(word),
                        line,
                    });
                }
            } else {
                out.push(Token {
                    tok: Tok::Word(word),
                    line,
                });
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    out
}

/// The index just past the bracket group opening at `i`.
fn skip_group(t: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < t.len() {
        match &t[i].tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The index just past the item (or statement, or field) starting at `i`: its `;`, its
/// body's closing brace, or the closing bracket of what encloses it (not consumed).
fn skip_item(t: &[Token], mut i: usize) -> usize {
    let is_use = t.get(i).is_some_and(|x| x.is_word("use"))
        || (t.get(i).is_some_and(|x| x.is_word("pub")) && t[i..].iter().take(6).any(|x| x.is_word("use")));
    let mut depth = 0usize;
    while i < t.len() {
        match &t[i].tok {
            Tok::Punct(';') if depth == 0 => return i + 1,
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 && t[i].is_punct('}') && !is_use {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Whether the attribute whose `[` is at `open` is exactly `cfg(test)`.
fn is_cfg_test(t: &[Token], open: usize) -> bool {
    let want = ["[", "cfg", "(", "test", ")", "]"];
    want.iter().enumerate().all(|(k, w)| {
        t.get(open + k).is_some_and(|x| match &x.tok {
            Tok::Word(s) => s == w,
            Tok::Punct(c) => w.len() == 1 && w.starts_with(*c),
            Tok::PathSep => false,
        })
    })
}

/// Drops attributes, and the items `#[cfg(test)]` marks; returns what is left and the
/// names of the test-only files declared (`#[cfg(test)] mod name;`). `None`: the whole file
/// is test-only (`#![cfg(test)]`).
fn strip_test_code(t: &[Token]) -> Option<(Vec<Token>, Vec<String>)> {
    let mut out = Vec::new();
    let mut test_files = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if t[i].is_punct('#') && t.get(i + 1).is_some_and(|x| x.is_punct('!')) {
            if is_cfg_test(t, i + 2) {
                return None;
            }
            i = skip_group(t, i + 2);
        } else if t[i].is_punct('#') && t.get(i + 1).is_some_and(|x| x.is_punct('[')) {
            let mut test = false;
            while i < t.len() && t[i].is_punct('#') && t.get(i + 1).is_some_and(|x| x.is_punct('[')) {
                test |= is_cfg_test(t, i + 1);
                i = skip_group(t, i + 1);
            }
            if test {
                let end = skip_item(t, i);
                let item = &t[i..end];
                if let Some(k) = item.iter().position(|x| x.is_word("mod")) {
                    if let (Some(Tok::Word(name)), Some(true)) = (
                        item.get(k + 1).map(|x| &x.tok),
                        item.get(k + 2).map(|x| x.is_punct(';')),
                    ) {
                        test_files.push(name.clone());
                    }
                }
                i = end;
            }
        } else {
            out.push(t[i].clone());
            i += 1;
        }
    }
    Some((out, test_files))
}

// ---- paths

/// One path as written, split at `::`, with the name a `use` binds it to.
#[derive(Debug, Clone)]
struct Leaf {
    segments: Vec<String>,
    binds: Option<String>,
    glob: bool,
}

/// Parses a path or `use` tree at `i` with `prefix` before it; returns the index past it.
fn parse_tree(t: &[Token], mut i: usize, prefix: &[String], out: &mut Vec<Leaf>) -> usize {
    let mut segments = prefix.to_vec();
    let leaf = |segments: Vec<String>, binds: Option<String>, glob: bool| Leaf {
        binds: binds.or_else(|| segments.last().cloned()).filter(|_| !glob),
        segments,
        glob,
    };
    if t.get(i).is_some_and(|x| x.tok == Tok::PathSep) {
        i += 1;
    }
    loop {
        match t.get(i).map(|x| &x.tok) {
            Some(Tok::Word(w)) if w == "self" && !prefix.is_empty() && segments.len() == prefix.len() => {
                i += 1;
            }
            Some(Tok::Word(w)) => {
                segments.push(w.clone());
                i += 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                while i < t.len() && !t[i].is_punct('}') {
                    i = parse_tree(t, i, &segments, out);
                    if t.get(i).is_some_and(|x| x.is_punct(',')) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some(Tok::Punct('*')) => {
                out.push(leaf(segments, None, true));
                return i + 1;
            }
            _ => {
                out.push(leaf(segments, None, false));
                return i;
            }
        }
        match t.get(i).map(|x| &x.tok) {
            Some(Tok::PathSep) if t.get(i + 1).is_some_and(|x| !x.is_punct('<')) => i += 1,
            Some(Tok::Word(w)) if w == "as" => {
                let binds = match t.get(i + 1).map(|x| &x.tok) {
                    Some(Tok::Word(name)) => Some(name.clone()),
                    _ => None,
                };
                out.push(leaf(segments, binds, false));
                return i + 2;
            }
            _ => {
                out.push(leaf(segments, None, false));
                return i;
            }
        }
    }
}

// ---- the analysis

/// A file's place: its crate root (`lib.rs` or `main.rs`) and module path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    krate: String,
    module: Vec<String>,
}

/// A path in the code that makes one file use another.
#[derive(Debug, Clone)]
struct Evidence {
    file: String,
    line: usize,
    path: String,
}

#[derive(Debug, Default)]
struct Analysis {
    /// Every non-test file, by its path under `src/`.
    files: BTreeMap<String, Place>,
    /// What each non-test file uses: (from, to) with the paths that say so.
    edges: BTreeMap<(String, String), Vec<Evidence>>,
    /// Files the module tree does not reach.
    problems: Vec<String>,
}

impl Analysis {
    fn file_edges(&self) -> BTreeMap<(String, String), Vec<Evidence>> {
        self.edges.clone()
    }

    /// Edges between top-level modules (a crate's root file is none).
    fn top_level_edges(&self) -> BTreeMap<(String, String), Vec<Evidence>> {
        let top = |file: &str| {
            let place = &self.files[file];
            let name = place.module.first()?;
            Some(if place.krate == "lib.rs" {
                name.clone()
            } else {
                format!("{}:{name}", place.krate)
            })
        };
        let mut out: BTreeMap<(String, String), Vec<Evidence>> = BTreeMap::new();
        for ((from, to), evidence) in &self.edges {
            if let (Some(a), Some(b)) = (top(from), top(to)) {
                if a != b {
                    out.entry((a, b)).or_default().extend(evidence.iter().cloned());
                }
            }
        }
        out
    }

    fn file_cycles(&self) -> Vec<String> {
        cycles("files", &self.edges)
    }

    fn top_level_cycles(&self) -> Vec<String> {
        cycles("top-level modules", &self.top_level_edges())
    }
}

/// The directory holding the files `file` declares with `mod name;`.
fn child_dir(file: &str) -> String {
    let (dir, name) = file.rsplit_once('/').unwrap_or(("", file));
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    match name {
        "lib.rs" | "main.rs" | "mod.rs" => prefix,
        _ => format!("{prefix}{}/", name.trim_end_matches(".rs")),
    }
}

fn analyse(sources: &[(String, String)]) -> Analysis {
    let texts: BTreeMap<&str, &str> = sources.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    let mut analysis = Analysis::default();
    // Tokens of every non-test file, placed by walking the module tree from the roots.
    let mut tokens: BTreeMap<String, Vec<Token>> = BTreeMap::new();
    let mut test_only: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<(String, Place)> = ["lib.rs", "main.rs"]
        .into_iter()
        .filter(|root| texts.contains_key(root))
        .map(|root| {
            let place = Place {
                krate: root.to_owned(),
                module: Vec::new(),
            };
            (root.to_owned(), place)
        })
        .collect();
    while let Some((file, place)) = queue.pop_front() {
        let Some((toks, test_files)) = strip_test_code(&tokenize(texts[file.as_str()])) else {
            test_only.insert(file);
            continue;
        };
        let dir = child_dir(&file);
        let child_file = |name: &str| {
            [format!("{dir}{name}.rs"), format!("{dir}{name}/mod.rs")]
                .into_iter()
                .find(|f| texts.contains_key(f.as_str()))
        };
        for name in test_files {
            if let Some(f) = child_file(&name) {
                // Its own files are test-only too.
                let prefix = child_dir(&f);
                test_only.extend(
                    texts
                        .keys()
                        .filter(|k| **k == f || k.starts_with(&prefix))
                        .map(|k| (*k).to_owned()),
                );
            }
        }
        for k in 0..toks.len().saturating_sub(2) {
            if let (true, Tok::Word(name), true) = (
                toks[k].is_word("mod"),
                &toks[k + 1].tok,
                toks[k + 2].is_punct(';'),
            ) {
                match child_file(name) {
                    Some(f) => {
                        let mut module = place.module.clone();
                        module.push(name.clone());
                        queue.push_back((
                            f,
                            Place {
                                krate: place.krate.clone(),
                                module,
                            },
                        ));
                    }
                    None => analysis
                        .problems
                        .push(format!("src/{file}: `mod {name};` names no file")),
                }
            }
        }
        analysis.files.insert(file.clone(), place);
        tokens.insert(file, toks);
    }
    for file in texts.keys() {
        if !analysis.files.contains_key(*file) && !test_only.contains(*file) {
            analysis.problems.push(format!(
                "src/{file}: not reached by any `mod` declaration from lib.rs or main.rs"
            ));
        }
    }

    // Every path, and every name a `use` binds, with the module it appears in.
    struct Found {
        file: String,
        line: usize,
        module: Vec<String>,
        leaf: Leaf,
        from_use: bool,
    }
    let mut found = Vec::new();
    for (file, toks) in &tokens {
        let place = &analysis.files[file];
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        while i < toks.len() {
            let module = || {
                let mut m = place.module.clone();
                m.extend(inline.iter().map(|(n, _)| n.clone()));
                m
            };
            let starts_path = |w: &str| {
                matches!(w, "crate" | "super" | "self")
                    && toks.get(i + 1).is_some_and(|x| x.tok == Tok::PathSep)
                    && (i == 0 || toks[i - 1].tok != Tok::PathSep)
            };
            match &toks[i].tok {
                Tok::Word(w) if w == "mod" => {
                    if let (Some(Tok::Word(name)), Some(true)) = (
                        toks.get(i + 1).map(|x| &x.tok),
                        toks.get(i + 2).map(|x| x.is_punct('{')),
                    ) {
                        depth += 1;
                        inline.push((name.clone(), depth));
                        i += 3;
                        continue;
                    }
                    i += 1;
                }
                Tok::Word(w) if w == "use" => {
                    let mut leaves = Vec::new();
                    let end = parse_tree(toks, i + 1, &[], &mut leaves);
                    for leaf in leaves {
                        found.push(Found {
                            file: file.clone(),
                            line: toks[i].line,
                            module: module(),
                            leaf,
                            from_use: true,
                        });
                    }
                    i = end;
                }
                Tok::Word(w) if starts_path(w) => {
                    let mut leaves = Vec::new();
                    let end = parse_tree(toks, i, &[], &mut leaves);
                    for leaf in leaves {
                        found.push(Found {
                            file: file.clone(),
                            line: toks[i].line,
                            module: module(),
                            leaf,
                            from_use: false,
                        });
                    }
                    i = end;
                }
                Tok::Punct('{') => {
                    depth += 1;
                    i += 1;
                }
                Tok::Punct('}') => {
                    if inline.last().is_some_and(|(_, d)| *d == depth) {
                        inline.pop();
                    }
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                _ => i += 1,
            }
        }
    }

    // Modules of each crate that are files, and the modules declared in each module.
    let mut modules: BTreeMap<(String, Vec<String>), String> = BTreeMap::new();
    for (file, place) in &analysis.files {
        modules.insert((place.krate.clone(), place.module.clone()), file.clone());
    }
    let is_module = |krate: &str, m: &[String]| {
        modules
            .keys()
            .any(|(k, path)| k == krate && path.len() >= m.len() && path[..m.len()] == *m)
    };
    // A path as the crate sees it, from the module it is written in.
    let absolute = |krate: &str, module: &[String], segments: &[String]| -> Option<Vec<String>> {
        let first = segments.first()?;
        let (mut base, rest) = match first.as_str() {
            "crate" => (Vec::new(), &segments[1..]),
            "self" => (module.to_vec(), &segments[1..]),
            "super" => {
                let mut base = module.to_vec();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                (base, rest)
            }
            // Relative to this module: one of the modules it declares.
            name => {
                let mut child = module.to_vec();
                child.push(name.to_owned());
                if !is_module(krate, &child) {
                    return None;
                }
                (module.to_vec(), segments)
            }
        };
        base.extend(rest.iter().cloned());
        Some(base)
    };
    // What each name a `use` binds stands for.
    let mut binds: BTreeMap<(String, Vec<String>), Vec<String>> = BTreeMap::new();
    for f in found.iter().filter(|f| f.from_use) {
        let krate = &analysis.files[&f.file].krate;
        if let (Some(name), Some(target)) = (&f.leaf.binds, absolute(krate, &f.module, &f.leaf.segments)) {
            if name != "_" {
                let mut key = f.module.clone();
                key.push(name.clone());
                if key != target {
                    binds.insert((krate.clone(), key), target);
                }
            }
        }
    }
    let resolve = |krate: &str, mut path: Vec<String>| -> Option<&String> {
        for _ in 0..32 {
            let through = (1..=path.len())
                .rev()
                .find_map(|n| binds.get(&(krate.to_owned(), path[..n].to_vec())).map(|t| (n, t)));
            match through {
                Some((n, target)) => {
                    let mut next = target.clone();
                    next.extend(path[n..].iter().cloned());
                    path = next;
                }
                None => break,
            }
        }
        (0..=path.len())
            .rev()
            .find_map(|n| modules.get(&(krate.to_owned(), path[..n].to_vec())))
    };
    for f in &found {
        let first = f.leaf.segments.first().map(String::as_str);
        if !matches!(first, Some("crate" | "super" | "self")) {
            continue;
        }
        let from = &analysis.files[&f.file];
        let Some(path) = absolute(&from.krate, &f.module, &f.leaf.segments) else {
            continue;
        };
        let Some(to) = resolve(&from.krate, path) else {
            continue;
        };
        let target = &analysis.files[to];
        let inside = target.module.len() > from.module.len() && target.module.starts_with(&from.module);
        if *to == f.file || inside {
            continue;
        }
        let mut written = f.leaf.segments.join("::");
        if f.leaf.glob {
            written.push_str("::*");
        }
        analysis
            .edges
            .entry((f.file.clone(), to.clone()))
            .or_default()
            .push(Evidence {
                file: f.file.clone(),
                line: f.line,
                path: written,
            });
    }
    analysis
}

// ---- cycles

/// One message per strongly connected set of more than one node: a cycle through it, each
/// step with the paths that make it, then the whole set.
fn cycles(what: &str, edges: &BTreeMap<(String, String), Vec<Evidence>>) -> Vec<String> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
        next.entry(b).or_default();
    }
    let mut out = Vec::new();
    for set in strongly_connected(&next).into_iter().filter(|s| s.len() > 1) {
        let start = set[0];
        // Breadth-first from `start` back to itself, inside the set.
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        'search: while let Some(node) = queue.pop_front() {
            for &n in &next[node] {
                if !set.contains(&n) || came_from.contains_key(n) {
                    continue;
                }
                came_from.insert(n, node);
                if n == start {
                    break 'search;
                }
                queue.push_back(n);
            }
        }
        let mut cycle = vec![start];
        let mut node = came_from[start];
        while node != start {
            cycle.push(node);
            node = came_from[node];
        }
        cycle[1..].reverse();
        cycle.push(start);
        let mut message = format!("import cycle between {what}: {}", cycle.join(" -> "));
        for step in cycle.windows(2) {
            for e in &edges[&(step[0].to_owned(), step[1].to_owned())] {
                message.push_str(&format!("\n  src/{}:{}: `{}`", e.file, e.line, e.path));
            }
        }
        message.push_str(&format!("\n  (all of: {})", set.join(", ")));
        out.push(message);
    }
    out
}

/// Tarjan's algorithm; each set sorted.
fn strongly_connected<'a>(next: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        sets: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, next: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &next[v] {
            if !s.index.contains_key(w) {
                visit(w, next, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut set = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                set.push(w);
                if w == v {
                    break;
                }
            }
            set.sort_unstable();
            s.sets.push(set);
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        sets: Vec::new(),
    };
    for &v in next.keys() {
        if !state.index.contains_key(v) {
            visit(v, next, &mut state);
        }
    }
    state.sets
}
