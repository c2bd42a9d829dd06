//! Link options for the release binary on x86_64 GNU/Linux: they change how the file is laid out,
//! never what it does, so each is added only where the linker and libc are known to take it.
//!
//! - `--symbol-ordering-file=link-order.txt` (lld): the functions a running server uses, start-up
//!   first, then serving, are placed together (the list and how it is made: `bench/link-order.sh`).
//!   The kernel maps code in blocks around each page a process touches (64 KB, or a whole large
//!   page-cache folio); with those functions spread over 10 MB of code, an idle process had 7 MB
//!   of it mapped, and ~2.5 MB once they sit together. Names the list has that the build does not
//!   (after a dependency upgrade, say) are skipped.
//! - `-z pack-relative-relocs` (DT_RELR, glibc ≥ 2.36): ~37,000 relative relocations of 24 bytes
//!   each become a few KB of bitmaps, so start-up reads (and keeps mapped) ~850 KB less of the file.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("TARGET") != "x86_64-unknown-linux-gnu" || var("PROFILE") != "release" {
        return;
    }
    if var("HOST") == var("TARGET") && host_glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if links_with_rust_lld() {
        let order = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("link-order.txt");
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Rust links x86_64 GNU/Linux binaries with its own lld since 1.90, unless told otherwise.
fn links_with_rust_lld() -> bool {
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let linker_chosen = std::env::var_os("RUSTC_LINKER").is_some()
        || ["linker", "link-self-contained", "fuse-ld"]
            .iter()
            .any(|f| flags.contains(f));
    !linker_chosen && rustc_minor_version().is_some_and(|minor| minor >= 90)
}

fn rustc_minor_version() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = String::from_utf8(out.stdout).ok()?;
    version
        .split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}

/// lld marks a DT_RELR binary as needing `GLIBC_ABI_DT_RELR` without checking that the libc has
/// it, and an older glibc then refuses to start the binary: ask the libc we link against.
fn host_glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.trim().trim_start_matches("glibc ").split('.');
    let parse = |p: Option<&str>| p.and_then(|p| p.parse::<u32>().ok());
    match (parse(parts.next()), parse(parts.next())) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}
