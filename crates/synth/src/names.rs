//! Chinese personal names: surnames at roughly census frequencies, given names by sex and
//! generation, and the two kinds of typing noise seen in department records (a same-pinyin
//! character, or traditional characters).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use doudi_model::Sex;

/// Surnames with weights roughly proportional to their share of the population (2020 census,
/// per ten thousand), followed by a long tail and two rare compound surnames.
const SURNAMES: &[(&str, u32)] = &[
    ("王", 712),
    ("李", 700),
    ("张", 674),
    ("刘", 510),
    ("陈", 461),
    ("杨", 322),
    ("黄", 245),
    ("赵", 219),
    ("吴", 208),
    ("周", 200),
    ("徐", 145),
    ("孙", 138),
    ("马", 129),
    ("朱", 128),
    ("胡", 116),
    ("郭", 113),
    ("何", 106),
    ("林", 101),
    ("高", 100),
    ("罗", 95),
    ("郑", 82),
    ("梁", 81),
    ("谢", 71),
    ("宋", 67),
    ("唐", 65),
    ("许", 63),
    ("韩", 62),
    ("邓", 60),
    ("冯", 60),
    ("曹", 57),
    ("彭", 55),
    ("曾", 53),
    ("肖", 52),
    ("田", 51),
    ("董", 50),
    ("袁", 48),
    ("潘", 47),
    ("于", 46),
    ("蒋", 46),
    ("蔡", 45),
    ("余", 45),
    ("杜", 44),
    ("叶", 43),
    ("程", 43),
    ("苏", 41),
    ("魏", 41),
    ("吕", 40),
    ("丁", 39),
    ("任", 39),
    ("沈", 38),
    ("姚", 37),
    ("卢", 37),
    ("姜", 36),
    ("崔", 35),
    ("钟", 35),
    ("谭", 34),
    ("陆", 33),
    ("汪", 33),
    ("范", 32),
    ("金", 31),
    ("石", 31),
    ("廖", 30),
    ("贾", 30),
    ("夏", 29),
    ("韦", 29),
    ("付", 28),
    ("方", 28),
    ("白", 27),
    ("邹", 27),
    ("孟", 26),
    ("熊", 26),
    ("秦", 25),
    ("邱", 25),
    ("江", 25),
    ("尹", 24),
    ("薛", 23),
    ("闫", 23),
    ("段", 22),
    ("雷", 22),
    ("侯", 21),
    ("龙", 21),
    ("史", 21),
    ("陶", 20),
    ("黎", 20),
    ("贺", 20),
    ("顾", 19),
    ("毛", 19),
    ("郝", 18),
    ("龚", 18),
    ("邵", 18),
    ("万", 17),
    ("钱", 17),
    ("严", 16),
    ("武", 16),
    ("戴", 15),
    ("孔", 15),
    ("向", 14),
    ("汤", 14),
    ("常", 14),
    ("温", 13),
    ("康", 13),
    ("施", 13),
    ("文", 13),
    ("牛", 12),
    ("樊", 12),
    ("葛", 12),
    ("邢", 11),
    ("安", 11),
    ("齐", 11),
    ("易", 11),
    ("乔", 10),
    ("伍", 10),
    ("庞", 10),
    ("颜", 10),
    ("倪", 10),
    ("庄", 9),
    ("聂", 9),
    ("章", 9),
    ("鲁", 9),
    ("岳", 9),
    ("翟", 8),
    ("殷", 8),
    ("詹", 8),
    ("申", 8),
    ("耿", 8),
    ("关", 7),
    ("焦", 7),
    ("俞", 7),
    ("左", 7),
    ("柳", 7),
    ("甘", 6),
    ("祝", 6),
    ("包", 6),
    ("宁", 6),
    ("尚", 6),
    ("舒", 6),
    ("阮", 5),
    ("柯", 5),
    ("纪", 5),
    ("梅", 5),
    ("童", 5),
    ("凌", 5),
    ("毕", 5),
    ("单", 4),
    ("季", 4),
    ("裴", 4),
    ("霍", 4),
    ("涂", 4),
    ("成", 4),
    ("苗", 4),
    ("盛", 4),
    ("翁", 4),
    ("骆", 3),
    ("路", 3),
    ("辛", 3),
    ("管", 3),
    ("柴", 3),
    ("鲍", 3),
    ("喻", 3),
    ("祁", 3),
    ("房", 3),
    ("滕", 3),
    ("饶", 3),
    ("艾", 3),
    ("尤", 2),
    ("时", 2),
    ("穆", 2),
    ("卓", 2),
    ("缪", 2),
    ("项", 2),
    ("褚", 2),
    ("窦", 2),
    ("戚", 2),
    ("费", 2),
    ("卜", 2),
    ("晏", 2),
    ("卫", 2),
    ("宗", 2),
    ("桂", 2),
    ("臧", 2),
    ("闵", 2),
    ("卞", 2),
    ("商", 2),
    ("欧阳", 1),
    ("司马", 1),
];

