//! The officer directory and routing: who is responsible for a household's region.
//!
//! An officer covers a region-code prefix: a township officer covers `341502001` (every village in
//! that township), a county supervisor `341502`. A warning (or a cross-check finding) goes to the
//! officer whose region is the *longest* prefix of the household's region code; when that officer is
//! off duty it goes to their substitute (if on duty), else to the supervisor above them. A region
//! that no officer covers goes to the nearest supervisor; a region nobody covers is unrouted (the
//! caller keeps the item and reports it — nothing is dropped).

use std::collections::{BTreeMap, HashMap};

use doudi_model::RegionCode;
use serde::{Deserialize, Serialize};

/// What an officer may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Township (or village) officer: receives and acts on warnings of their region.
    Officer,
    /// County (or township) supervisor: approves above the township's limit, receives escalations.
    Supervisor,
}

impl Role {
    pub fn code(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Supervisor => "supervisor",
        }
    }
}

/// How an officer is reached: at most one delivery channel (`webhook`, `wecom` or `dingtalk`;
/// none: the inbox only), and a phone number.
///
/// A robot's webhook URL carries its key (whoever holds it can post to the group) and a DingTalk
/// robot's signing secret is a secret too: the directory names the files that hold them, never
/// the values, so the directory can be printed, stored and audited; `doudi deliver` reads the
/// files when it sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    /// Signed webhook (HTTPS URL of the officer's work system or messaging gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// A WeCom (企业微信) group robot the officer reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom: Option<WecomRobot>,
    /// A DingTalk (钉钉) custom robot the officer reads, with signing (加签).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dingtalk: Option<DingtalkRobot>,
    /// Phone number for SMS gateways (kept, never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl Channels {
    /// The names of the delivery channels set (`webhook`, `wecom`, `dingtalk`).
    pub fn delivery_channels(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self
            .webhook
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
        {
            out.push("webhook");
        }
        if self.wecom.is_some() {
            out.push("wecom");
        }
        if self.dingtalk.is_some() {
            out.push("dingtalk");
        }
        out
    }
}

/// A WeCom group robot: `url_file` names a file holding its webhook URL
/// (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`, the key in it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomRobot {
    pub url_file: String,
}

/// A DingTalk custom robot secured by signing (加签): `url_file` names a file holding its webhook
/// URL (`https://oapi.dingtalk.com/robot/send?access_token=…`), `secret_file` one holding its
/// secret (`SEC…`, shown on the robot's security settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkRobot {
    pub url_file: String,
    pub secret_file: String,
}

/// One officer of the directory, as imported (`doudi officers import FILE`, one JSON object a line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Officer {
    pub officer_id: String,
    pub name: String,
    pub role: Role,
    /// The region covered (6-digit county, 9-digit township or 12-digit village).
    pub region: RegionCode,
    #[serde(default)]
    pub channels: Channels,
    /// Who takes over while this officer is off duty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitute: Option<String>,
    #[serde(default = "yes")]
    pub on_duty: bool,
}

fn yes() -> bool {
    true
}

/// Why the directory refuses a set of officers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("officer {0:?} appears twice")]
    Duplicate(String),
    #[error("officer {officer:?} names substitute {substitute:?}, who is not in the directory")]
    UnknownSubstitute { officer: String, substitute: String },
    #[error("officer {0:?} names themself as substitute")]
    SelfSubstitute(String),
    #[error("officer id must not be empty")]
    EmptyId,
    #[error("officer {officer:?} has several delivery channels ({channels}): give one of webhook, wecom or dingtalk")]
    SeveralChannels { officer: String, channels: String },
    #[error("officer {officer:?}: {channel} file names must not be empty")]
    EmptyFile {
        officer: String,
        channel: &'static str,
    },
}

/// How an item reached its assignee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The officer covering the region.
    Region,
    /// The covering officer is off duty: their substitute.
    Substitute,
    /// No officer on duty covers the region: the supervisor above.
    Supervisor,
}

impl Via {
    pub fn code(self) -> &'static str {
        match self {
            Via::Region => "region",
            Via::Substitute => "substitute",
            Via::Supervisor => "supervisor",
        }
    }
}

