//! Tidy: what Cargo cannot check about the tree's shape. Every source file says what it is for; the pure core depends on no I/O crate; the store never reaches into the runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, recursively, skipping build output.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The project's own sources: the crates and examples, not the vendored crate.
fn project_files() -> Vec<PathBuf> {
    let root = root();
    ["engine", "api", "tests", "examples"]
        .iter()
        .flat_map(|d| rust_files(&root.join(d)))
        .collect()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_source_file_opens_with_a_doc_line() {
    let files = project_files();
    assert!(files.len() > 50, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).expect("readable source");
            !text.starts_with("//! ")
        })
        .map(|f| relative(f))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` first line: {missing:?}"
    );
}

/// The packages `name` depends on, transitively, as resolved in Cargo.lock (a superset
/// of what any one build uses: every feature of the workspace is resolved there).
fn dependencies_of(name: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("Cargo.lock")).expect("Cargo.lock");
    let lock: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("Cargo.lock is not TOML: {}", e.message()));
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in lock["package"].as_array().expect("packages") {
        let deps = package
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|d| {
                d.iter()
                    // "name version" when two versions are locked: keep the name.
                    .filter_map(|v| v.as_str()?.split(' ').next().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        graph
            .entry(package["name"].as_str().expect("name").to_string())
            .or_default()
            .extend::<Vec<String>>(deps);
    }
    let mut seen = BTreeSet::new();
    let mut stack = vec![name.to_string()];
    while let Some(p) = stack.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn the_core_depends_on_no_io_crate() {
    let deps = dependencies_of("anju-core");
    assert!(deps.contains("rhai") && deps.contains("chrono"), "{deps:?}");
    let io: Vec<&String> = deps
        .iter()
        .filter(|d| {
            ["tokio", "sqlx", "axum", "hyper", "anju-engine", "anju-api"]
                .iter()
                .any(|io| d.as_str() == *io || d.starts_with(&format!("{io}-")))
        })
        .collect();
    assert!(io.is_empty(), "anju-core depends on {io:?}");
    // The engine does use them: the check above can fail.
    assert!(dependencies_of("anju-engine").contains("sqlx"));
}

/// The `use` paths and qualified paths a file names, as `a::b` prefixes.
fn names_module(text: &str, module: &str) -> bool {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .any(|l| {
            l.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .any(|path| {
                    let mut parts = path.split("::");
                    matches!(parts.next(), Some("crate" | "super" | "anju_engine"))
                        && parts.next() == Some(module)
                })
        })
}

#[test]
fn the_store_never_imports_the_runtime() {
    let store = rust_files(&root().join("engine/src/store"));
    assert!(store.len() >= 4, "{store:?}");
    let offenders: Vec<String> = store
        .iter()
        .filter(|f| names_module(&std::fs::read_to_string(f).unwrap(), "runtime"))
        .map(|f| relative(f))
        .collect();
    assert!(
        offenders.is_empty(),
        "the store imports the runtime: {offenders:?}"
    );
    // The check sees an import when there is one.
    assert!(names_module("use crate::runtime::Runtime;", "runtime"));
    assert!(names_module("let x = crate::runtime::X;", "runtime"));
    assert!(!names_module("// crate::runtime::X", "runtime"));
    assert!(!names_module("use crate::runtimes::X;", "runtime"));
}

/// The identifiers of a source text, outside comments and string literals.
fn identifiers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut in_string = false;
        let mut escaped = false;
        let mut word = String::new();
        for c in code.chars() {
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            if c.is_alphanumeric() || c == '_' {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            in_string = c == '"';
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out
}

#[test]
fn the_writer_never_imports_escalation_patrol_or_responsibility() {
    let text = std::fs::read_to_string(root().join("engine/src/runtime/writer.rs")).unwrap();
    for concern in ["escalation", "patrol", "responsibility"] {
        assert!(
            !identifiers(&text).iter().any(|w| w == concern),
            "the writer names `{concern}`"
        );
    }
}

/// The files of `api/` that are not the command line or the benchmarks: the service.
fn service_files() -> Vec<PathBuf> {
    let files: Vec<PathBuf> = rust_files(&root().join("api/src"))
        .into_iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            !name.starts_with("bench") && name != "cli.rs"
        })
        .collect();
    assert!(files.len() >= 8, "{files:?}");
    files
}

#[test]
fn no_route_checks_a_role() {
    let offenders: Vec<String> = service_files()
        .iter()
        .filter(|f| {
            identifiers(&std::fs::read_to_string(f).unwrap())
                .iter()
                .any(|w| w == "Role")
        })
        .map(|f| relative(f))
        .collect();
    assert!(
        offenders.is_empty(),
        "routes that check a role: {offenders:?}"
    );
    // Identifiers, not substrings: a role in a string, a comment or a longer name is
    // not a check; `Role::Supervisor` is.
    assert!(identifiers("if caller.role == Role::Supervisor {}").contains(&"Role".into()));
    assert!(!identifiers("let x = \"Role::X\"; // Role\nlet roles = 1;").contains(&"Role".into()));
}

#[test]
fn the_api_names_the_store_only_where_it_opens_one() {
    let mut offenders = Vec::new();
    for f in rust_files(&root().join("api/src")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let names_store = names_module(&text.replace("anju_engine::", "crate::"), "store");
        let opens = [
            "store::open(",
            "PostgresStore::",
            "SqliteStore::",
            "open_store(",
        ]
        .iter()
        .any(|o| text.contains(o));
        if names_store && !opens {
            offenders.push(relative(&f));
        }
    }
    assert!(
        offenders.is_empty(),
        "api files that use the store: {offenders:?}"
    );
}
