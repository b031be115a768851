//! Normalisation of names and free text before comparison.
//!
//! - full-width forms → half-width (`Ｗａｎｇ` → `Wang`, the ideographic space → space);
//! - whitespace and punctuation removed (the middle dot `·` of transliterated minority names too);
//! - traditional characters → simplified through a compact table of the characters common in
//!   names ([`simplify`]): a full OpenCC dictionary would cost megabytes and build time for
//!   characters a register never holds;
//! - Han names also get their toneless pinyin, so that homophones (张伟 / 张玮) compare equal;
//! - Latin-script names (minority and foreign residents) are case-folded, stripped of diacritics
//!   and punctuation, and their tokens sorted (`Müller, Hans` → `hans muller`).

use std::sync::OnceLock;

use pinyin::ToPinyin;

/// Full-width ASCII variants (U+FF01–U+FF5E) and the ideographic space to their ASCII form.
pub fn half_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// Traditional → simplified pairs, two characters per pair (traditional first). Only characters
/// that differ and occur in personal names (surnames and common given-name characters).
const TRAD_SIMP: &str = "張张劉刘陳陈楊杨黃黄趙赵吳吴孫孙馬马鄭郑馮冯鄧邓許许韓韩謝谢羅罗葉叶蘇苏\
呂吕蔣蒋盧卢鍾钟鐘钟譚谭陸陆韋韦鄒邹閆闫閻阎賀贺顧顾龔龚萬万錢钱湯汤嚴严喬乔龐庞顏颜莊庄聶聂\
魯鲁齊齐衛卫駱骆鮑鲍陽阳偉伟華华麗丽軍军紅红國国蘭兰鳳凤龍龙雲云東东剛刚強强濤涛傑杰靜静艷艳\
豔艳輝辉鵬鹏飛飞凱凯榮荣貴贵寶宝興兴發发連连長长慶庆蓮莲軒轩澤泽鋼钢鋒锋銘铭鳴鸣瑋玮煒炜鈞钧\
潔洁瑩莹穎颖俠侠嵐岚鴻鸿劍剑鈴铃齡龄鵑鹃豐丰暉晖濱滨駿骏貞贞韻韵擇择聞闻誠诚錦锦夢梦義义禮礼\
學学詩诗師师絲丝亞亚語语藝艺寧宁愛爱書书曉晓嶺岭勝胜進进財财納纳鈺钰門门閔闵關关壽寿賴赖蕭萧\
倫伦維维紀纪歐欧賈贾樂乐費费廣广饒饶溫温單单滿满計计麥麦項项邊边車车薩萨蕓芸瑤瑶詠咏嬌娇鶯莺\
嫻娴婭娅環环綺绮綠绿絹绢緒绪綱纲純纯紹绍經经繼继儀仪億亿傳传儉俭優优會会來来暢畅鄉乡賢贤順顺\
頌颂頤颐風风颯飒馳驰驊骅騰腾驍骁鶴鹤鷹鹰漢汉潤润淵渊濟济湧涌煥焕燦灿瓊琼碩硕禎祯競竞簡简範范\
聰聪藍蓝蘆芦虹虹譽誉賓宾賜赐贊赞躍跃達达遠远邁迈釗钊銀银銳锐鍵键鎮镇鐵铁開开閣阁雙双靈灵領领\
顯显鵬鹏鸞鸾蘊蕴績绩標标棟栋樓楼樹树橋桥櫻樱權权歡欢氣气決决沖冲淩凌滬沪滄沧漁渔瀾澜災灾煒炜\
熱热爾尔猶犹獅狮琺珐現现瑪玛甌瓯畢毕異异盞盏眾众瞭了碼码礎础祿禄禕祎穩稳築筑糧粮紋纹紡纺組组\
結结給给絡络統统綿绵緣缘練练縉缙織织繡绣缐线羅罗翹翘聖圣聯联肅肃脈脉興兴舊旧艦舰蘋苹蘭兰虞虞\
衆众襲袭覺觉親亲記记設设訪访詹詹誌志認认諸诸謙谦謹谨譯译豪豪貞贞貫贯賀贺賽赛贇赟趕赶輔辅輕轻\
農农邇迩郵邮鄺邝鄔邬醫医鈔钞鈣钙鈿钿銓铨銅铜錚铮錫锡鍊炼鍍镀鏗铿鑫鑫閃闪閑闲間间闊阔闖闯陰阴\
隨随險险隱隐雜杂雞鸡離离難难電电韜韬頂顶項项順顺須须頓顿頗颇領领頡颉頻频題题顏颜顥颢願愿類类\
飄飘餘余館馆馭驭馳驰駒驹騏骐驥骥體体鬆松鬥斗魏魏鮮鲜鳥鸟鴿鸽鵬鹏鶯莺麒麒黎黎點点齒齿龜龟";