/// Compound surnames, so that a name can be split back into surname and given name.
const COMPOUND_SURNAMES: &[&str] = &["欧阳", "司马"];

// Given-name characters by sex and generation. Most have a same-pinyin partner below, which is
// what makes homophone typing errors possible on most names.
const MALE_OLD: &[&str] = &[
    "建", "国", "华", "明", "军", "伟", "平", "忠", "林", "德", "成", "福", "贵", "春", "海", "金",
    "山", "文", "志", "兴", "荣", "祥", "才", "庆", "玉", "宝", "东", "生", "友", "根", "义", "刚",
    "强", "云", "龙", "发", "胜", "长",
];
const FEMALE_OLD: &[&str] = &[
    "秀", "英", "兰", "桂", "凤", "珍", "芳", "玉", "华", "梅", "琴", "云", "霞", "莲", "红", "翠",
    "菊", "荣", "春", "香", "萍", "玲", "娟", "花",
];
const MALE_MID: &[&str] = &[
    "伟", "强", "磊", "军", "勇", "涛", "杰", "斌", "刚", "峰", "辉", "鹏", "超", "明", "亮", "平",
    "俊", "飞", "健", "波", "浩", "龙", "宇", "凯", "东", "林", "华", "兵", "建", "成", "志",
];
const FEMALE_MID: &[&str] = &[
    "丽", "静", "敏", "燕", "艳", "娟", "霞", "芳", "玲", "婷", "红", "丹", "萍", "洁", "琳", "慧",
    "娜", "莉", "雪", "倩", "英", "兰", "梅", "晶", "云", "琴",
];
const MALE_YOUNG: &[&str] = &[
    "浩", "宇", "子", "轩", "梓", "涵", "晨", "泽", "俊", "博", "文", "嘉", "杰", "鑫", "睿", "一",
    "天", "昊", "然", "铭", "辰", "瑞", "阳", "航", "豪", "成",
];
const FEMALE_YOUNG: &[&str] = &[
    "欣", "怡", "梓", "涵", "子", "萱", "雨", "诗", "思", "佳", "琪", "可", "馨", "悦", "语", "彤",
    "婷", "雅", "晨", "艺", "紫", "一", "依", "梦", "雯",
];

