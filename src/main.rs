//! `rbd`: random bases descent on a hand-written WebGPU tensor engine.

mod cli;
mod experiment;
mod reproduce_cmd;
mod results_cmd;
mod train_cmd;

use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Command};

/// Keeps freed memory in the process for the next step. The cpu backend allocates each
/// op's output anew (MBs per conv layer); glibc by default serves such blocks with mmap
/// and unmaps them on free, or trims the heap top, so every step faulted its outputs in
/// again as fresh zeroed pages: about half of the CNN's cpu SGD step (measured with
/// `rbd profile --device cpu`, see docs/benchmarks.md). With blocks up to glibc's largest
/// mmap threshold (32 MiB) taken from the heap and no trimming, a step reuses the memory
/// the previous one freed. The footprint stays at the peak of a step.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

fn main() {
    // Like other command-line tools, end quietly when the reader of stdout goes away
    // (`rbd models | head`) instead of panicking on the broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    // Mesa's EGL (probed for the GL backend) prints an alarming "error:" line without
    // a runtime directory; give it a private one.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join("rbd-xdg");
        if std::fs::create_dir_all(&dir).is_ok() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Train(args) => {
            let sub = matches
                .subcommand_matches("train")
                .expect("clap matched the train subcommand");
            match train_cmd::run(&args, sub) {
                Ok(0) => Ok(()),
                Ok(code) => std::process::exit(code),
                Err(e) => Err(e),
            }
        }
        Command::Devices(args) => devices(&args),
        Command::Models => models(),
        Command::Bench(cli::BenchCommand::Kernels(args)) => {
            rbd::measure::bench::kernels::run(&args)
        }
        Command::Bench(cli::BenchCommand::Rbd(args)) => rbd::measure::bench::rbd::run(&args),
        Command::Profile(args) => rbd::measure::profile::run(&args),
        Command::Experiment(cli::ExperimentCommand::Orthogonality(args)) => {
            experiment::orthogonality(&args)
        }
        Command::Reproduce(args) => match reproduce_cmd::reproduce(&args) {
            Ok(0) => Ok(()),
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
        Command::Tune(args) => match reproduce_cmd::tune(&args) {
            Ok(0) => Ok(()),
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
        Command::Results(cli::ResultsCommand::Migrate(args)) => results_cmd::migrate(&args),
        Command::Results(cli::ResultsCommand::Export(args)) => results_cmd::export(&args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn devices(args: &cli::DevicesArgs) -> anyhow::Result<()> {
    let adapters = rbd_kernels::gpu::list_adapters();
    if args.json {
        let list: Vec<serde_json::Value> = adapters
            .iter()
            .map(|a| {
                serde_json::json!({
                    "name": a.name,
                    "backend": a.backend,
                    "device_type": a.device_type,
                    "driver": a.driver,
                    "is_gpu": a.is_gpu(),
                    "vulkan_discrete": a.is_vulkan_discrete(),
                    "also_via": a.also_via,
                    "timestamps": a.timestamps,
                    "f16": a.f16,
                    "subgroups": a.subgroups,
                    "max_storage_binding_bytes": a.max_storage_binding_bytes,
                    "max_shared_memory_bytes": a.max_shared_memory_bytes,
                })
            })
            .collect();
        let report = serde_json::json!({
            "cpu": format!("native Rust backend, {} threads (rayon)", rayon_threads()),
            "adapters": list,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "cpu: native Rust backend, {} threads (rayon), matrixmultiply GEMM, f32 and f64",
        rayon_threads()
    );
    if adapters.is_empty() {
        println!("wgpu: no adapter found. Without a GPU, install Mesa's CPU Vulkan driver (apt-get install -y mesa-vulkan-drivers) or use WGPU_BACKEND=gl");
    }
    for a in adapters {
        println!("{}", a.one_line());
        println!(
            "  type {} | max storage binding {} MiB | max buffer {} MiB | workgroup x ≤ {} | invocations ≤ {} | shared memory {} KiB | workgroups/dim ≤ {}",
            a.device_type,
            a.max_storage_binding_bytes >> 20,
            a.max_buffer_bytes >> 20,
            a.max_workgroup_size_x,
            a.max_invocations_per_workgroup,
            a.max_shared_memory_bytes >> 10,
            a.max_workgroups_per_dimension
        );
        println!(
            "  {} | f16: {} | timestamp queries: {} | subgroups: {}",
            if a.is_gpu() { "a GPU" } else { "a CPU adapter" },
            yes(a.f16),
            yes(a.timestamps),
            yes(a.subgroups)
        );
        if !a.also_via.is_empty() {
            println!(
                "  also seen through {} (the same device; {} is used)",
                a.also_via.join(", "),
                a.backend
            );
        }
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn models() -> anyhow::Result<()> {
    let device = rbd_engine::Device::Cpu;
    println!(
        "{:<10} {:<9} {:>12} {:>14}",
        "model", "dataset", "D trainable", "Keras count"
    );
    for model in rbd_models::ModelKind::ALL {
        for ds in rbd_datasets::DatasetKind::ALL {
            let (c, h, w) = ds.shape();
            // The ResNets are CIFAR-10 networks.
            let Ok(m) = rbd_models::build(*model, c, h, w, &device) else {
                continue;
            };
            println!(
                "{:<10} {:<9} {:>12} {:>14}",
                model,
                ds,
                m.layout().total,
                m.keras_param_count()
            );
        }
    }
    Ok(())
}
