//! The binaries under test: `ledger-replay` (built for this test target) and the `token-ledger`
//! server beside it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The audit CLI under test.
pub const LEDGER_REPLAY: &str = env!("CARGO_BIN_EXE_ledger-replay");

/// The server binary: `cargo test --workspace` builds it beside `ledger-replay`; with
/// `cargo test -p ledger-replay` it may be missing, and is then built once.
pub fn token_ledger() -> &'static Path {
    static SERVER: OnceLock<PathBuf> = OnceLock::new();
    SERVER.get_or_init(|| {
        let here = Path::new(LEDGER_REPLAY);
        let server = here.with_file_name(format!("token-ledger{}", std::env::consts::EXE_SUFFIX));
        if !server.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "-p", "token-ledger", "--bin", "token-ledger"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
            if here.parent().and_then(Path::file_name) == Some("release".as_ref()) {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build for the server");
            assert!(status.success(), "cargo build -p token-ledger failed");
        }
        assert!(server.exists(), "no server binary at {}", server.display());
        server
    })
}

/// What a `ledger-replay` run left behind.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The JSON document a `--json` run printed.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// Asserts the exit code, showing both streams when it is wrong.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(!self.stderr.contains("panicked"), "ledger-replay panicked: {}", self.stderr);
        self
    }
}

/// Runs `ledger-replay ARGS` to completion.
pub fn ledger_replay(args: &[&str]) -> Run {
    ledger_replay_with(args, None, &[])
}

/// Runs `ledger-replay` with `stdin` written to its input and extra environment.
pub fn ledger_replay_with(args: &[&str], stdin: Option<&str>, env: &[(&str, &Path)]) -> Run {
    let mut command = Command::new(LEDGER_REPLAY);
    command
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn ledger-replay");
    if let Some(input) = stdin {
        use std::io::Write as _;
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("run ledger-replay");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
