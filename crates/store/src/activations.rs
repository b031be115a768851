//! Activations of rule sets and identity models, each at a stream position (issue 19 item 2): the
//! versions a record is decided with belong to the record's history. An activation is stored under
//! the lock batches commit under (the `timeline_changes` counter row, see [`crate::locks`]), with
//! the position every stream had been committed to at that instant, so that it sits between two
//! batches' commits: every record committed before it is before its positions, every record
//! committed after it at or after them (a stream it does not name began after it).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::batch::BatchTx;
use crate::db::{on, Conn, Fetch};
use crate::error::{Ctx, StoreError};
use crate::locks::lock_timeline_counter;
use crate::open::Store;
use crate::time::now;

/// What an activation makes current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationKind {
    /// A rule set (the content is its TOML).
    Rules,
    /// An identity model (the content is its version in `linkage_models`).
    Model,
}

impl ActivationKind {
    pub fn code(self) -> &'static str {
        match self {
            ActivationKind::Rules => "rules",
            ActivationKind::Model => "model",
        }
    }

    fn decode(code: &str) -> Result<ActivationKind, StoreError> {
        match code {
            "rules" => Ok(ActivationKind::Rules),
            "model" => Ok(ActivationKind::Model),
            other => Err(StoreError::Corrupt {
                context: "activations.kind",
                message: format!("unknown kind {other:?}"),
            }),
        }
    }
}

/// A stored activation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActivationRow {
    /// The order of activations (of both kinds): a later one wins where both apply.
    pub id: i64,
    pub kind: ActivationKind,
    pub version: String,
    /// The rule set's TOML, or the model's version.
    #[serde(skip)]
    pub content: String,
    /// Stream → the first line (Kafka: offset) decided with this version; a stream not named
    /// began after the activation, and is decided with it from its start.
    pub from: BTreeMap<String, u64>,
    pub activated_at: String,
    pub activated_by: String,
}

impl ActivationRow {
    /// Whether the record at `line` of `stream` comes at or after this activation.
    pub fn covers(&self, stream: &str, line: u64) -> bool {
        line >= self.from.get(stream).copied().unwrap_or(0)
    }
}

const COLUMNS: &str = "id, kind, version, content, positions, activated_at, activated_by";

fn decode_row(
    (id, kind, version, content, positions, activated_at, activated_by): (
        i64,
        String,
        String,
        String,
        String,
        String,
        String,
    ),
) -> Result<ActivationRow, StoreError> {
    let from: BTreeMap<String, u64> =
        serde_json::from_str(&positions).map_err(|e| StoreError::Corrupt {
            context: "activations.positions",
            message: e.to_string(),
        })?;
    Ok(ActivationRow {
        id,
        kind: ActivationKind::decode(&kind)?,
        version,
        content,
        from,
        activated_at,
        activated_by,
    })
}

type RawRow = (i64, String, String, String, String, String, String);

/// The activations after `after` (by id), in order.
async fn activations_after(conn: Conn<'_>, after: i64) -> Result<Vec<ActivationRow>, StoreError> {
    let rows: Vec<RawRow> = on!(conn, c => {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM activations WHERE id > $1 ORDER BY id"))
            .bind(after)
            .all(&mut *c, "reading activations")
            .await?
    });
    rows.into_iter().map(decode_row).collect()
}

/// The id of the last activation (0: none).
async fn generation(conn: Conn<'_>) -> Result<i64, StoreError> {
    Ok(on!(conn, c => {
        sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM activations")
            .one(&mut *c, "reading the activation generation")
            .await?
    })
    .unwrap_or(0))
}