/// Who an item is assigned to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub officer_id: String,
    pub via: Via,
    /// The supervisor above the region (escalations and approvals go there), if any.
    pub supervisor_id: Option<String>,
}

/// The officer directory, indexed for routing.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    officers: HashMap<String, Officer>,
    /// (role, region prefix) → officer ids there, sorted for determinism.
    by_region: BTreeMap<(Role, String), Vec<String>>,
}

impl Directory {
    /// Build the directory, checking ids are unique and substitutes exist.
    pub fn new(officers: Vec<Officer>) -> Result<Directory, DirectoryError> {
        let mut map = HashMap::with_capacity(officers.len());
        let mut by_region: BTreeMap<(Role, String), Vec<String>> = BTreeMap::new();
        for o in officers {
            if o.officer_id.trim().is_empty() {
                return Err(DirectoryError::EmptyId);
            }
            let channels = o.channels.delivery_channels();
            if channels.len() > 1 {
                return Err(DirectoryError::SeveralChannels {
                    officer: o.officer_id.clone(),
                    channels: channels.join(", "),
                });
            }
            let blank = |f: &str| f.trim().is_empty();
            let empty = match (&o.channels.wecom, &o.channels.dingtalk) {
                (Some(w), _) if blank(&w.url_file) => Some("wecom"),
                (_, Some(d)) if blank(&d.url_file) || blank(&d.secret_file) => Some("dingtalk"),
                _ => None,
            };
            if let Some(channel) = empty {
                return Err(DirectoryError::EmptyFile {
                    officer: o.officer_id.clone(),
                    channel,
                });
            }
            by_region
                .entry((o.role, o.region.as_str().to_string()))
                .or_default()
                .push(o.officer_id.clone());
            if let Some(prev) = map.insert(o.officer_id.clone(), o) {
                return Err(DirectoryError::Duplicate(prev.officer_id));
            }
        }
        let mut ids: Vec<&String> = map.keys().collect();
        ids.sort();
        for id in ids {
            let o = &map[id];
            if let Some(s) = &o.substitute {
                if s == &o.officer_id {
                    return Err(DirectoryError::SelfSubstitute(o.officer_id.clone()));
                }
                if !map.contains_key(s) {
                    return Err(DirectoryError::UnknownSubstitute {
                        officer: o.officer_id.clone(),
                        substitute: s.clone(),
                    });
                }
            }
        }
        for ids in by_region.values_mut() {
            ids.sort();
        }
        Ok(Directory {
            officers: map,
            by_region,
        })
    }

    pub fn get(&self, officer_id: &str) -> Option<&Officer> {
        self.officers.get(officer_id)
    }

    /// Every officer, in no particular order.
    pub fn officers(&self) -> impl Iterator<Item = &Officer> {
        self.officers.values()
    }

    pub fn len(&self) -> usize {
        self.officers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.officers.is_empty()
    }

    /// Officers of `role` covering `region`, longest prefix first: village, township, county.
    fn covering(&self, role: Role, region: &RegionCode) -> Vec<&Officer> {
        let code = region.as_str();
        [12usize, 9, 6]
            .into_iter()
            .filter(|&n| n <= code.len())
            .filter_map(|n| self.by_region.get(&(role, code[..n].to_string())))
            .flatten()
            .filter_map(|id| self.officers.get(id))
            .collect()
    }

    /// The escalation chain above `region`: one supervisor per level covering it (village,
    /// township, county), nearest first; at each level one on duty, else an on-duty substitute of
    /// one, else the first there.
    pub fn escalation_chain(&self, region: &RegionCode) -> Vec<&Officer> {
        let code = region.as_str();
        [12usize, 9, 6]
            .into_iter()
            .filter(|&n| n <= code.len())
            .filter_map(|n| {
                self.by_region
                    .get(&(Role::Supervisor, code[..n].to_string()))
            })
            .filter_map(|ids| {
                let at_level: Vec<&Officer> =
                    ids.iter().filter_map(|id| self.officers.get(id)).collect();
                at_level
                    .iter()
                    .find(|o| o.on_duty)
                    .copied()
                    .or_else(|| {
                        at_level.iter().find_map(|o| {
                            o.substitute
                                .as_deref()
                                .and_then(|s| self.officers.get(s))
                                .filter(|s| s.on_duty)
                        })
                    })
                    .or_else(|| at_level.first().copied())
            })
            .collect()
    }

