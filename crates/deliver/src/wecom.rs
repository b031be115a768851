//! WeCom (企业微信) group robots: a markdown message POSTed as JSON to the robot's webhook URL,
//! `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY` (the key in the URL is the robot's
//! credential: the directory names a file holding the URL, never the URL).
//!
//! The documented format (群机器人配置说明, <https://developer.work.weixin.qq.com/document/path/91770>):
//! `{"msgtype":"markdown","markdown":{"content":"…"}}`, the content UTF-8 and at most 4,096 bytes;
//! the answer is HTTP 200 with `{"errcode":0,"errmsg":"ok"}` when the message was taken (a
//! non-zero `errcode`, e.g. 93000 for an invalid webhook URL or 45009 for too many messages, is a
//! failed attempt: [`crate::robot::outcome`]). At most 20 messages a robot a minute.

use serde_json::json;

/// The request body for `markdown` (see [`crate::robot::message`]).
pub fn body(markdown: &str) -> Vec<u8> {
    json!({"msgtype": "markdown", "markdown": {"content": markdown}})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_documented_markdown_message() {
        let v: serde_json::Value = serde_json::from_slice(&body("### 红色预警\n> 户 H0")).unwrap();
        assert_eq!(
            v,
            json!({"msgtype": "markdown", "markdown": {"content": "### 红色预警\n> 户 H0"}})
        );
    }
}
