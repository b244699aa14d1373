#!/usr/bin/env bash
# Shows that vendor/sqlx-core is sqlx-core 0.9.0 as published on crates.io plus
# vendor/sqlx-core.patch alone: fetches the published crate through cargo into a scratch
# project, checks its sha256 against vendor/sqlx-core.sha256, applies the patch to it and
# compares the result with the vendored copy file by file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version=0.9.0
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

mkdir -p "$scratch/project/src"
cat > "$scratch/project/Cargo.toml" <<TOML
[package]
name = "published-sqlx-core"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
sqlx-core = { version = "=$version", default-features = false }

[workspace]
TOML
: > "$scratch/project/src/lib.rs"
(cd "$scratch/project" && cargo fetch --quiet)

cache="${CARGO_HOME:-$HOME/.cargo}/registry/cache"
crate="$(find "$cache" -name "sqlx-core-$version.crate" | head -n 1)"
if [ -z "$crate" ]; then
  echo "cargo fetch left no sqlx-core-$version.crate under $cache" >&2
  exit 1
fi
expected="$(cut -d' ' -f1 "$here/sqlx-core.sha256")"
actual="$(sha256sum "$crate" | cut -d' ' -f1)"
if [ "$expected" != "$actual" ]; then
  echo "the published crate's sha256 is $actual, vendor/sqlx-core.sha256 says $expected" >&2
  exit 1
fi
# The registry's checksum, as cargo recorded it in the scratch project's lock file.
locked="$(grep -A3 '^name = "sqlx-core"' "$scratch/project/Cargo.lock" | sed -n 's/^checksum = "\(.*\)"/\1/p')"
if [ "$locked" != "$expected" ]; then
  echo "crates.io's checksum for sqlx-core $version is $locked, not $expected" >&2
  exit 1
fi

tar -xzf "$crate" -C "$scratch"
published="$scratch/sqlx-core-$version"
(cd "$published" && patch --quiet --no-backup-if-mismatch -p1 < "$here/sqlx-core.patch")
if ! diff -r --exclude=ANJU-PATCH.md -x .cargo-ok "$published" "$here/sqlx-core" \
    > "$scratch/rest.diff"; then
  echo "vendor/sqlx-core differs from sqlx-core $version + sqlx-core.patch:" >&2
  cat "$scratch/rest.diff" >&2
  exit 1
fi
echo "vendor/sqlx-core = sqlx-core $version (sha256 $expected) + vendor/sqlx-core.patch"
