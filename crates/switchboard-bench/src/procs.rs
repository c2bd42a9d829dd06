//! The processes under test: finding or building their binaries, starting them, and reading what
//! the kernel knows about them (`/proc/<pid>/stat`, `status`, `fd`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The fixture the harness's mock answers `bench/fast` with (non-streamed, no delay).
pub const FAST_FIXTURE: &str = include_str!("../fixtures/fast.json");
/// The model answered by [`FAST_FIXTURE`].
pub const FAST_MODEL: &str = "bench/fast";

/// Where `name` is: `explicit` if given, else next to this executable; built with cargo if
/// missing there.
pub fn locate(name: &str, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("{} does not exist", path.display());
        }
        // Absolute: the processes are started in directories of their own, where a path
        // relative to ours would name nothing.
        return std::path::absolute(path).with_context(|| format!("resolving {}", path.display()));
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let dir = exe.parent().context("this executable has no directory")?;
    let candidate = dir.join(name);
    if candidate.is_file() {
        return Ok(candidate);
    }
    eprintln!(
        "{} not found next to {}; running `cargo build --release -p switchboard -p mock-openrouter`",
        name,
        exe.display()
    );
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "switchboard",
            "-p",
            "mock-openrouter",
        ])
        .current_dir(&workspace)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    // The binaries land in the same target dir as this one when both come from this workspace.
    if candidate.is_file() {
        return Ok(candidate);
    }
    let fallback = workspace.join("target/release").join(name);
    if fallback.is_file() {
        return Ok(fallback);
    }
    bail!(
        "built, but {name} is still not in {} (pass --{}-bin)",
        dir.display(),
        if name == "switchboard" {
            "switchboard"
        } else {
            "mock"
        }
    )
}

/// A started process that announced `listening on <url>`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub pid: u32,
    /// The announced URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// From spawn to the `listening on` line.
    pub to_listening: Duration,
    /// When the process was spawned.
    pub spawned: Instant,
}

/// Spawns `command` (stdout piped, stderr to `log`) and waits for its `listening on` line.
pub async fn start(mut command: Command, log: &Path) -> anyhow::Result<Server> {
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true);
    let spawned = Instant::now();
    let mut child = command.spawn().context("spawning")?;
    let pid = child.id().context("the child has no pid")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .with_context(|| format!("no `listening on` line within 30 s (see {})", log.display()))?
        .context("reading stdout")?;
    let to_listening = spawned.elapsed();
    let Some(url) = line
        .as_deref()
        .and_then(|l| l.strip_prefix("listening on "))
    else {
        bail!(
            "expected `listening on <url>`, got {line:?} (see {})",
            log.display()
        );
    };
    let url = url.trim().trim_end_matches('/').to_owned();
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server {
        child,
        pid,
        url,
        to_listening,
        spawned,
    })
}

impl Server {
    /// Asks the process to stop (SIGTERM) and waits up to 5 s before killing it.
    pub async fn stop(mut self) {
        // SAFETY: plain syscall on a pid we own.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// CPU time (user + system) the process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(
        (utime + stime) * 1_000_000_000 / ticks,
    ))
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Current resident set size in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS")
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) so the next phase reads its own peak.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// How many file descriptors the process has open.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The process's soft limit on open file descriptors (`None` if unlimited or unreadable).
pub fn nofile_limit(pid: u32) -> Option<u64> {
    parse_nofile_limit(&std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?)
}

/// The soft limit from the `Max open files` row of a `/proc/<pid>/limits` text.
fn parse_nofile_limit(limits: &str) -> Option<u64> {
    limits.lines().find_map(|line| {
        line.strip_prefix("Max open files")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Raises RLIMIT_NOFILE for this process (and so for every child started afterwards) as far as
/// `want`, returning the soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur >= want {
            return limit.rlim_cur;
        }
        // Root may raise the hard limit too; otherwise stay under it.
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: want.max(limit.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return want;
        }
        let capped = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &capped) == 0 {
            return limit.rlim_max;
        }
        limit.rlim_cur
    }
}

/// Finds the process listening on `port` on this machine, by matching the socket's inode in
/// `/proc/net/tcp{,6}` against every process's open fds. For reading a peer gateway's CPU and RSS.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is "IP:PORT" in hex; state 0A is LISTEN.
            let Some(local_port) = f.get(1).and_then(|a| a.rsplit(':').next()) else {
                continue;
            };
            if u16::from_str_radix(local_port, 16).ok() == Some(port)
                && f.get(3) == Some(&"0A")
                && let Some(inode) = f.get(9)
            {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn status_kb_of_meminfo() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_relative_binary_path_is_made_absolute() {
        // Tests run in the package directory, where `Cargo.toml` is a file.
        let found = locate("switchboard", Some(Path::new("Cargo.toml"))).unwrap();
        assert!(found.is_absolute(), "{}", found.display());
        assert!(found.is_file());
        assert!(locate("switchboard", Some(Path::new("no-such-binary"))).is_err());
    }

    #[test]
    fn the_soft_fd_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(parse_nofile_limit(limits), Some(20_000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile_limit(unlimited), None);
        assert_eq!(
            nofile_limit(std::process::id()),
            parse_nofile_limit(&std::fs::read_to_string("/proc/self/limits").unwrap())
        );
    }
}