fn trad_table() -> &'static [(char, char)] {
    static TABLE: OnceLock<Vec<(char, char)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let chars: Vec<char> = TRAD_SIMP.chars().filter(|c| !c.is_whitespace()).collect();
        let mut t: Vec<(char, char)> = chars
            .chunks_exact(2)
            .map(|p| (p[0], p[1]))
            .filter(|(a, b)| a != b)
            .collect();
        t.sort_unstable();
        t.dedup_by_key(|p| p.0);
        t
    })
}

/// The simplified form of a traditional character (the character itself when the table does not
/// list it).
pub fn simplify(c: char) -> char {
    let t = trad_table();
    match t.binary_search_by_key(&c, |p| p.0) {
        Ok(i) => t[i].1,
        Err(_) => c,
    }
}

/// A CJK unified ideograph (basic block and extension A).
pub fn is_han(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// Strip the diacritic of a Latin letter (Latin-1 supplement and Latin Extended-A), lower case.
fn fold_latin(c: char) -> Option<&'static str> {
    Some(match c {
        'à'..='å' | 'À'..='Å' | 'ā' | 'Ā' | 'ă' | 'Ă' | 'ą' | 'Ą' => "a",
        'æ' | 'Æ' => "ae",
        'ç' | 'Ç' | 'ć' | 'Ć' | 'č' | 'Č' => "c",
        'ď' | 'Ď' | 'đ' | 'Đ' | 'ð' | 'Ð' => "d",
        'è'..='ë' | 'È'..='Ë' | 'ē' | 'Ē' | 'ė' | 'Ė' | 'ę' | 'Ę' | 'ě' | 'Ě' => "e",
        'ğ' | 'Ğ' | 'ģ' | 'Ģ' => "g",
        'ì'..='ï' | 'Ì'..='Ï' | 'ī' | 'Ī' | 'ı' | 'İ' | 'į' | 'Į' => "i",
        'ķ' | 'Ķ' => "k",
        'ł' | 'Ł' | 'ľ' | 'Ľ' | 'ĺ' | 'Ĺ' | 'ļ' | 'Ļ' => "l",
        'ñ' | 'Ñ' | 'ń' | 'Ń' | 'ň' | 'Ň' | 'ņ' | 'Ņ' => "n",
        'ò'..='ö' | 'Ò'..='Ö' | 'ø' | 'Ø' | 'ō' | 'Ō' | 'ő' | 'Ő' => "o",
        'œ' | 'Œ' => "oe",
        'ř' | 'Ř' | 'ŕ' | 'Ŕ' => "r",
        'ś' | 'Ś' | 'š' | 'Š' | 'ş' | 'Ş' => "s",
        'ß' => "ss",
        'ť' | 'Ť' | 'ţ' | 'Ţ' | 'þ' | 'Þ' => "t",
        'ù'..='ü' | 'Ù'..='Ü' | 'ū' | 'Ū' | 'ů' | 'Ů' | 'ű' | 'Ű' | 'ų' | 'Ų' => "u",
        'ý' | 'Ý' | 'ÿ' | 'Ÿ' => "y",
        'ź' | 'Ź' | 'ż' | 'Ż' | 'ž' | 'Ž' => "z",
        _ => return None,
    })
}

/// Compound surnames (复姓) common enough to matter when splitting a name.
const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "令狐", "端木", "独孤", "南宫", "西门",
];

/// Which writing system a name is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    Han,
    Latin,
    Empty,
}

/// A name ready for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormName {
    /// Han: simplified characters only. Latin: folded tokens, sorted, space-separated.
    pub key: String,
    /// Han: toneless pinyin, syllables joined. Latin: the key without spaces.
    pub sound: String,
    pub script: Script,
    /// Byte length of the family name inside `key` (Han only; 0 for Latin).
    pub family_len: usize,
    /// Byte length of the family name's sound at the start of `sound` (Latin: all of it).
    pub family_sound_len: usize,
}

impl NormName {
    pub fn is_empty(&self) -> bool {
        self.key.is_empty()
    }

    /// The family name (Han), or the whole key (Latin: token order is not reliable).
    pub fn family(&self) -> &str {
        if self.script == Script::Han {
            &self.key[..self.family_len]
        } else {
            &self.key
        }
    }

    /// The family name's sound (Han: its pinyin; Latin: the whole sound).
    pub fn family_sound(&self) -> &str {
        self.sound
            .get(..self.family_sound_len)
            .unwrap_or(&self.sound)
    }

    /// The given name (Han), or the whole key (Latin).
    pub fn given(&self) -> &str {
        if self.script == Script::Han {
            &self.key[self.family_len..]
        } else {
            &self.key
        }
    }
}

