//! Running the external tools a fetch needs, with errors that say what to do by hand.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::DatasetError;

/// How many trailing lines of a failed command's stderr go into the error.
const STDERR_TAIL_LINES: usize = 20;

/// Runs `program args…` in `cwd`, capturing its output.
///
/// A program that cannot be started is [`DatasetError::ToolMissing`]; one that exits
/// unsuccessfully is [`DatasetError::CommandFailed`] with the tail of its stderr. Both
/// carry `manual`, the instructions for doing the fetch by hand.
pub(crate) fn run(
    dataset: &'static str,
    program: &'static str,
    args: &[&str],
    cwd: &Path,
    manual: &str,
) -> Result<(), DatasetError> {
    let output = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| DatasetError::ToolMissing {
            dataset,
            tool: program,
            source,
            manual: manual.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
    Err(DatasetError::CommandFailed {
        dataset,
        command: std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" "),
        status: output.status.to_string(),
        stderr: tail,
        manual: manual.to_string(),
    })
}