    /// The supervisor above `region` (longest prefix; one on duty first).
    pub fn supervisor_of(&self, region: &RegionCode) -> Option<&Officer> {
        let all = self.covering(Role::Supervisor, region);
        all.iter()
            .find(|o| o.on_duty)
            .or_else(|| all.first())
            .copied()
    }

    /// Who is responsible for an item of `region` now; `None` if nobody covers it.
    pub fn route(&self, region: &RegionCode) -> Option<Assignment> {
        let supervisor = self.supervisor_of(region);
        let supervisor_id = supervisor.map(|s| s.officer_id.clone());
        for officer in self.covering(Role::Officer, region) {
            if officer.on_duty {
                return Some(Assignment {
                    officer_id: officer.officer_id.clone(),
                    via: Via::Region,
                    supervisor_id,
                });
            }
            if let Some(sub) = officer
                .substitute
                .as_deref()
                .and_then(|s| self.officers.get(s))
                .filter(|s| s.on_duty)
            {
                return Some(Assignment {
                    officer_id: sub.officer_id.clone(),
                    via: Via::Substitute,
                    supervisor_id,
                });
            }
        }
        supervisor.map(|s| Assignment {
            officer_id: s.officer_id.clone(),
            via: Via::Supervisor,
            supervisor_id: supervisor_id.clone(),
        })
    }

