//! Records the git revision for build info. Nix builds have no .git and pass
//! FERRY_GIT_REVISION instead.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FERRY_GIT_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let revision = std::env::var("FERRY_GIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_string())
        });
    println!(
        "cargo:rustc-env=FERRY_GIT_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
}
