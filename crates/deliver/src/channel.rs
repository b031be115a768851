//! How each officer is reached, from the directory ([`Channel`]), and what a send needs, read
//! when a pass sends to them ([`Target`]): a robot's URL and secret are read from the files the
//! directory names, at each pass that has something for that officer (so a changed key is used
//! from the next pass on, without a restart).

use std::path::Path;

use doudi_warnings::routing::{Channels, DingtalkRobot, WecomRobot};

/// An officer's delivery channel, as the directory gives it (file names, no secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The signed generic webhook: its URL.
    Webhook(String),
    /// A WeCom group robot.
    Wecom(WecomRobot),
    /// A DingTalk custom robot with signing.
    Dingtalk(DingtalkRobot),
}

impl Channel {
    /// The officer's delivery channel, if any (the directory allows one at most; should several
    /// be stored, the webhook comes first, then WeCom, then DingTalk).
    pub fn of(channels: &Channels) -> Option<Channel> {
        if let Some(url) = channels.webhook.as_deref().filter(|u| !u.trim().is_empty()) {
            return Some(Channel::Webhook(url.to_string()));
        }
        if let Some(w) = &channels.wecom {
            return Some(Channel::Wecom(w.clone()));
        }
        channels.dingtalk.clone().map(Channel::Dingtalk)
    }

    /// `webhook`, `wecom` or `dingtalk`: the delivery log's channel.
    pub fn code(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Wecom(_) => "wecom",
            Channel::Dingtalk(_) => "dingtalk",
        }
    }

    /// Is it a chat robot (markdown messages, at most 20 a minute)?
    pub fn is_robot(&self) -> bool {
        !matches!(self, Channel::Webhook(_))
    }

    /// For a robot, what tells it apart (the file holding its URL): officers who share a group's
    /// robot share its quota.
    pub fn robot_key(&self) -> Option<&str> {
        match self {
            Channel::Webhook(_) => None,
            Channel::Wecom(w) => Some(&w.url_file),
            Channel::Dingtalk(d) => Some(&d.url_file),
        }
    }
}

/// Where and how a pass sends to one officer.
#[derive(Clone)]
pub(crate) enum Target {
    Webhook {
        url: String,
    },
    Wecom {
        url: String,
    },
    Dingtalk {
        url: String,
        secret: String,
    },
    /// The channel's files cannot be used: every delivery fails (and is retried) with this
    /// error, which names the file, never its content.
    Unusable(String),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Webhook { .. } => "Webhook(<url>)",
            Target::Wecom { .. } => "Wecom(<url>)",
            Target::Dingtalk { .. } => "Dingtalk(<url>, <secret>)",
            Target::Unusable(_) => "Unusable",
        })
    }
}

/// The trimmed content of a file that holds one credential.
fn read_one(what: &str, path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(Path::new(path))
        .map_err(|e| format!("cannot read the {what} file {path}: {e}"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("the {what} file {path} is empty"));
    }
    Ok(text.to_string())
}

/// A robot's URL from its file: one http(s) URL.
fn read_url(what: &str, path: &str) -> Result<String, String> {
    let url = read_one(what, path)?;
    match reqwest::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(url),
        _ => Err(format!(
            "the {what} file {path} does not hold an http(s) URL (only the robot's webhook URL belongs in it)"
        )),
    }
}

impl Target {
    /// Read what `channel` needs from its files.
    pub(crate) fn resolve(channel: &Channel) -> Target {
        let read = || -> Result<Target, String> {
            Ok(match channel {
                Channel::Webhook(url) => Target::Webhook { url: url.clone() },
                Channel::Wecom(w) => Target::Wecom {
                    url: read_url("WeCom robot URL", &w.url_file)?,
                },
                Channel::Dingtalk(d) => Target::Dingtalk {
                    url: read_url("DingTalk robot URL", &d.url_file)?,
                    secret: read_one("DingTalk robot secret", &d.secret_file)?,
                },
            })
        };
        read().unwrap_or_else(Target::Unusable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robots_are_read_from_their_files_and_a_bad_file_is_named_not_shown() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let url = dir.join("li.url");
        let secret = dir.join("li.secret");
        std::fs::write(
            &url,
            "https://oapi.dingtalk.com/robot/send?access_token=t0k3n\n",
        )
        .unwrap();
        std::fs::write(&secret, "SECabc\n").unwrap();
        let d = Channel::Dingtalk(DingtalkRobot {
            url_file: url.display().to_string(),
            secret_file: secret.display().to_string(),
        });
        match Target::resolve(&d) {
            Target::Dingtalk { url, secret } => {
                assert_eq!(
                    url,
                    "https://oapi.dingtalk.com/robot/send?access_token=t0k3n"
                );
                assert_eq!(secret, "SECabc");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            format!("{:?}", Target::resolve(&d)),
            "Dingtalk(<url>, <secret>)"
        );

        std::fs::write(&url, "key=t0k3n").unwrap();
        let Target::Unusable(e) = Target::resolve(&d) else {
            panic!("a file without a URL is unusable")
        };
        assert!(e.contains("li.url") && !e.contains("t0k3n"), "{e}");
        let missing = Channel::Wecom(WecomRobot {
            url_file: dir.join("none.url").display().to_string(),
        });
        let Target::Unusable(e) = Target::resolve(&missing) else {
            panic!("a missing file is unusable")
        };
        assert!(e.starts_with("cannot read the WeCom robot URL file"), "{e}");
    }

    #[test]
    fn the_channel_of_an_officer_is_the_one_set() {
        let none = Channels::default();
        assert_eq!(Channel::of(&none), None);
        let w = Channels {
            wecom: Some(WecomRobot {
                url_file: "/run/secrets/w".into(),
            }),
            ..Channels::default()
        };
        let c = Channel::of(&w).unwrap();
        assert_eq!((c.code(), c.is_robot()), ("wecom", true));
        assert_eq!(c.robot_key(), Some("/run/secrets/w"));
        let blank = Channels {
            webhook: Some(" ".into()),
            ..Channels::default()
        };
        assert_eq!(Channel::of(&blank), None);
    }
}