/// Store an activation at the streams' committed positions (the timeline counter's row lock
/// must be held: see the module docs). With `from_start`, it applies from the start of every
/// stream, and only if no activation of its kind is stored yet (the first run's rule set, a model
/// stored before activations were): then the latest of its kind is returned and nothing stored.
/// Likewise a model whose version is the latest model activation's is not activated again.
pub(crate) async fn insert_activation(
    mut conn: Conn<'_>,
    kind: ActivationKind,
    version: &str,
    content: &str,
    who: &str,
    from_start: bool,
) -> Result<(ActivationRow, bool), StoreError> {
    // A model is named by its content's hash: activating the very model that is already the
    // latest changes nothing (two workers starting on a new database both store the default
    // model; a second activation would only make the other's batch in flight restage).
    if from_start || kind == ActivationKind::Model {
        let existing = activations_after(conn.reborrow(), 0).await?;
        match existing.into_iter().rev().find(|a| a.kind == kind) {
            Some(last) if from_start || last.version == version => return Ok((last, false)),
            _ => {}
        }
    }
    let from: BTreeMap<String, u64> = if from_start {
        BTreeMap::new()
    } else {
        let rows: Vec<(String, i64)> = on!(conn.reborrow(), c => {
            sqlx::query_as("SELECT stream, line FROM positions")
                .all(&mut *c, "reading the positions an activation takes effect at")
                .await?
        });
        rows.into_iter()
            .map(|(stream, line)| (stream, line.max(0) as u64 + 1))
            .collect()
    };
    let positions = serde_json::to_string(&from).unwrap_or_else(|_| "{}".to_string());
    let at = now();
    let id: i64 = on!(conn.reborrow(), c => {
        sqlx::query_scalar(
            "INSERT INTO activations (kind, version, content, positions, activated_at, activated_by)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(kind.code())
        .bind(version)
        .bind(content)
        .bind(&positions)
        .bind(&at)
        .bind(who)
        .one(&mut *c, "storing an activation")
        .await?
    });
    crate::audit::append(
        conn.reborrow(),
        who,
        match kind {
            ActivationKind::Rules => "rule_set_activated",
            ActivationKind::Model => "linkage_model_version_activated",
        },
        &format!("{}:{version}", kind.code()),
        &serde_json::json!({"activation": id, "from": from, "from_start": from_start}),
    )
    .await?;
    Ok((
        ActivationRow {
            id,
            kind,
            version: version.to_string(),
            content: content.to_string(),
            from,
            activated_at: at,
            activated_by: who.to_string(),
        },
        true,
    ))
}

impl Store {
    /// Activate a version at the streams' committed positions, between two batches' commits;
    /// see [`insert_activation`] for `from_start`. Returns the activation and whether it was
    /// stored now.
    pub async fn activate(
        &self,
        kind: ActivationKind,
        version: &str,
        content: &str,
        who: &str,
        from_start: bool,
    ) -> Result<(ActivationRow, bool), StoreError> {
        let mut tx = self.write_tx("starting an activation").await?;
        lock_timeline_counter(tx.conn(), "waiting to activate a version").await?;
        let out = insert_activation(tx.conn(), kind, version, content, who, from_start).await?;
        tx.commit("committing an activation").await?;
        Ok(out)
    }

    /// Every activation, in order.
    pub async fn activations(&self) -> Result<Vec<ActivationRow>, StoreError> {
        on!(self.pool(), p => {
            let mut conn = p.acquire().await.ctx("reading activations")?;
            activations_after(Conn::from(&mut *conn), 0).await
        })
    }

    /// The id of the last activation (0: none): a cheap check whether any happened since.
    pub async fn activation_generation(&self) -> Result<i64, StoreError> {
        on!(self.pool(), p => {
            let mut conn = p.acquire().await.ctx("reading the activation generation")?;
            generation(Conn::from(&mut *conn)).await
        })
    }
}

impl BatchTx {
    /// The id of the last activation (0: none), as this transaction sees it. Read it once the
    /// timeline counter's row lock is held ([`BatchTx::lock_timeline_counter`]): no activation
    /// can then commit before this transaction ends.
    pub async fn activation_generation(&mut self) -> Result<i64, StoreError> {
        generation(self.conn()).await
    }

    /// The activations after `after`, in order.
    pub async fn activations_after(
        &mut self,
        after: i64,
    ) -> Result<Vec<ActivationRow>, StoreError> {
        activations_after(self.conn(), after).await
    }

    /// The stored linkage model of this version (its JSON), if there is one.
    pub async fn linkage_model(&mut self, version: &str) -> Result<Option<String>, StoreError> {
        Ok(on!(self.conn(), c => {
            sqlx::query_scalar("SELECT model FROM linkage_models WHERE version = $1")
                .bind(version)
                .optional(&mut *c, "reading a linkage model")
                .await?
        }))
    }

    /// Take the lock batches commit under (the timeline counter's row, held to commit; a no-op on
    /// SQLite, whose writer holds the database): activations wait for it.
    pub async fn lock_timeline_counter(&mut self) -> Result<(), StoreError> {
        lock_timeline_counter(self.conn(), "waiting for the timeline counter").await
    }
}