/// Groups of given-name characters read the same (pinyin, ignoring tone).
const HOMOPHONES: &[&[&str]] = &[
    &["伟", "玮", "炜", "薇"],
    &["明", "铭", "鸣"],
    &["华", "桦", "骅"],
    &["静", "婧", "靖", "晶"],
    &["丽", "莉", "俐", "利", "礼", "理"],
    &["军", "君", "钧"],
    &["芳", "方"],
    &["敏", "闵", "珉"],
    &["杰", "洁", "婕", "捷"],
    &["强", "蔷"],
    &["磊", "垒"],
    &["洋", "阳", "杨"],
    &["艳", "燕", "雁", "彦"],
    &["勇", "永", "咏"],
    &["涛", "滔", "韬"],
    &["秀", "绣", "琇"],
    &["英", "瑛", "莹", "颖"],
    &["霞", "侠", "夏"],
    &["平", "萍", "苹"],
    &["刚", "钢", "纲"],
    &["桂", "贵"],
    &["兰", "岚", "蓝"],
    &["红", "虹", "鸿", "宏"],
    &["国", "帼"],
    &["建", "健", "剑"],
    &["林", "琳", "霖"],
    &["玲", "铃", "龄"],
    &["梅", "玫", "媚"],
    &["娟", "鹃"],
    &["峰", "锋", "丰", "凤"],
    &["辉", "晖", "徽"],
    &["斌", "彬", "滨", "兵"],
    &["浩", "皓", "昊", "豪"],
    &["鹏", "朋"],
    &["飞", "菲", "非"],
    &["宇", "雨", "羽", "玉", "语"],
    &["凯", "恺", "锴"],
    &["俊", "峻", "骏"],
    &["鑫", "新", "欣", "馨"],
    &["荣", "蓉", "容"],
    &["珍", "贞", "真"],
    &["琴", "芹", "勤"],
    &["莲", "连", "涟"],
    &["云", "芸", "韵"],
    &["婷", "庭", "亭"],
    &["怡", "宜", "仪", "一", "依", "艺", "义", "毅"],
    &["涵", "寒", "晗"],
    &["晨", "辰", "臣"],
    &["轩", "萱", "宣"],
    &["泽", "择"],
    &["梓", "子", "紫"],
    &["文", "雯", "闻"],
    &["志", "智", "治"],
    &["成", "诚", "城"],
    &["东", "冬"],
    &["忠", "中"],
    &["金", "锦", "瑾"],
    &["佳", "家", "嘉"],
    &["慧", "惠", "蕙"],
    &["德", "得"],
    &["福", "富"],
    &["春", "椿"],
    &["生", "升", "笙"],
    &["亮", "靓"],
    &["超", "潮"],
    &["波", "博"],
    &["龙", "隆"],
    &["娜", "纳"],
    &["丹", "旦"],
    &["倩", "茜"],
    &["雪", "学"],
    &["琪", "琦", "淇", "奇"],
    &["思", "丝"],
    &["诗", "师"],
    &["彤", "桐", "童"],
    &["雅", "亚"],
    &["悦", "月", "越"],
    &["可", "珂"],
    &["睿", "瑞"],
    &["然", "冉"],
    &["天", "添"],
    &["航", "杭"],
    &["梦", "孟"],
    &["祥", "翔", "香", "湘"],
    &["庆", "青", "清"],
    &["山", "珊", "杉"],
    &["友", "有", "佑"],
    &["宝", "保", "葆"],
    &["兴", "星", "杏"],
    &["才", "材", "财"],
    &["菊", "桔"],
    &["翠", "萃"],
    &["胜", "盛"],
    &["海", "亥"],
];

