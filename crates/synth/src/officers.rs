//! A synthetic officer directory for the synthetic region tree: one officer per township (镇/街道),
//! each the substitute of the next township's officer in the same county, and one supervisor per
//! county. Written as `officers.jsonl` (the format `doudi officers import` reads).

use serde_json::{json, Value};

use crate::names::pick;
use crate::regions::Regions;

/// The directory, one JSON object per officer, in a stable order.
pub fn officers(seed: u64) -> Vec<Value> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x6f66_6669_6365_7273);
    let regions = Regions::build();
    let mut out = Vec::new();
    for county in &regions.counties {
        let n = county.townships.len();
        for (t, township) in county.townships.iter().enumerate() {
            let Some(village) = township.villages.first() else {
                continue;
            };
            let code = &village.code.as_str()[..9];
            let next = county
                .townships
                .get((t + 1) % n)
                .and_then(|tw| tw.villages.first())
                .map(|v| format!("o-{}", &v.code.as_str()[..9]));
            let surname = pick(
                &mut rng,
                &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴"],
            );
            let given = pick(
                &mut rng,
                &["敏", "伟", "芳", "静", "磊", "娟", "洋", "勇", "艳", "军"],
            );
            let mut o = json!({
                "officer_id": format!("o-{code}"),
                "name": format!("{surname}{given}"),
                "role": "officer",
                "region": code,
                "channels": {"webhook": format!("http://127.0.0.1:9/townships/{code}")},
            });
            if let Some(sub) = next.filter(|s| s != &format!("o-{code}")) {
                o["substitute"] = Value::String(sub);
            }
            out.push(o);
        }
        let surname = pick(&mut rng, &["孙", "马", "朱", "胡", "郭", "何", "高", "林"]);
        out.push(json!({
            "officer_id": format!("s-{}", county.code),
            "name": format!("{surname}主任"),
            "role": "supervisor",
            "region": county.code,
        }));
    }
    out
}
