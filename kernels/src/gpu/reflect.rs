//! Explicit bind-group layouts from the WGSL itself: which storage bindings each entry
//! point uses and whether it writes them, and its workgroup size (for the dispatch log),
//! as naga (wgpu's shader compiler) sees it.
//!
//! wgpu can derive a layout from a shader, but a derived layout has no dynamic offsets;
//! the runtime's uniform ring needs binding 0 to take one (so one cached bind group
//! serves every dispatch whatever its `Info` slot). This module reproduces wgpu's own
//! derivation rule (a binding belongs to an entry point when the entry point's call
//! graph uses it; `var<storage, read>` is a read-only binding) for group 0.

use crate::GpuError;
use std::collections::HashMap;
use wgpu::naga;

/// Storage bindings `1..` an entry point uses: `(binding, read_only)` in binding order.
pub(crate) type Bindings = Vec<(u32, bool)>;

/// One dimension of a workgroup size: a number, or an `override` with its default.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum WorkgroupDim {
    Fixed(u32),
    Override { name: String, default: u32 },
}

/// What the runtime needs of one entry point.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EntryInfo {
    pub bindings: Bindings,
    pub workgroup_size: [WorkgroupDim; 3],
}

impl EntryInfo {
    /// Threads per workgroup with the pipeline's override values.
    pub fn threads(&self, constants: &[(&str, f64)]) -> u32 {
        self.workgroup_size
            .iter()
            .map(|d| match d {
                WorkgroupDim::Fixed(n) => *n,
                WorkgroupDim::Override { name, default } => constants
                    .iter()
                    .find(|(k, _)| k == name)
                    .map_or(*default, |(_, v)| *v as u32),
            })
            .product()
    }
}

/// A workgroup-size expression as a dimension: a literal, or an override (named, with
/// its default) — what the kernels here use.
fn workgroup_dim(
    module: &naga::Module,
    fixed: u32,
    expr: Option<naga::Handle<naga::Expression>>,
) -> WorkgroupDim {
    let literal = |h: naga::Handle<naga::Expression>| match module.global_expressions[h] {
        naga::Expression::Literal(naga::Literal::U32(v)) => Some(v),
        naga::Expression::Literal(naga::Literal::I32(v)) => u32::try_from(v).ok(),
        naga::Expression::Literal(naga::Literal::AbstractInt(v)) => u32::try_from(v).ok(),
        _ => None,
    };
    let Some(h) = expr else {
        return WorkgroupDim::Fixed(fixed);
    };
    match module.global_expressions[h] {
        naga::Expression::Override(o) => {
            let o = &module.overrides[o];
            WorkgroupDim::Override {
                name: o.name.clone().unwrap_or_default(),
                default: o.init.and_then(literal).unwrap_or(1),
            }
        }
        _ => WorkgroupDim::Fixed(literal(h).unwrap_or(fixed.max(1))),
    }
}

/// The storage bindings and workgroup size of every entry point of a WGSL module.
pub(crate) fn entry_points(
    module_name: &str,
    source: &str,
) -> Result<HashMap<String, EntryInfo>, GpuError> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| GpuError::Shader(format!("{module_name}: {}", e.emit_to_string(source))))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| GpuError::Shader(format!("{module_name}: {}", e.emit_to_string(source))))?;
    let mut out = HashMap::new();
    for (index, entry) in module.entry_points.iter().enumerate() {
        let uses = info.get_entry_point(index);
        let mut bindings: Bindings = Vec::new();
        for (handle, var) in module.global_variables.iter() {
            let (Some(binding), naga::AddressSpace::Storage { access }) = (&var.binding, var.space)
            else {
                continue;
            };
            if binding.group != 0 || uses[handle].is_empty() {
                continue;
            }
            let read_only = !access.contains(naga::StorageAccess::STORE);
            match bindings.iter().find(|(b, _)| *b == binding.binding) {
                Some(&(_, ro)) if ro != read_only => {
                    return Err(GpuError::Shader(format!(
                        "{module_name}::{}: binding {} is used both read-only and writable",
                        entry.name, binding.binding
                    )))
                }
                Some(_) => {}
                None => bindings.push((binding.binding, read_only)),
            }
        }
        bindings.sort_unstable();
        let overrides = entry.workgroup_size_overrides.unwrap_or([None; 3]);
        let workgroup_size =
            std::array::from_fn(|i| workgroup_dim(&module, entry.workgroup_size[i], overrides[i]));
        out.insert(
            entry.name.clone(),
            EntryInfo {
                bindings,
                workgroup_size,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{entry_points, WorkgroupDim};

    const SRC: &str = "
        struct Info { n: u32 }
        @group(0) @binding(0) var<uniform> info: Info;
        @group(0) @binding(1) var<storage, read> a: array<f32>;
        @group(0) @binding(2) var<storage, read_write> b: array<f32>;
        @group(0) @binding(2) var<storage, read> b_in: array<f32>;
        @group(0) @binding(3) var<storage, read_write> c: array<f32>;
        fn helper(i: u32) -> f32 { return a[i]; }
        @compute @workgroup_size(64)
        fn writes_b(@builtin(global_invocation_id) g: vec3<u32>) {
            if (g.x < info.n) { b[g.x] = helper(g.x); }
        }
        override WX: u32 = 8u;
        @compute @workgroup_size(WX, 4)
        fn reads_b(@builtin(global_invocation_id) g: vec3<u32>) {
            c[g.x] = b_in[g.x];
        }
    ";

    #[test]
    fn bindings_follow_the_call_graph_and_the_declared_access() {
        let m = entry_points("test", SRC).unwrap();
        // `a` only through the helper; the uniform is not a storage binding.
        assert_eq!(m["writes_b"].bindings, vec![(1, true), (2, false)]);
        assert_eq!(m["reads_b"].bindings, vec![(2, true), (3, false)]);
    }

    #[test]
    fn workgroup_sizes_resolve_overrides() {
        let m = entry_points("test", SRC).unwrap();
        assert_eq!(m["writes_b"].threads(&[]), 64);
        assert_eq!(
            m["reads_b"].workgroup_size[0],
            WorkgroupDim::Override {
                name: "WX".into(),
                default: 8
            }
        );
        assert_eq!(m["reads_b"].threads(&[]), 32);
        assert_eq!(m["reads_b"].threads(&[("WX", 16.0)]), 64);
    }

    #[test]
    fn a_broken_shader_is_an_error_naming_the_module() {
        let e = entry_points("broken", "fn f( {").unwrap_err().to_string();
        assert!(e.contains("broken"), "{e}");
    }
}