/// Normalise a personal name (see the module doc).
pub fn normalise_name(raw: &str) -> NormName {
    let mut han = String::with_capacity(raw.len());
    let mut latin = String::new();
    let mut han_count = 0usize;
    for c in raw.chars().map(half_width) {
        if is_han(c) {
            han.push(simplify(c));
            han_count += 1;
            latin.push(' ');
        } else if c.is_ascii_alphanumeric() {
            latin.push(c.to_ascii_lowercase());
        } else if let Some(f) = fold_latin(c) {
            latin.push_str(f);
        } else if c.is_alphabetic() {
            latin.extend(c.to_lowercase());
        } else if c == '\'' || c == '’' {
            // O'Brien → obrien: an apostrophe joins rather than splits.
        } else {
            latin.push(' ');
        }
    }
    if han_count > 0 {
        let family_len = COMPOUND_SURNAMES
            .iter()
            .find(|s| han.starts_with(*s) && han.len() > s.len())
            .map(|s| s.len())
            .or_else(|| han.chars().next().map(char::len_utf8))
            .unwrap_or(0);
        let mut sound = String::with_capacity(han.len() * 2);
        let mut family_sound_len = 0;
        for (i, c) in han.char_indices() {
            if i == family_len {
                family_sound_len = sound.len();
            }
            match c.to_pinyin() {
                Some(p) => sound.push_str(p.plain()),
                None => sound.push(c),
            }
        }
        if family_len >= han.len() {
            family_sound_len = sound.len();
        }
        return NormName {
            key: han,
            sound,
            script: Script::Han,
            family_len,
            family_sound_len,
        };
    }
    let mut tokens: Vec<&str> = latin.split_whitespace().collect();
    if tokens.is_empty() {
        return NormName {
            key: String::new(),
            sound: String::new(),
            script: Script::Empty,
            family_len: 0,
            family_sound_len: 0,
        };
    }
    tokens.sort_unstable();
    let key = tokens.join(" ");
    let sound = tokens.concat();
    NormName {
        key,
        family_sound_len: sound.len(),
        sound,
        script: Script::Latin,
        family_len: 0,
    }
}

/// Normalise free text (addresses, codes): half-width, simplified, lower case, with whitespace
/// and punctuation removed.
pub fn normalise_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars().map(half_width) {
        if is_han(c) {
            out.push(simplify(c));
        } else if let Some(f) = fold_latin(c) {
            out.push_str(f);
        } else if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two spellings normalise to the same name, which is returned.
    #[track_caller]
    fn same_name(one: &str, other: &str) -> NormName {
        let (a, b) = (normalise_name(one), normalise_name(other));
        assert_eq!(a, b);
        b
    }

    #[test]
    fn full_width_becomes_half_width() {
        assert_eq!(half_width('Ａ'), 'A');
        assert_eq!(half_width('５'), '5');
        assert_eq!(half_width('\u{3000}'), ' ');
        assert_eq!(normalise_text("ＡＢＣ　１２３号"), "abc123号");
    }

    #[test]
    fn traditional_names_simplify_and_keep_their_sound() {
        let s = same_name("張 偉", "张伟");
        assert_eq!(s.sound, "zhangwei");
        assert_eq!(s.family(), "张");
        assert_eq!(s.given(), "伟");
        assert_eq!(s.family_sound(), "zhang");
        assert_eq!(normalise_name("欧阳娜娜").family_sound(), "ouyang");
        assert_eq!(normalise_name("歐陽娜娜").family(), "欧阳");
    }

    #[test]
    fn homophones_share_their_pinyin_but_not_their_characters() {
        let a = normalise_name("张伟");
        let b = normalise_name("张玮");
        assert_ne!(a.key, b.key);
        assert_eq!(a.sound, b.sound);
    }

    #[test]
    fn table_has_no_conflicting_pairs() {
        let t = trad_table();
        assert!(t.len() > 250, "{}", t.len());
        for w in t.windows(2) {
            assert!(w[0].0 < w[1].0);
        }
        for (tr, si) in t {
            assert!(is_han(*tr) && is_han(*si));
        }
    }

    #[test]
    fn latin_names_fold_case_diacritics_dots_and_order() {
        let a = same_name("Müller, Hans", "HANS  MULLER");
        assert_eq!(a.key, "hans muller");
        assert_eq!(a.script, Script::Latin);
        let u = normalise_name("Aynur·Tursun");
        assert_eq!(u.key, "aynur tursun");
        assert_eq!(normalise_name("Ｏ'Ｂｒｉｅｎ").key, "obrien");
        // a transliterated minority name written in Han with a middle dot
        assert_eq!(normalise_name("阿依努尔·吐尔逊").key, "阿依努尔吐尔逊");
        assert_eq!(normalise_name(" · ").script, Script::Empty);
    }
}