/// Simplified characters and their traditional forms (only characters that differ).
const TRADITIONAL: &[(char, char)] = &[
    ('张', '張'),
    ('刘', '劉'),
    ('陈', '陳'),
    ('杨', '楊'),
    ('黄', '黃'),
    ('赵', '趙'),
    ('吴', '吳'),
    ('孙', '孫'),
    ('马', '馬'),
    ('郑', '鄭'),
    ('冯', '馮'),
    ('邓', '鄧'),
    ('许', '許'),
    ('韩', '韓'),
    ('谢', '謝'),
    ('罗', '羅'),
    ('叶', '葉'),
    ('苏', '蘇'),
    ('吕', '呂'),
    ('蒋', '蔣'),
    ('卢', '盧'),
    ('钟', '鍾'),
    ('谭', '譚'),
    ('陆', '陸'),
    ('韦', '韋'),
    ('邹', '鄒'),
    ('闫', '閆'),
    ('贺', '賀'),
    ('顾', '顧'),
    ('龚', '龔'),
    ('万', '萬'),
    ('钱', '錢'),
    ('汤', '湯'),
    ('严', '嚴'),
    ('乔', '喬'),
    ('庞', '龐'),
    ('颜', '顏'),
    ('庄', '莊'),
    ('聂', '聶'),
    ('鲁', '魯'),
    ('齐', '齊'),
    ('卫', '衛'),
    ('骆', '駱'),
    ('鲍', '鮑'),
    ('阳', '陽'),
    ('伟', '偉'),
    ('华', '華'),
    ('丽', '麗'),
    ('军', '軍'),
    ('红', '紅'),
    ('国', '國'),
    ('兰', '蘭'),
    ('凤', '鳳'),
    ('龙', '龍'),
    ('云', '雲'),
    ('东', '東'),
    ('刚', '剛'),
    ('强', '強'),
    ('涛', '濤'),
    ('杰', '傑'),
    ('静', '靜'),
    ('艳', '艷'),
    ('辉', '輝'),
    ('鹏', '鵬'),
    ('飞', '飛'),
    ('凯', '凱'),
    ('荣', '榮'),
    ('贵', '貴'),
    ('宝', '寶'),
    ('兴', '興'),
    ('发', '發'),
    ('连', '連'),
    ('长', '長'),
    ('庆', '慶'),
    ('莲', '蓮'),
    ('轩', '軒'),
    ('泽', '澤'),
    ('钢', '鋼'),
    ('锋', '鋒'),
    ('铭', '銘'),
    ('鸣', '鳴'),
    ('玮', '瑋'),
    ('炜', '煒'),
    ('钧', '鈞'),
    ('洁', '潔'),
    ('莹', '瑩'),
    ('颖', '穎'),
    ('侠', '俠'),
    ('岚', '嵐'),
    ('鸿', '鴻'),
    ('剑', '劍'),
    ('铃', '鈴'),
    ('龄', '齡'),
    ('鹃', '鵑'),
    ('丰', '豐'),
    ('晖', '暉'),
    ('滨', '濱'),
    ('骏', '駿'),
    ('贞', '貞'),
    ('韵', '韻'),
    ('择', '擇'),
    ('闻', '聞'),
    ('诚', '誠'),
    ('锦', '錦'),
    ('梦', '夢'),
    ('义', '義'),
    ('礼', '禮'),
    ('学', '學'),
    ('诗', '詩'),
    ('师', '師'),
    ('丝', '絲'),
    ('亚', '亞'),
    ('语', '語'),
    ('艺', '藝'),
    ('宁', '寧'),
    ('爱', '愛'),
    ('书', '書'),
    ('晓', '曉'),
    ('岭', '嶺'),
    ('胜', '勝'),
    ('进', '進'),
    ('财', '財'),
    ('纳', '納'),
    ('钰', '鈺'),
];

/// Pick an index by integer weights (deterministic: one draw, a linear scan).
pub(crate) fn weighted<T>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> usize {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    if total == 0 {
        return 0;
    }
    let mut x = rng.gen_range(0..total);
    for (i, (_, w)) in items.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= *w;
    }
    items.len() - 1
}

pub(crate) fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

pub(crate) fn surname(rng: &mut ChaCha8Rng) -> &'static str {
    SURNAMES[weighted(rng, SURNAMES)].0
}

