//! `doudi dev-broker`: a Kafka-protocol broker for development and tests (librdkafka's mock
//! cluster) with the feed, dead-letter and warnings topics, and fault injection on stdin.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use doudi_kafka::dev::DevBroker;

use crate::Config;

#[derive(Debug, Args)]
#[command(after_help = "\
Prints `bootstrap=HOST:PORT[,…]` as the first line of stdout, then serves until SIGTERM, Ctrl-C or the end of stdin. It holds its data in memory only (gone when it stops): for development and tests, never production.

Fault commands on stdin, one per line, each answered on stdout with `ok …` or `error …`:
  down ID                    take broker ID (1..N) down
  up ID                      bring it back
  rtt ID MS                  delay broker ID's responses by MS milliseconds
  delay ID API MS [COUNT]    answer the next COUNT (1) requests of API broker ID receives MS
                             milliseconds late (Fetch, Metadata, …), its other requests as usual
  lead TOPIC PARTITION ID    broker ID leads that partition from now on
  slow TOPIC PARTITION MS    hold one partition back: the last broker leads it alone and answers
                             its next Fetch MS late, so its records reach a consumer at least MS
                             after the other partitions' (needs --brokers 2 or more)
  errors API COUNT CODE      the next COUNT requests of API (Fetch, Produce, Metadata, OffsetCommit,
                             JoinGroup, Heartbeat, …) fail with CODE (NOT_LEADER_FOR_PARTITION,
                             REQUEST_TIMED_OUT, TRANSPORT, … or a number)
  clear API                  forget the errors pushed for API
  create TOPIC PARTITIONS    create another topic

Examples:
  doudi dev-broker --partitions 8
  doudi dev-broker --brokers 3 --partitions 6 <faults.txt
  (echo 'slow housing 0 30000'; cat) | doudi dev-broker --brokers 2   # housing/0 arrives 30 s late
  (echo 'down 1'; sleep 5; echo 'up 1'; cat) | doudi dev-broker")]
pub struct DevBrokerArgs {
    /// Partitions of each topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Brokers in the cluster.
    #[arg(long, default_value_t = 1)]
    pub brokers: i32,
}

pub async fn run(config: &Config, args: DevBrokerArgs) -> anyhow::Result<ExitCode> {
    if !(1..=1000).contains(&args.partitions) || !(1..=16).contains(&args.brokers) {
        anyhow::bail!(tr!(
            "--partitions 须在 1 到 1000 之间，--brokers 须在 1 到 16 之间",
            "--partitions must be 1 to 1000 and --brokers 1 to 16"
        ));
    }
    let mut broker = DevBroker::start(&config.kafka, args.brokers, args.partitions)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "bootstrap={}", broker.bootstrap())?;
        out.flush()?;
    }
    tracing::info!(
        brokers = args.brokers,
        partitions = args.partitions,
        "dev broker up; fault commands on stdin (help), stop with Ctrl-C or end of input"
    );
    // Lines from stdin, read on their own thread.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.blocking_send(line.trim().to_string()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            line = rx.recv() => match line {
                None => break,
                Some(l) if l.is_empty() => {}
                Some(l) => {
                    let answer = match broker.command(&l) {
                        Ok(ok) => ok,
                        Err(e) => format!("error {e}"),
                    };
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{answer}")?;
                    out.flush()?;
                }
            }
        }
    }
    tracing::info!("dev broker stopping");
    drop(broker);
    Ok(ExitCode::SUCCESS)
}
