//! Tools outside cargo that some tests drive (curl, node, schemathesis). `.ci/run` installs
//! them; under CI=true a missing tool fails the test, elsewhere the test says it skipped.

/// Whether `program --version` runs. Panics under CI=true when it does not.
pub fn tool_available(program: &str, test: &str) -> bool {
    let ran = std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ran {
        assert!(!in_ci(), "{test}: `{program}` is missing under CI=true (.ci/run installs it)");
        eprintln!("SKIPPED {test}: `{program}` is not installed here; nothing was checked");
    }
    ran
}

/// CI runs `.ci/run` with CI=true.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