/// A given name of one or two characters, in the fashion of the person's birth year.
pub(crate) fn given_name(rng: &mut ChaCha8Rng, sex: Sex, birth_year: i32) -> String {
    let pool = match (sex, birth_year) {
        (Sex::Male, y) if y < 1970 => MALE_OLD,
        (Sex::Female, y) if y < 1970 => FEMALE_OLD,
        (Sex::Male, y) if y < 2000 => MALE_MID,
        (Sex::Female, y) if y < 2000 => FEMALE_MID,
        (Sex::Male, _) => MALE_YOUNG,
        (Sex::Female, _) => FEMALE_YOUNG,
    };
    let two = match birth_year {
        y if y < 1970 => 85,
        y if y < 2000 => 70,
        _ => 88,
    };
    let mut s = String::from(*pick(rng, pool));
    if rng.gen_range(0..100) < two {
        let mut second = *pick(rng, pool);
        if s == second {
            second = *pick(rng, pool);
        }
        s.push_str(second);
    }
    s
}

/// Split a full name into (surname, given name).
pub fn split_name(name: &str) -> (&str, &str) {
    for c in COMPOUND_SURNAMES {
        if let Some(rest) = name.strip_prefix(c) {
            return (c, rest);
        }
    }
    match name.char_indices().nth(1) {
        Some((i, _)) => (&name[..i], &name[i..]),
        None => (name, ""),
    }
}

fn homophones_of(ch: &str) -> Option<&'static [&'static str]> {
    HOMOPHONES.iter().find(|g| g.contains(&ch)).copied()
}

/// Replace one character of the given name by a same-pinyin one. `None` if no character has one.
pub(crate) fn homophone(rng: &mut ChaCha8Rng, name: &str) -> Option<String> {
    let (sur, given) = split_name(name);
    let chars: Vec<&str> = given
        .char_indices()
        .map(|(i, c)| &given[i..i + c.len_utf8()])
        .collect();
    let candidates: Vec<usize> = (0..chars.len())
        .filter(|&i| homophones_of(chars[i]).is_some())
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let at = *pick(rng, &candidates);
    let group = homophones_of(chars[at])?;
    let others: Vec<&str> = group.iter().copied().filter(|c| *c != chars[at]).collect();
    if others.is_empty() {
        return None;
    }
    let replacement = *pick(rng, &others);
    let mut out = String::from(sur);
    for (i, c) in chars.iter().enumerate() {
        out.push_str(if i == at { replacement } else { c });
    }
    Some(out)
}

/// Write the name in traditional characters. `None` if no character differs.
pub(crate) fn traditional(name: &str) -> Option<String> {
    let out: String = name
        .chars()
        .map(|c| {
            TRADITIONAL
                .iter()
                .find(|(s, _)| *s == c)
                .map(|(_, t)| *t)
                .unwrap_or(c)
        })
        .collect();
    (out != name).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn homophone_groups_are_disjoint() {
        let mut seen = std::collections::BTreeSet::new();
        for g in HOMOPHONES {
            for c in *g {
                assert!(seen.insert(*c), "{c} in two homophone groups");
            }
        }
    }

    #[test]
    fn traditional_forms_differ_and_are_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (s, t) in TRADITIONAL {
            assert_ne!(s, t);
            assert!(seen.insert(*s), "{s} listed twice");
        }
    }

    #[test]
    fn names_split_and_vary() {
        assert_eq!(split_name("欧阳娜娜"), ("欧阳", "娜娜"));
        assert_eq!(split_name("张伟"), ("张", "伟"));
        assert_eq!(traditional("张伟").as_deref(), Some("張偉"));
        assert_eq!(traditional("王明"), None);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let h = homophone(&mut rng, "张伟").unwrap();
        assert!(
            h.starts_with('张') && h != "张伟" && h.chars().count() == 2,
            "{h}"
        );
    }

    #[test]
    fn most_given_name_characters_have_a_homophone() {
        for pool in [
            MALE_OLD,
            FEMALE_OLD,
            MALE_MID,
            FEMALE_MID,
            MALE_YOUNG,
            FEMALE_YOUNG,
        ] {
            let with = pool.iter().filter(|c| homophones_of(c).is_some()).count();
            assert!(with * 10 >= pool.len() * 9, "{pool:?}");
        }
    }
}
