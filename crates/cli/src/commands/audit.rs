//! `doudi audit`: the hash-chained audit trail — verify it, read it, and sign a checkpoint of its
//! head to keep outside the database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use doudi_store::Checkpoint;

use super::open_store;
use crate::Config;

const CHECKPOINT_HELP: &str = "\
The chain shows any record altered, deleted or reordered, but not a cut tail: whoever can write
the database can delete the last records and lower the count. A checkpoint is the head's number
and hash, signed with HMAC-SHA256 under audit.checkpoint_key (from the file named by
DOUDI_AUDIT__CHECKPOINT_KEY_FILE, kept away from the database). Keep each checkpoint elsewhere
(another host, a log service), e.g. from cron:
  doudi audit checkpoint >> /srv/audit-checkpoints/doudi.jsonl
and check the trail against the last one:
  tail -n 1 /srv/audit-checkpoints/doudi.jsonl > last.json
  doudi audit verify --checkpoint last.json";

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain from the first record; name the first record that was altered,
    /// deleted or reordered; with --checkpoint, also that the trail still reaches a signed
    /// checkpoint (a cut tail). Exit 0 when intact, 3 when broken (or the checkpoint's signature
    /// is wrong).
    Verify {
        #[arg(long)]
        json: bool,
        /// A checkpoint printed by `doudi audit checkpoint` (needs audit.checkpoint_key).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Print audit records, oldest first.
    List {
        /// From this record number.
        #[arg(long, default_value_t = 1)]
        from: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Print the head of the trail (its last record's number and hash), signed with
    /// audit.checkpoint_key, as one line of JSON to keep outside the database.
    #[command(after_help = CHECKPOINT_HELP)]
    Checkpoint,
}

fn checkpoint_key(config: &Config) -> anyhow::Result<&[u8]> {
    config
        .audit
        .checkpoint_key
        .get()
        .map(str::as_bytes)
        .context(crate::lang::t(
            "没有设置 audit.checkpoint_key：请把密钥放在文件中，并在 DOUDI_AUDIT__CHECKPOINT_KEY_FILE 中写明该文件（不要与数据库放在一起）",
            "no audit.checkpoint_key: put the key in a file and name it in DOUDI_AUDIT__CHECKPOINT_KEY_FILE \
             (keep it away from the database)",
        ))
}

/// Read and check a checkpoint file: `Err` when unreadable, `Ok(Err(why))` when its signature is
/// wrong.
fn read_checkpoint(key: &[u8], path: &PathBuf) -> anyhow::Result<Result<Checkpoint, String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        let p = path.display();
        tr!("无法读取检查点 {p}", "cannot read the checkpoint {p}")
    })?;
    let p = path.display();
    let c: Checkpoint = serde_json::from_str(text.trim()).with_context(|| {
        tr!(
            "{p} 不是 `doudi audit checkpoint` 生成的检查点（一行 JSON）",
            "{p} is not a checkpoint of `doudi audit checkpoint` (one line of JSON)"
        )
    })?;
    if !c.signature_ok(key) {
        return Ok(Err(tr!(
            "检查点 {p} 的签名不符：它被改动过，或不是用 audit.checkpoint_key 的密钥签名的",
            "the signature of checkpoint {p} does not match: it was edited, or signed with another key than audit.checkpoint_key"
        )));
    }
    Ok(Ok(c))
}

pub async fn run(config: &Config, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    // A checkpoint without its key is refused before the database is opened.
    let key = match &cmd {
        AuditCommand::Checkpoint
        | AuditCommand::Verify {
            checkpoint: Some(_),
            ..
        } => Some(checkpoint_key(config)?),
        _ => None,
    };
    let store = open_store(config).await?;
    let code = match cmd {
        AuditCommand::Verify { json, checkpoint } => {
            let mut check = store.verify_audit().await?;
            let mut cp_line = None;
            if let (Some(path), Some(key)) = (&checkpoint, key) {
                let broken = match read_checkpoint(key, path)? {
                    Err(why) => Some((0, why)),
                    Ok(c) => {
                        cp_line = Some(serde_json::json!({"seq": c.seq, "taken_at": c.taken_at}));
                        store
                            .check_checkpoint(&c)
                            .await?
                            .map(|why| (check.records + 1, why))
                    }
                };
                // The chain's own break comes first (it is earlier in the trail).
                if check.first_broken.is_none() {
                    check.first_broken = broken;
                }
            }
            if json {
                let mut v = serde_json::to_value(&check)?;
                v["checkpoint"] = cp_line.clone().unwrap_or(serde_json::Value::Null);
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            match &check.first_broken {
                None => {
                    if !json {
                        let records = check.records;
                        let reaches = cp_line.map_or_else(String::new, |c| {
                            let (seq, at) = (&c["seq"], c["taken_at"].as_str().unwrap_or(""));
                            tr!(
                                "，包含 {at} 对第 #{seq} 条记录所做的检查点",
                                ", reaches the checkpoint of record #{seq} taken at {at}"
                            )
                        });
                        say!(
                            "审计记录完整：{records} 条，哈希链校验通过{reaches}",
                            "audit trail intact: {records} records, hash chain verified{reaches}"
                        );
                    }
                    ExitCode::SUCCESS
                }
                Some((seq, why)) => {
                    if *seq == 0 {
                        complain!("{why}", "{why}");
                    } else if !json {
                        say!(
                            "审计记录在第 #{seq} 条处被破坏：{why}",
                            "audit trail BROKEN at record #{seq}: {why}"
                        );
                    }
                    tracing::error!(record = seq, "the audit trail is broken");
                    ExitCode::from(3)
                }
            }
        }
        AuditCommand::List { from, limit, json } => {
            let records = store.audit_records(from, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                for r in &records {
                    println!(
                        "#{:<6} {} {:<10} {:<28} {:<24} {}",
                        r.seq, r.at, r.actor, r.action, r.subject, r.detail
                    );
                }
            }
            ExitCode::SUCCESS
        }
        AuditCommand::Checkpoint => {
            let (seq, hash) = store.audit_head().await?;
            let key = key.context(crate::lang::t(
                "没有设置 audit.checkpoint_key",
                "no audit.checkpoint_key",
            ))?;
            let c = Checkpoint::sign(key, seq, &hash, &doudi_store::ts(&chrono::Utc::now()));
            println!("{}", serde_json::to_string(&c)?);
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}
