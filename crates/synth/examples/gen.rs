//! `cargo run -p doudi-synth --release --example gen -- <households> <dir> [seed]`
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let dir = std::path::PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "synth-out".into()));
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let cfg = doudi_synth::GenConfig {
        households: n,
        seed,
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let reg = doudi_synth::generate_register(&cfg);
    let t_reg = t.elapsed();
    drop(reg);
    let t = std::time::Instant::now();
    match doudi_synth::write_dataset(&dir, &cfg, &mut |_| {}) {
        Ok(s) => println!(
            "register alone {t_reg:.2?}; dataset {:.2?}: {}",
            t.elapsed(),
            serde_json::to_string(&s).unwrap_or_default()
        ),
        Err(e) => eprintln!("error: {e}"),
    }
}
