//! Instruction-set levels of the cpu kernels and the macro that compiles a kernel once
//! per level. Every level gives bitwise equal results: the kernels use no FMA and each
//! lane's arithmetic is the same IEEE operation sequence whatever the vector width.

use std::sync::OnceLock;

/// Environment variable forcing a lower level: `generic`, `avx2` or `avx512`.
pub const SIMD_ENV: &str = "RBD_SIMD";

/// Instruction-set level of the cpu kernels. All levels give bitwise equal results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Simd {
    /// Baseline x86-64 (SSE2) or whatever the target offers.
    Generic,
    /// AVX2 (+FMA, BMI2 enabled for code generation; no FMA is emitted).
    Avx2,
    /// AVX-512 F/BW/DQ/VL.
    Avx512,
}

impl Simd {
    /// The best level this processor supports, or the lower one `RBD_SIMD` names
    /// (detected once; a level the processor lacks is refused with a note).
    pub fn detect() -> Simd {
        static LEVEL: OnceLock<Simd> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            let best = Simd::best();
            match std::env::var(SIMD_ENV) {
                Ok(v) if !v.is_empty() => match Simd::parse(&v) {
                    Some(s) if s <= best => s,
                    Some(s) => {
                        eprintln!("note: {SIMD_ENV}={v}: this processor lacks {s:?}; using {best:?}");
                        best
                    }
                    None => {
                        eprintln!(
                            "note: {SIMD_ENV}={v} is not a level (generic, avx2, avx512); using {best:?}"
                        );
                        best
                    }
                },
                _ => best,
            }
        })
    }

    /// The best level the processor has, whatever `RBD_SIMD` says.
    pub fn best() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("bmi2")
            {
                return Simd::Avx512;
            }
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("bmi2")
            {
                return Simd::Avx2;
            }
        }
        Simd::Generic
    }

    /// `generic`, `avx2` or `avx512`.
    pub fn parse(name: &str) -> Option<Simd> {
        match name.trim().to_ascii_lowercase().as_str() {
            "generic" => Some(Simd::Generic),
            "avx2" => Some(Simd::Avx2),
            "avx512" | "avx-512" => Some(Simd::Avx512),
            _ => None,
        }
    }

    /// The level's name as [`Simd::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Generic => "generic",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
        }
    }

    /// Every level this processor can run (for tests and benchmarks).
    pub fn available() -> Vec<Simd> {
        [Simd::Generic, Simd::Avx2, Simd::Avx512]
            .into_iter()
            .filter(|&s| s <= Simd::best())
            .collect()
    }
}

/// `multiversion!(name<G: Gen, ..> => body(args..))` generates `fn name<G, ..>(simd,
/// args..)` calling `body::<G, ..>(args..)` compiled for the requested instruction
/// set (the body must be `#[inline(always)]`). With `body<G, ..; X, P>` the body takes
/// one more type argument: `X` at the x86 levels (AVX2, AVX-512), `P` at the generic one
/// (e.g. intrinsics and their portable twin).
macro_rules! multiversion {
    (@emit $name:ident < $($g:ident : $bound:path),* > => $body:ident
        [$($x86:ty),*] [$($other:ty),*] ( $($arg:ident : $ty:ty),* )) => {
        fn $name<$($g: $bound),*>(simd: Simd, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2")]
                unsafe fn avx512<$($g: $bound),*>($($arg: $ty),*) {
                    $body::<$($x86),*>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma,bmi2")]
                unsafe fn avx2<$($g: $bound),*>($($arg: $ty),*) {
                    $body::<$($x86),*>($($arg),*)
                }
                match simd {
                    // SAFETY: `Simd::available` only offers levels the processor has,
                    // and every caller asserts its level is among them.
                    Simd::Avx512 => return unsafe { avx512::<$($g),*>($($arg),*) },
                    Simd::Avx2 => return unsafe { avx2::<$($g),*>($($arg),*) },
                    Simd::Generic => {}
                }
            }
            let _ = simd;
            $body::<$($other),*>($($arg),*)
        }
    };
    ($name:ident < $($g:ident : $bound:path),* > => $body:ident ( $($arg:ident : $ty:ty),* )) => {
        multiversion!(@emit $name<$($g: $bound),*> => $body [$($g),*] [$($g),*] ($($arg: $ty),*));
    };
    ($name:ident < $($g:ident : $bound:path),* > => $body:ident < $($bg:ident),* ; $x86:ty, $other:ty >
        ( $($arg:ident : $ty:ty),* )) => {
        multiversion!(@emit $name<$($g: $bound),*> => $body [$($bg,)* $x86] [$($bg,)* $other] ($($arg: $ty),*));
    };
}

pub(crate) use multiversion;
