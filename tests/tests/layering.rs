//! No two modules import each other in a circle: in the server, and in the
//! CLI's store. A module may use its own submodules and its ancestors (a
//! folder's `mod.rs` and its files are one concept); every other use
//! between two files must point one way, so each concept can be read and
//! tested without the ones above it (handlers → services → store).
//!
//! The graph is read from the sources: every path a file names (`crate::…`,
//! `super::…`, a submodule's name, `use` groups included) is resolved to the
//! file of the longest module it names. Test code (`#[cfg(test)]` modules)
//! is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Path,
    Open,
    Close,
    Comma,
    Other(char),
}

/// Identifiers and punctuation, without comments, string and char
/// literals, or lifetimes.
fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if ch == 'r'
            && (next == Some('"') || next == Some('#'))
            && raw_string_end(&c, i).is_some()
        {
            i = raw_string_end(&c, i).unwrap_or(c.len());
        } else if ch == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if ch == '\'' {
            // A char literal ('x', '\n') or a lifetime ('a): skip either.
            if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else if next == Some('\\') {
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else {
                i += 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else if ch == ':' && next == Some(':') {
            out.push(Tok::Path);
            i += 2;
        } else {
            out.push(match ch {
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                c if c.is_whitespace() => {
                    i += 1;
                    continue;
                }
                c => Tok::Other(c),
            });
            i += 1;
        }
    }
    out
}

/// The index after a raw string starting at `i` (`r"…"`, `r#"…"#`), if it is one.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i + 1;
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
        if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

fn ident(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// The tokens without `#[cfg(test)]` modules declared inline, and the
/// names of those declared as files (`#[cfg(test)] mod x;`).
fn without_tests(toks: Vec<Tok>) -> (Vec<Tok>, BTreeSet<String>) {
    let is_cfg_test = |w: &[Tok]| {
        matches!(
            w,
            [
                Tok::Other('#'),
                Tok::Other('['),
                Tok::Ident(cfg),
                Tok::Other('('),
                Tok::Ident(test),
                Tok::Other(')'),
                Tok::Other(']'),
            ] if cfg == "cfg" && test == "test"
        )
    };
    let mut out = Vec::new();
    let mut test_files = BTreeSet::new();
    let mut i = 0;
    while i < toks.len() {
        if i + 7 <= toks.len() && is_cfg_test(&toks[i..i + 7]) {
            let mut j = i + 7;
            if ident(toks.get(j)) == Some("pub") {
                j += 1;
                if toks.get(j) == Some(&Tok::Other('(')) {
                    while j < toks.len() && toks[j] != Tok::Other(')') {
                        j += 1;
                    }
                    j += 1;
                }
            }
            if ident(toks.get(j)) == Some("mod")
                && let Some(name) = ident(toks.get(j + 1))
            {
                if toks.get(j + 2) == Some(&Tok::Other(';')) {
                    test_files.insert(name.to_owned());
                    i = j + 3;
                    continue;
                }
                if toks.get(j + 2) == Some(&Tok::Open) {
                    let mut depth = 0;
                    let mut k = j + 2;
                    while k < toks.len() {
                        match toks[k] {
                            Tok::Open => depth += 1,
                            Tok::Close => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        k += 1;
                    }
                    i = k + 1;
                    continue;
                }
            }
        }
        out.push(toks[i].clone());
        i += 1;
    }
    (out, test_files)
}

/// Every path in `toks`, as segments, with `use` groups expanded.
fn paths(toks: &[Tok]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let starts = matches!(&toks[i], Tok::Ident(_))
            && toks.get(i + 1) == Some(&Tok::Path)
            && (i == 0 || toks[i - 1] != Tok::Path);
        if starts {
            i = path_at(toks, i, &[], &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// Read the path starting at `i` under `prefix` into `out`; the index after it.
fn path_at(toks: &[Tok], mut i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(i) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                i += 1;
            }
            Some(Tok::Open) => {
                i += 1;
                while i < toks.len() && toks[i] != Tok::Close {
                    if toks[i] == Tok::Comma {
                        i += 1;
                    } else if matches!(toks[i], Tok::Ident(_)) {
                        i = path_at(toks, i, &path, out);
                    } else {
                        i += 1;
                    }
                }
                return i + 1;
            }
            _ => break,
        }
        if toks.get(i) == Some(&Tok::Path) {
            i += 1;
        } else {
            break;
        }
    }
    out.push(path);
    i
}

struct Crate {
    /// Module → its file.
    files: BTreeMap<Module, PathBuf>,
    test_modules: BTreeSet<Module>,
}

fn module_of(root: &Path, file: &Path) -> Module {
    let rel = file
        .strip_prefix(root)
        .expect("under the root")
        .with_extension("");
    let mut m: Module = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if m.last().is_some_and(|l| l == "mod") || m == ["lib"] || m == ["main"] {
        m.pop();
    }
    m
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read source dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

impl Crate {
    fn resolve(&self, path: &[String]) -> Option<Module> {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| self.files.contains_key(m))
    }

    fn is_test(&self, m: &Module) -> bool {
        (1..=m.len()).any(|n| self.test_modules.contains(&m[..n]))
    }

    /// Edges from each non-test module to the modules it uses, other than
    /// itself, its ancestors and test modules.
    fn edges(root: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut files = Vec::new();
        rust_files(root, &mut files);
        let mut krate = Crate {
            files: files
                .iter()
                .map(|f| (module_of(root, f), f.clone()))
                .collect(),
            test_modules: BTreeSet::new(),
        };
        let mut named = BTreeMap::new();
        for (m, f) in &krate.files {
            let src = std::fs::read_to_string(f).expect("read source");
            let (toks, tests) = without_tests(tokens(&src));
            if src.contains("#![cfg(test)]") {
                krate.test_modules.insert(m.clone());
            }
            for t in tests {
                let mut child = m.clone();
                child.push(t);
                krate.test_modules.insert(child);
            }
            named.insert(m.clone(), paths(&toks));
        }
        let mut edges = BTreeMap::new();
        for (m, paths) in named {
            if krate.is_test(&m) {
                continue;
            }
            let mut to = BTreeSet::new();
            for p in paths {
                let abs: Vec<String> = match p[0].as_str() {
                    "crate" => p[1..].to_vec(),
                    "super" => {
                        let ups = p.iter().take_while(|s| *s == "super").count();
                        let mut base = m[..m.len().saturating_sub(ups)].to_vec();
                        base.extend_from_slice(&p[ups..]);
                        base
                    }
                    "self" => [m.clone(), p[1..].to_vec()].concat(),
                    first => {
                        let mut child = m.clone();
                        child.push(first.to_owned());
                        if !krate.files.contains_key(&child) {
                            continue;
                        }
                        [m.clone(), p].concat()
                    }
                };
                if let Some(t) = krate.resolve(&abs) {
                    let ancestor = t.len() <= m.len() && m[..t.len()] == t[..];
                    if !ancestor && !krate.is_test(&t) {
                        to.insert(t);
                    }
                }
            }
            edges.insert(m, to);
        }
        edges
    }
}

/// A circle of modules, if any: a path that comes back to its start.
fn circle(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    // 0 unvisited, 1 on the current path, 2 done.
    fn visit(
        m: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut BTreeMap<Module, u8>,
        path: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        state.insert(m.clone(), 1);
        path.push(m.clone());
        for t in edges.get(m).into_iter().flatten() {
            match state.get(t).copied().unwrap_or(0) {
                1 => {
                    let from = path.iter().position(|p| p == t).unwrap_or(0);
                    let mut c = path[from..].to_vec();
                    c.push(t.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(t, edges, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(m.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in edges.keys() {
        if state.get(m).copied().unwrap_or(0) == 0
            && let Some(c) = visit(m, edges, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

fn show(c: &[Module]) -> String {
    c.iter()
        .map(|m| {
            if m.is_empty() {
                "crate".to_owned()
            } else {
                m.join("::")
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[test]
fn server_modules_import_each_other_in_no_circle() {
    let edges = Crate::edges(&workspace().join("server/src"));
    assert!(edges.len() > 40, "the server's modules were not found");
    assert!(
        edges[&vec!["startup".to_owned()]].contains(&vec!["routes".to_owned()]),
        "the graph misses a known use: {edges:#?}"
    );
    if let Some(c) = circle(&edges) {
        panic!("server modules import each other in a circle: {}", show(&c));
    }
}

/// Everything above the store: services, handlers, the app.
const ABOVE_STORE: &[&str] = &[
    "accounts",
    "auth",
    "dashboard",
    "metrics",
    "reports",
    "routes",
    "scope",
    "startup",
    "state",
    "sync",
    "throttle",
];

/// What a server module (with its submodules) must not use: the layers of
/// ARCHITECTURE.md, "Inside the server". `*` is every other module of the
/// crate.
const SERVER_LAYERS: &[(&str, &[&str])] = &[
    ("metrics", &["*"]),
    ("store", ABOVE_STORE),
    ("config", ABOVE_STORE),
    ("error", ABOVE_STORE),
    (
        "state",
        &[
            "accounts",
            "auth",
            "dashboard",
            "reports",
            "routes",
            "startup",
            "sync",
            "throttle",
        ],
    ),
    ("routes", &["dashboard", "startup"]),
    ("dashboard", &["routes", "startup"]),
    ("sync", &["routes", "dashboard", "startup"]),
    ("reports", &["routes", "dashboard", "startup"]),
    ("accounts", &["routes", "dashboard", "startup"]),
];

/// The uses that break a rule of `layers`, as `from → to` lines.
fn layer_breaks(
    edges: &BTreeMap<Module, BTreeSet<Module>>,
    layers: &[(&str, &[&str])],
) -> Vec<String> {
    let mut out = Vec::new();
    for (from, to) in edges {
        let Some(top) = from.first() else { continue };
        for (module, forbidden) in layers {
            if top != module {
                continue;
            }
            for t in to {
                let Some(t_top) = t.first() else { continue };
                let breaks = t_top != top
                    && (forbidden.contains(&"*") || forbidden.contains(&t_top.as_str()));
                if breaks {
                    out.push(format!("{} → {}", from.join("::"), t.join("::")));
                }
            }
        }
    }
    out
}

#[test]
fn server_modules_keep_their_layers() {
    let edges = Crate::edges(&workspace().join("server/src"));
    let breaks = layer_breaks(&edges, SERVER_LAYERS);
    assert!(
        breaks.is_empty(),
        "uses against the layers of ARCHITECTURE.md:\n{}",
        breaks.join("\n")
    );
    let planted: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::from([(
        vec!["metrics".to_owned()],
        BTreeSet::from([vec!["sync".to_owned(), "push".to_owned()]]),
    )]);
    assert_eq!(
        layer_breaks(&planted, SERVER_LAYERS),
        ["metrics → sync::push"]
    );
}

#[test]
fn cli_store_modules_import_each_other_in_no_circle() {
    let edges = Crate::edges(&workspace().join("client-cli/src"));
    let store: BTreeMap<Module, BTreeSet<Module>> = edges
        .into_iter()
        .filter(|(m, _)| m.first().is_some_and(|s| s == "store"))
        .collect();
    assert!(store.len() > 5, "the CLI's store modules were not found");
    if let Some(c) = circle(&store) {
        panic!(
            "CLI store modules import each other in a circle: {}",
            show(&c)
        );
    }
}

/// The check itself finds a circle where there is one.
#[test]
fn a_circle_through_a_use_group_is_found() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").expect("write");
    std::fs::write(src.join("a/mod.rs"), "mod inner;\nuse crate::b::{x, y};\n").expect("write");
    std::fs::write(
        src.join("a/inner.rs"),
        "// crate::b::x in a comment\nfn f() {}\n",
    )
    .expect("write");
    std::fs::write(
        src.join("b.rs"),
        "fn g() { let s = \"crate::a\"; super::a::inner::f(); }\n#[cfg(test)]\nmod tests { use crate::a; }\n",
    )
    .expect("write");
    let edges = Crate::edges(src);
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Module>();
    assert_eq!(edges[&m("a")], BTreeSet::from([m("b")]));
    assert_eq!(edges[&m("b")], BTreeSet::from([m("a::inner")]));
    assert!(edges[&m("a::inner")].is_empty(), "comments name nothing");
    assert_eq!(circle(&edges), None, "a → b → a::inner is no circle");
    std::fs::write(src.join("a/inner.rs"), "use crate::b::x;\n").expect("write");
    let edges = Crate::edges(src);
    let c = circle(&edges).expect("b → a::inner → b");
    assert_eq!(c.first(), c.last());
    assert!(c.len() == 3, "{}", show(&c));
}