    /// May `actor` act on an item of `region` assigned to `assignee`? The assignee, their
    /// substitute, and any supervisor whose region contains `region` may.
    pub fn may_act(&self, actor: &str, assignee: &str, region: &RegionCode) -> bool {
        let Some(a) = self.officers.get(actor) else {
            return false;
        };
        if actor == assignee {
            return true;
        }
        if self
            .officers
            .get(assignee)
            .and_then(|o| o.substitute.as_deref())
            == Some(actor)
        {
            return true;
        }
        a.role == Role::Supervisor && region.as_str().starts_with(a.region.as_str())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn officer(id: &str, role: Role, region: &str) -> Officer {
        Officer {
            officer_id: id.into(),
            name: format!("name of {id}"),
            role,
            region: RegionCode::parse(region).unwrap(),
            channels: Channels::default(),
            substitute: None,
            on_duty: true,
        }
    }

    /// Li (officer of 341502001, Wang substituting), Wang (341502002), `third`, and Chen
    /// (supervisor of 341502).
    pub(crate) fn directory_with(third: Officer) -> Directory {
        let mut li = officer("li", Role::Officer, "341502001");
        li.substitute = Some("wang".into());
        Directory::new(vec![
            li,
            officer("wang", Role::Officer, "341502002"),
            third,
            officer("chen", Role::Supervisor, "341502"),
        ])
        .unwrap()
    }

    fn region(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    fn directory() -> Directory {
        directory_with(officer("zhao", Role::Officer, "341502001003"))
    }

    #[test]
    fn a_household_goes_to_the_officer_of_the_longest_covering_prefix() {
        let d = directory();
        let a = d.route(&region("341502001001")).unwrap();
        assert_eq!((a.officer_id.as_str(), a.via), ("li", Via::Region));
        assert_eq!(a.supervisor_id.as_deref(), Some("chen"));
        // A village with its own officer goes to them, not to the township's.
        let a = d.route(&region("341502001003")).unwrap();
        assert_eq!(a.officer_id, "zhao");
    }

    #[test]
    fn an_off_duty_officer_hands_over_to_the_substitute_then_the_supervisor() {
        let mut d = directory();
        d.officers.get_mut("li").unwrap().on_duty = false;
        let a = d.route(&region("341502001001")).unwrap();
        assert_eq!((a.officer_id.as_str(), a.via), ("wang", Via::Substitute));
        d.officers.get_mut("wang").unwrap().on_duty = false;
        let a = d.route(&region("341502001001")).unwrap();
        assert_eq!((a.officer_id.as_str(), a.via), ("chen", Via::Supervisor));
    }

    #[test]
    fn a_region_without_an_officer_goes_to_its_supervisor_and_an_uncovered_one_nowhere() {
        let d = directory();
        let a = d.route(&region("341502009001")).unwrap();
        assert_eq!((a.officer_id.as_str(), a.via), ("chen", Via::Supervisor));
        assert!(d.route(&region("341503001001")).is_none());
    }

    #[test]
    fn only_the_assignee_their_substitute_or_a_supervisor_above_may_act() {
        let d = directory();
        let r = region("341502001001");
        assert!(d.may_act("li", "li", &r));
        assert!(d.may_act("wang", "li", &r), "wang is li's substitute");
        assert!(d.may_act("chen", "li", &r), "chen supervises 341502");
        assert!(!d.may_act("zhao", "li", &r), "another village's officer");
        assert!(!d.may_act("nobody", "li", &r));
        let other_county = region("341503001001");
        assert!(!d.may_act("chen", "x", &other_county));
    }

    #[test]
    fn the_escalation_chain_has_one_supervisor_per_level_preferring_one_on_duty() {
        let mut off = officer("sun", Role::Supervisor, "341502");
        off.on_duty = false;
        let d = Directory::new(vec![
            officer("li", Role::Officer, "341502001"),
            officer("ma", Role::Supervisor, "341502001"),
            off,
            officer("chen", Role::Supervisor, "341502"),
        ])
        .unwrap();
        let chain: Vec<&str> = d
            .escalation_chain(&region("341502001003"))
            .iter()
            .map(|o| o.officer_id.as_str())
            .collect();
        assert_eq!(
            chain,
            ["ma", "chen"],
            "township first, then the county's on-duty one"
        );
    }

    #[test]
    fn a_directory_with_a_duplicate_or_a_dangling_substitute_is_refused() {
        let dup = Directory::new(vec![
            officer("li", Role::Officer, "341502001"),
            officer("li", Role::Officer, "341502002"),
        ]);
        assert_eq!(dup.unwrap_err(), DirectoryError::Duplicate("li".into()));
        let mut li = officer("li", Role::Officer, "341502001");
        li.substitute = Some("ghost".into());
        assert!(matches!(
            Directory::new(vec![li]),
            Err(DirectoryError::UnknownSubstitute { .. })
        ));
    }

    #[test]
    fn an_officer_is_reached_by_one_channel_and_robots_by_files_not_secrets() {
        let line = r#"{"officer_id":"li","name":"李娜","role":"officer","region":"341502001",
            "channels":{"dingtalk":{"url_file":"/run/secrets/li-dingtalk.url","secret_file":"/run/secrets/li-dingtalk.secret"}}}"#;
        let o: Officer = serde_json::from_str(line).unwrap();
        assert_eq!(o.channels.delivery_channels(), ["dingtalk"]);
        assert!(Directory::new(vec![o.clone()]).is_ok());

        let mut two = o.clone();
        two.channels.webhook = Some("https://example.gov.cn/hook".into());
        assert_eq!(
            Directory::new(vec![two]).unwrap_err().to_string(),
            "officer \"li\" has several delivery channels (webhook, dingtalk): give one of webhook, wecom or dingtalk"
        );
        let mut blank = o.clone();
        blank.channels.dingtalk = Some(DingtalkRobot {
            url_file: "/run/secrets/li.url".into(),
            secret_file: " ".into(),
        });
        assert!(matches!(
            Directory::new(vec![blank]),
            Err(DirectoryError::EmptyFile {
                channel: "dingtalk",
                ..
            })
        ));
        // The secret itself in the directory is refused: only file names are known fields.
        let inline = r#"{"officer_id":"li","name":"李娜","role":"officer","region":"341502001",
            "channels":{"wecom":{"url":"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}}}"#;
        let e = serde_json::from_str::<Officer>(inline).unwrap_err();
        assert!(e.to_string().contains("unknown field `url`"), "{e}");
    }

    #[test]
    fn an_officer_line_with_an_unknown_field_is_refused() {
        let line = r#"{"officer_id":"li","name":"李娜","role":"officer","region":"341502001","pager":"1"}"#;
        let e = serde_json::from_str::<Officer>(line).unwrap_err();
        assert!(e.to_string().contains("pager"), "{e}");
    }
}
