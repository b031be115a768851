//! A fixed synthetic administrative tree in Lu'an (六安市): counties, townships (镇/乡 and urban
//! 街道) and villages (村) or communities (社区). The tree does not depend on the seed, so region
//! codes are stable across datasets.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use doudi_model::RegionCode;

use crate::names::pick;

const TREE_SEED: u64 = 0x6c75_616e_0341_5000;

/// (code, name, streets, towns)
const COUNTIES: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "341502",
        "金安区",
        &["中市街道", "东市街道", "三里桥街道"],
        &[
            "三十铺镇",
            "木厂镇",
            "马头镇",
            "东桥镇",
            "张店镇",
            "毛坦厂镇",
            "东河口镇",
            "椿树镇",
            "孙岗镇",
            "淠东乡",
            "横塘岗乡",
            "翁墩乡",
        ],
    ),
    (
        "341503",
        "裕安区",
        &["鼓楼街道", "西市街道", "小华山街道"],
        &[
            "苏埠镇",
            "韩摆渡镇",
            "新安镇",
            "顺河镇",
            "独山镇",
            "石婆店镇",
            "丁集镇",
            "固镇镇",
            "徐集镇",
            "分路口镇",
            "江家店镇",
            "单王乡",
            "青山乡",
            "西河口乡",
        ],
    ),
    (
        "341522",
        "霍邱县",
        &["城关镇"],
        &[
            "河口镇",
            "周集镇",
            "临水镇",
            "新店镇",
            "石店镇",
            "马店镇",
            "孟集镇",
            "花园镇",
            "扈胡镇",
            "长集镇",
            "乌龙镇",
            "高塘镇",
            "龙潭镇",
            "冯井镇",
            "夏店镇",
            "潘集镇",
        ],
    ),
    (
        "341523",
        "舒城县",
        &["城关镇"],
        &[
            "千人桥镇",
            "百神庙镇",
            "杭埠镇",
            "舒茶镇",
            "南港镇",
            "干汊河镇",
            "张母桥镇",
            "五显镇",
            "山七镇",
            "河棚镇",
            "汤池镇",
            "晓天镇",
            "春秋乡",
            "柏林乡",
        ],
    ),
    (
        "341524",
        "金寨县",
        &["梅山镇"],
        &[
            "麻埠镇",
            "青山镇",
            "燕子河镇",
            "天堂寨镇",
            "古碑镇",
            "白塔畈镇",
            "双河镇",
            "斑竹园镇",
            "汤家汇镇",
            "南溪镇",
            "吴家店镇",
            "果子园乡",
            "花石乡",
            "沙河乡",
        ],
    ),
];

const VILLAGE_WORDS: &[&str] = &[
    "双河", "红星", "新华", "张庄", "李湾", "王圩", "黄墩", "陈店", "刘岗", "桥头", "大塘", "高庙",
    "枣林", "竹园", "松林", "马岗", "杨桥", "东风", "长岭", "油坊", "石桥", "柳树", "团结", "前进",
    "花园", "三河", "新河", "白果", "龙井", "金星", "七里", "十里", "古城", "望山", "荷塘", "茶园",
    "板桥", "观音", "徐集", "孙圩", "何湾", "周岗", "赵店", "吴庄", "郑湾", "新桥", "大埠", "河西",
    "官塘", "牌坊", "青峰", "桃园", "杏花", "凤凰", "九里", "沿河", "小店", "廖岗", "梅林", "湖滨",
];

const COMMUNITY_WORDS: &[&str] = &[
    "幸福", "和平", "光明", "民主", "建设", "东方", "解放", "人民", "文化", "新城", "滨河", "望城",
    "红旗", "长安", "金山", "南门", "北关", "西苑", "东湖", "梅园", "育才", "锦绣", "花园", "龙河",
];

pub(crate) struct Village {
    pub code: RegionCode,
    pub name: String,
}

pub(crate) struct Township {
    pub name: String,
    pub villages: Vec<Village>,
}

pub(crate) struct County {
    pub code: &'static str,
    pub name: &'static str,
    pub townships: Vec<Township>,
}

/// Where a household can live: indexes into the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub county: usize,
    pub township: usize,
    pub village: usize,
}

pub(crate) struct Regions {
    pub counties: Vec<County>,
    pub urban: Vec<Place>,
    pub rural: Vec<Place>,
}

