//! `rbd`: random bases descent on a hand-written WebGPU tensor engine.

mod bench;
mod cli;
mod experiment;
mod lr;
mod train;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    // Like other command-line tools, end quietly when the reader of stdout goes away
    // (`rbd models | head`) instead of panicking on the broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Devices => devices(),
        Command::Models => models(),
        Command::Bench(cli::BenchCommand::Kernels(args)) => bench::kernels::run(&args),
        Command::Bench(cli::BenchCommand::Rbd(args)) => bench::rbd::run(&args),
        Command::Experiment(cli::ExperimentCommand::Orthogonality(args)) => {
            experiment::orthogonality(&args)
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn devices() -> anyhow::Result<()> {
    println!(
        "cpu: native Rust backend, {} threads (rayon), matrixmultiply GEMM, f32 and f64",
        rayon_threads()
    );
    let adapters = rbd_kernels::gpu::list_adapters();
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
            "  f16: {} | timestamp queries: {} | subgroups: {}",
            yes(a.f16),
            yes(a.timestamps),
            yes(a.subgroups)
        );
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
    for (model, datasets) in [
        ("fc", &["mnist", "fmnist", "cifar10"][..]),
        ("cnn", &["mnist", "fmnist", "cifar10"][..]),
        ("resnet8", &["cifar10"][..]),
        ("resnet32", &["cifar10"][..]),
    ] {
        for ds in datasets {
            let (c, h, w) = if *ds == "cifar10" {
                (3, 32, 32)
            } else {
                (1, 28, 28)
            };
            let m = rbd_models::build(model, c, h, w, &device)?;
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
