//! Running the workspace's binaries as child processes, killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The path of a workspace binary next to the running test executable.
///
/// `cargo test` rebuilds a binary only for its own package's integration tests, so the
/// binaries these tests run must be built first: `make test` runs
/// `cargo build --workspace --bins` before the tests.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

/// A child process that is killed when dropped.
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildProcess {
    /// Start `binary` with `args` and `envs`; its output goes to a log file.
    pub fn spawn(name: &str, args: &[String], envs: &[(&str, String)]) -> Self {
        static SPAWNED: AtomicUsize = AtomicUsize::new(0);
        let serial = SPAWNED.fetch_add(1, Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!(
            "sinter-test-{name}-{}-{serial}.log",
            std::process::id()
        ));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file clone");
        let mut command = Command::new(binary(name));
        command
            .args(args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        command.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        ChildProcess {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    /// What the process has written so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ask the process to stop with SIGTERM and wait up to `within` for its exit code.
    pub fn terminate(mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{} did not stop within {within:?} after SIGTERM:\n{}",
            self.name,
            self.output()
        );
    }

    /// Kill the process with SIGKILL and reap it.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Run a binary to completion and return its exit code and combined output.
pub fn run(name: &str, args: &[String]) -> (i32, String) {
    let output = Command::new(binary(name))
        .args(args)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {name}: {err}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}
