//! Packing a normalised event (what `events.normalised` keeps): zstd against its prepared
//! dictionary, as written now, beside deflate against the same dictionary, as written before
//! (issue 24). The events are the event dictionary's own documents with every digit changed,
//! so that they share its shape but not its values. `cargo bench -p doudi-store --bench pack`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use doudi_store::{pack_event, pack_event_deflate, unpack_document};

fn events() -> Vec<String> {
    let dict = include_str!("../src/dict/event-n.dict");
    let mut docs = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(dict).into_iter::<serde_json::Value>();
    let mut start = 0;
    while let Some(Ok(_)) = stream.next() {
        let end = stream.byte_offset();
        docs.push(&dict[start..end]);
        start = end;
    }
    // Each document eight times, its digits shifted by a different step each time.
    (1..=8u32)
        .flat_map(|step| {
            docs.iter().map(move |d| {
                d.chars()
                    .enumerate()
                    .map(|(i, c)| match c.to_digit(10) {
                        Some(v) => {
                            char::from_digit((v + step * (i as u32 % 7 + 1)) % 10, 10).unwrap_or(c)
                        }
                        None => c,
                    })
                    .collect()
            })
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let events = events();
    let zstd: Vec<_> = events.iter().map(|e| pack_event(e)).collect();
    let deflate: Vec<_> = events.iter().map(|e| pack_event_deflate(e)).collect();
    let bytes = |p: &[doudi_store::Packed]| {
        p.iter().map(|p| p.as_bytes().len()).sum::<usize>() as f64 / p.len() as f64
    };
    let json = events.iter().map(String::len).sum::<usize>() as f64 / events.len() as f64;
    eprintln!(
        "{} events, {json:.0} bytes of JSON each: zstd {:.1} bytes packed, deflate {:.1}",
        events.len(),
        bytes(&zstd),
        bytes(&deflate)
    );
    for (e, p) in events.iter().zip(&zstd) {
        assert_eq!(&unpack_document(p.as_bytes()).expect("unpacks"), e);
    }

    let mut g = c.benchmark_group("pack");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("event zstd (written)", |b| {
        b.iter(|| {
            events
                .iter()
                .map(|e| pack_event(e).as_bytes().len())
                .sum::<usize>()
        })
    });
    g.bench_function("event deflate (before)", |b| {
        b.iter(|| {
            events
                .iter()
                .map(|e| pack_event_deflate(e).as_bytes().len())
                .sum::<usize>()
        })
    });
    g.bench_function("event unpack zstd", |b| {
        b.iter(|| {
            zstd.iter()
                .map(|p| unpack_document(p.as_bytes()).map_or(0, |s| s.len()))
                .sum::<usize>()
        })
    });
    g.bench_function("event unpack deflate", |b| {
        b.iter(|| {
            deflate
                .iter()
                .map(|p| unpack_document(p.as_bytes()).map_or(0, |s| s.len()))
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(pack, benches);
criterion_main!(pack);
