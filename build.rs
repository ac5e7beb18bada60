//! Embeds the git commit the binary was built from, so results name the code that made
//! them (not whatever the checkout holds when they are summarised).

fn main() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = git(&[
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!results",
            ])
            .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c} with uncommitted changes")
            } else {
                c
            }
        }
        None => "unknown (built outside a git checkout)".into(),
    };
    println!("cargo:rustc-env=RBD_COMMIT={commit}");
    // HEAD names a branch whose ref file (or packed-refs) moves on every commit. In a
    // worktree `.git` is a file: ask git where HEAD and index (per worktree) and the
    // refs (shared) live.
    let git_dir = git(&["rev-parse", "--git-dir"]).unwrap_or_else(|| ".git".into());
    let common = git(&["rev-parse", "--git-common-dir"]).unwrap_or_else(|| git_dir.clone());
    let mut watched = vec![
        format!("{git_dir}/HEAD"),
        format!("{git_dir}/index"),
        format!("{common}/packed-refs"),
    ];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(format!("{common}/{r}"));
    }
    // The dirty check reads the work tree, which none of the files above see: an edit
    // that is not staged changes no git file. Watch every tracked file outside results/
    // (the same set the check covers) so such an edit reruns it.
    if let Some(files) = git(&["ls-files", "--", ".", ":!results"]) {
        watched.extend(files.lines().map(str::to_string));
    }
    for p in watched {
        if std::path::Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
