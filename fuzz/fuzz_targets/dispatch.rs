//! libFuzzer target: raw bytes on one connection of the real transport (framing + dispatcher).
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run dispatch corpus/dispatch` (see mk/bench.mk `make fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = archy_fuzz::Harness::get();
    h.check(data);
    if archy_fuzz::INPUTS.load(std::sync::atomic::Ordering::Relaxed) % 256 == 0 {
        h.still_serving();
    }
});
