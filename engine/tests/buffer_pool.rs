//! The buffer pool never hands out a buffer a live tensor still uses: random sequences
//! of creating, computing and dropping tensors keep every live tensor's contents and
//! give every live tensor its own allocation.

use proptest::prelude::*;
use rbd_engine::testing::{cases, cpu_adapter};
use rbd_engine::{Device, Tensor};
use std::collections::HashSet;

#[derive(Clone, Debug)]
enum Action {
    Create(usize),
    Double(usize),
    Drop(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (1usize..3000).prop_map(Action::Create),
        any::<usize>().prop_map(Action::Double),
        any::<usize>().prop_map(Action::Drop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(8)))]

    #[test]
    fn live_tensors_keep_their_buffers(actions in proptest::collection::vec(action(), 1..60)) {
        let device = Device::Wgpu(cpu_adapter());
        let mut live: Vec<(Tensor, Vec<f32>)> = Vec::new();
        let mut counter = 0f32;
        for a in &actions {
            match *a {
                Action::Create(n) => {
                    counter += 1.0;
                    let v: Vec<f32> = (0..n).map(|i| counter * 1000.0 + i as f32).collect();
                    live.push((Tensor::from_f32(&device, &v, &[n]).unwrap(), v));
                }
                Action::Double(i) if !live.is_empty() => {
                    let (t, v) = &live[i % live.len()];
                    let d = t.scale(2.0).unwrap();
                    let dv = v.iter().map(|x| x * 2.0).collect();
                    live.push((d, dv));
                }
                Action::Drop(i) if !live.is_empty() => {
                    live.swap_remove(i % live.len());
                }
                _ => {}
            }
            let ids: HashSet<u64> = live.iter().map(|(t, _)| t.gpu_buffer().unwrap().1.allocation_id()).collect();
            prop_assert_eq!(ids.len(), live.len(), "two live tensors share an allocation");
        }
        for (t, v) in &live {
            prop_assert_eq!(&t.to_vec_f32().unwrap(), v);
        }
    }
}

#[test]
fn pool_reuses_freed_allocations_and_accounts_bytes() {
    let ctx = cpu_adapter();
    let device = Device::Wgpu(ctx.clone());
    let before = ctx.pool_stats();
    let a = Tensor::from_f32(&device, &vec![1.0; 10_000], &[10_000]).unwrap();
    let id = a.gpu_buffer().unwrap().1.allocation_id();
    let during = ctx.pool_stats();
    assert!(during.live_bytes >= before.live_bytes + 40_000);
    drop(a);
    let b = Tensor::from_f32(&device, &vec![2.0; 10_000], &[10_000]).unwrap();
    assert_eq!(
        b.gpu_buffer().unwrap().1.allocation_id(),
        id,
        "same size class not reused"
    );
    assert_eq!(b.to_vec_f32().unwrap()[9_999], 2.0);
}

#[test]
fn oversized_buffers_are_refused_with_a_clear_error() {
    let ctx = cpu_adapter();
    let too_big = ctx.max_binding_bytes() + 4;
    let err = ctx.alloc(too_big).unwrap_err().to_string();
    assert!(err.contains("over the device limit"), "{err}");
}
