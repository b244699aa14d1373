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
            let path = relative(f);
            !path.starts_with("api/src/bench/") && !path.starts_with("api/src/cli/")
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

/// The engine's stored records and the runtime's answers are not the wire format: they
/// derive no `Serialize`, so the API cannot send one without converting it (its
/// structs in `api/src/routes/`), and renaming a record's field cannot change an answer.
#[test]
fn stored_records_are_never_serialised_directly() {
    let files = [
        "engine/src/model.rs",
        "engine/core/src/records.rs",
        "engine/src/runtime/cases.rs",
        "engine/src/runtime/inspections.rs",
        "engine/src/runtime/responsibility.rs",
        "engine/src/runtime/units.rs",
    ];
    // Stored as JSON (a campaign's checklist), or a report the command line prints.
    let allowed = ["pub struct CheckItem {", "pub struct ImportCounts {"];
    let mut offenders = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        let code: String = code_only(&text).into_iter().collect();
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("#[derive(")
                && identifiers(line).contains(&"Serialize".into())
            {
                let item = lines[i + 1..]
                    .iter()
                    .find(|l| l.contains("pub struct") || l.contains("pub enum"))
                    .map(|l| l.trim().to_string())
                    .unwrap_or_default();
                if !allowed.contains(&item.as_str()) {
                    offenders.push(format!("{f}: {item}"));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "records that serialise themselves: {offenders:?}"
    );
}

/// The text of a Rust source with string and char literals and comments blanked out
/// (same length, same line breaks), so that braces can be counted.
fn code_only(text: &str) -> Vec<char> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in out.iter_mut().take(to).skip(from) {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            let end = (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len());
            blank(&mut out, i, end);
            i = end;
        } else if c == 'r'
            && chars.get(i + 1).is_some_and(|n| *n == '#' || *n == '"')
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
        {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            let open = i + 1 + hashes;
            if chars.get(open) != Some(&'"') {
                i += 1;
                continue;
            }
            let mut j = open + 1;
            while j < chars.len()
                && !(chars[j] == '"' && chars[j + 1..].iter().take(hashes).all(|c| *c == '#'))
            {
                j += 1;
            }
            let end = (j + 1 + hashes).min(chars.len());
            blank(&mut out, i, end);
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, (j + 1).min(chars.len()));
            i = j + 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '{'); a lifetime has no closing quote nearby.
            let close = if chars.get(i + 1) == Some(&'\\') {
                (i + 2..(i + 12).min(chars.len())).find(|&j| chars[j] == '\'')
            } else {
                (chars.get(i + 2) == Some(&'\'')).then_some(i + 2)
            };
            match close {
                Some(end) => {
                    blank(&mut out, i, end + 1);
                    i = end + 1;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Lines of each production function of a file (up to its `#[cfg(test)]` module), with
/// its name, unless a `// tidy: long match table` comment stands right above it.
fn long_functions(text: &str, limit: usize) -> Vec<(String, usize)> {
    let production = text.split("\n#[cfg(test)]").next().unwrap_or(text);
    let code = code_only(production);
    let lines: Vec<&str> = production.lines().collect();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(
            production
                .chars()
                .enumerate()
                .filter(|(_, c)| *c == '\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "fn") else {
            continue;
        };
        if !words[..at].iter().all(|w| {
            [
                "pub",
                "pub(crate)",
                "pub(super)",
                "async",
                "const",
                "unsafe",
            ]
            .contains(w)
        }) {
            continue;
        }
        if n > 0 && lines[n - 1].contains("tidy: long match table") {
            continue;
        }
        let name = words
            .get(at + 1)
            .map(|w| w.split(['(', '<']).next().unwrap_or(w).to_string())
            .unwrap_or_default();
        // The body: from the first `{` after the signature to its match (a `;` first
        // means a declaration without a body).
        let mut i = line_starts[n];
        while i < code.len() && code[i] != '{' && code[i] != ';' {
            i += 1;
        }
        if i >= code.len() || code[i] == ';' {
            continue;
        }
        let mut depth = 0;
        let mut end = i;
        for (j, c) in code.iter().enumerate().skip(i) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let last = line_starts.partition_point(|s| *s <= end);
        let length = last - n;
        if length > limit {
            out.push((name, length));
        }
    }
    out
}

#[test]
fn no_file_and_no_function_is_too_long() {
    let mut long_files = Vec::new();
    let mut long_fns = Vec::new();
    for f in project_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let production = text.split("\n#[cfg(test)]").next().unwrap_or(&text);
        if production.lines().count() > 1_000 {
            long_files.push((relative(&f), production.lines().count()));
        }
        let in_tests = relative(&f).starts_with("tests/");
        if !in_tests {
            for (name, n) in long_functions(&text, 150) {
                long_fns.push(format!("{}: {name} ({n} lines)", relative(&f)));
            }
        }
    }
    assert!(
        long_files.is_empty(),
        "files over 1,000 lines: {long_files:?}"
    );
    assert!(
        long_fns.is_empty(),
        "functions over 150 lines: {long_fns:?}"
    );
    // The measure sees a long function, and braces in strings and chars do not fool it.
    let body = "    let x = 1;\n".repeat(160);
    let sample = format!(
        "pub async fn big() {{\n    let s = \"}}\";\n    let c = '{{';\n{body}}}\nfn small() {{}}\n"
    );
    assert_eq!(long_functions(&sample, 150), [("big".to_string(), 164)]);
}