fn sample_distinct(rng: &mut ChaCha8Rng, pool: &[&'static str], n: usize) -> Vec<&'static str> {
    let mut idx: Vec<usize> = (0..pool.len()).collect();
    // partial Fisher–Yates
    let n = n.min(pool.len());
    for i in 0..n {
        let j = rng.gen_range(i..idx.len());
        idx.swap(i, j);
    }
    idx[..n].iter().map(|&i| pool[i]).collect()
}

impl Regions {
    pub fn build() -> Regions {
        let mut rng = ChaCha8Rng::seed_from_u64(TREE_SEED);
        let mut counties = Vec::new();
        let (mut urban, mut rural) = (Vec::new(), Vec::new());
        for (ci, (code, name, streets, towns)) in COUNTIES.iter().enumerate() {
            let n_streets = streets.len().min(2);
            let n_towns = rng.gen_range(5..=8usize);
            let mut townships = Vec::new();
            let picked_towns = sample_distinct(&mut rng, towns, n_towns);
            for (k, tname) in streets[..n_streets]
                .iter()
                .copied()
                .chain(picked_towns)
                .enumerate()
            {
                let is_street = k < n_streets;
                let n_vill = rng.gen_range(5..=15usize);
                let (pool, suffix) = if is_street {
                    (COMMUNITY_WORDS, "社区")
                } else {
                    (VILLAGE_WORDS, "村")
                };
                let words = sample_distinct(&mut rng, pool, n_vill);
                let mut villages = Vec::new();
                for (vi, w) in words.iter().enumerate() {
                    let text = format!("{code}{:03}{:03}", k + 1, vi + 1);
                    let Ok(rc) = RegionCode::parse(&text) else {
                        continue;
                    };
                    villages.push(Village {
                        code: rc,
                        name: format!("{w}{suffix}"),
                    });
                    let place = Place {
                        county: ci,
                        township: k,
                        village: villages.len() - 1,
                    };
                    if is_street {
                        urban.push(place);
                    } else {
                        rural.push(place);
                    }
                }
                townships.push(Township {
                    name: tname.to_string(),
                    villages,
                });
            }
            counties.push(County {
                code,
                name,
                townships,
            });
        }
        Regions {
            counties,
            urban,
            rural,
        }
    }

    /// Every region of the tree with its own name, in code order: each county (6 digits), its
    /// townships (9) and their villages or communities (12).
    pub fn names(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for c in &self.counties {
            out.push((c.code.to_string(), c.name.to_string()));
            for t in &c.townships {
                let Some(first) = t.villages.first() else {
                    continue;
                };
                out.push((first.code.as_str()[..9].to_string(), t.name.clone()));
                for v in &t.villages {
                    out.push((v.code.as_str().to_string(), v.name.clone()));
                }
            }
        }
        out.sort();
        out
    }

    pub fn village(&self, p: Place) -> &Village {
        &self.counties[p.county].townships[p.township].villages[p.village]
    }

    pub fn pick(&self, rng: &mut ChaCha8Rng, urban: bool) -> Place {
        *pick(rng, if urban { &self.urban } else { &self.rural })
    }

    /// A postal-style address in the village or community.
    pub fn address(&self, rng: &mut ChaCha8Rng, p: Place, urban: bool) -> String {
        let c = &self.counties[p.county];
        let t = &c.townships[p.township];
        let v = &t.villages[p.village];
        if urban {
            format!(
                "安徽省六安市{}{}{}{}栋{}单元{}{:02}室",
                c.name,
                t.name,
                v.name,
                rng.gen_range(1..=30),
                rng.gen_range(1..=4),
                rng.gen_range(1..=7),
                rng.gen_range(1..=4)
            )
        } else {
            format!(
                "安徽省六安市{}{}{}{}组{}号",
                c.name,
                t.name,
                v.name,
                rng.gen_range(1..=12),
                rng.gen_range(1..=80)
            )
        }
    }

    /// Another village of the same county (for household moves).
    pub fn neighbour(&self, rng: &mut ChaCha8Rng, p: Place) -> Place {
        let c = &self.counties[p.county];
        let t = rng.gen_range(0..c.townships.len());
        let n = c.townships[t].villages.len().max(1);
        Place {
            county: p.county,
            township: t,
            village: rng.gen_range(0..n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use doudi_model::RegionLevel;

    #[test]
    fn tree_is_well_formed() {
        let r = Regions::build();
        assert_eq!(r.counties.len(), COUNTIES.len());
        for c in &r.counties {
            assert!((5..=10).contains(&c.townships.len()));
            for t in &c.townships {
                assert!((5..=15).contains(&t.villages.len()));
                for v in &t.villages {
                    assert_eq!(v.code.level(), RegionLevel::Village);
                    assert!(v.code.as_str().starts_with(c.code));
                }
            }
        }
        assert!(!r.urban.is_empty() && !r.rural.is_empty());
    }

    #[test]
    fn every_code_a_household_can_have_is_named_with_its_township_and_county() {
        let r = Regions::build();
        let names: std::collections::HashMap<String, String> = r.names().into_iter().collect();
        for p in r.urban.iter().chain(&r.rural) {
            let v = r.village(*p);
            let code = v.code.as_str();
            assert_eq!(names[code], v.name);
            assert!(
                names[&code[..9]].ends_with(['镇', '乡', '道']),
                "{}",
                names[&code[..9]]
            );
            assert!(names.contains_key(&code[..6]));
        }
        assert_eq!(names["341502"], "金安区");
        let codes: Vec<String> = r.names().into_iter().map(|(c, _)| c).collect();
        let mut sorted = codes.clone();
        sorted.dedup();
        assert_eq!(codes, sorted, "in code order, each once");
    }
}
