//! Disk trouble: when the database cannot be written, the token endpoint answers 503 with an
//! OAuth `server_error`, introspection of existing tokens keeps working, nothing half-written
//! remains, and the service recovers by itself once writing works again. The data folder is a
//! 4 MiB tmpfs that the test fills; mounting needs root (as CI runs), otherwise the test says
//! so and checks nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;

use crate::helpers::{assert_oauth_error, count_of, header, ConfigOverrides, Deployment};

/// Unmounts on drop, even when an assertion fails.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Option<Self> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes until the filesystem is full; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    path
}

#[tokio::test]
async fn a_full_disk_gives_503_keeps_introspection_and_recovers_by_itself() {
    let deployment = Deployment::new(&ConfigOverrides::renewal_off());
    if deployment.on_postgres() {
        println!("skipped on PostgreSQL: the full disk is the SQLite file's (PostgreSQL's own disk is the operator's)");
        return;
    }
    let Some(_tmpfs) = Tmpfs::mount(&deployment.data_dir()) else {
        eprintln!("SKIPPED disk::a_full_disk…: cannot mount a tmpfs here (needs root); nothing was checked");
        return;
    };
    let mut app = deployment.start().await;
    let client = app.register_client("app").await;
    let before = app.token_client_credentials(&client, "before").await;

    let filler = fill(&app.data_dir());
    let mut refused = 0;
    for i in 0..20 {
        let response = app.client_credentials_grant(&client, &format!("full-{i}")).await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(header(response.headers(), "retry-after"), "1");
            assert_oauth_error(response, StatusCode::SERVICE_UNAVAILABLE, "server_error").await;
            refused += 1;
        } else {
            // SQLite may still have room in pages it already holds; then the request succeeds.
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    eprintln!("disk full: {refused} of 20 writes refused");
    assert!(refused > 0, "a full disk must refuse some writes");
    let ready = app.http.get(app.url("/health/ready")).send().await.unwrap();
    let status = ready.status();
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()), "{body}");
    assert_eq!(
        app.http.get(app.url("/health")).send().await.unwrap().status(),
        StatusCode::OK,
        "still alive"
    );
    assert_eq!(app.introspect(&before.access_token).await["active"], true, "reads keep working");

    std::fs::remove_file(filler).unwrap();
    let after = app.token_client_credentials(&client, "after").await;
    let ready = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "ready again once the disk has room");
    assert_eq!(app.introspect(&after.access_token).await["active"], true);
    assert!(app.terminate().await.success());

    // Nothing half-written: every TokenIssued in the log is an answered or a visible token, and
    // the log is a clean chain that the server accepts again.
    let events = app.events();
    assert!(count_of(&events, "TokenIssued") >= 2);
    app.restart().await;
    assert_eq!(app.introspect(&after.access_token).await["active"], true);
}
