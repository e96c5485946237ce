//! Schema migrations, applied by the node at start-up.
//!
//! The runner creates the keyspace (with the configured replication) and the
//! `schema_version` table, reads which versions are recorded there, and applies every newer
//! file of `schema/cql/` in order: each statement of a file, then one row in `schema_version`.
//! Statements are idempotent (`IF NOT EXISTS`), so two nodes starting together, or a node that
//! died half-way through a version, converge on the same schema. A database recording a
//! version newer than this binary knows is refused rather than written to.

use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::unprepared::Statement;
use scylla::value::CqlTimestamp;

use super::codec::{driver_error, to_cql_time};
use crate::store::{StoreError, StoreResult};

/// Client-side limit of one schema statement.
pub const DDL_TIMEOUT: Duration = Duration::from_secs(60);

/// One schema version: its number, a description, and its CQL text.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version number (1, 2, …), recorded in `schema_version`.
    pub version: i32,
    /// What it does.
    pub description: &'static str,
    /// The statements, `;`-separated, with `--` comments.
    pub cql: &'static str,
    /// A code step run after the statements and before the version is recorded (so a run cut
    /// short repeats it), for data CQL cannot derive by itself.
    pub fill: Option<Fill>,
}

/// The code steps of migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Version 11: index the names of members stored before `community_member_names`.
    MemberNames,
}

/// Runs a migration's code step.
async fn run_fill(session: &Session, fill: Fill) -> StoreResult<()> {
    match fill {
        Fill::MemberNames => {
            let filled = super::member_names::fill(session).await?;
            tracing::info!(
                filled,
                "indexed community member names stored before version 11"
            );
        }
    }
    Ok(())
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "initial schema",
        cql: include_str!("../../cql/001_initial.cql"),
        fill: None,
    },
    Migration {
        version: 2,
        description: "room event logs, rich messages, read markers",
        cql: include_str!("../../cql/002_events.cql"),
        fill: None,
    },
    Migration {
        version: 3,
        description: "uploaded files",
        cql: include_str!("../../cql/003_files.cql"),
        fill: None,
    },
    Migration {
        version: 4,
        description: "room kinds (text, voice, stage) and bans",
        cql: include_str!("../../cql/004_room_kinds.cql"),
        fill: None,
    },
    Migration {
        version: 5,
        description: "bytes stored per uploader (file quota)",
        cql: include_str!("../../cql/005_file_usage.cql"),
        fill: None,
    },
    Migration {
        version: 6,
        description: "user blocks and privacy settings",
        cql: include_str!("../../cql/006_contacts.cql"),
        fill: None,
    },
    Migration {
        version: 7,
        description: "room ownership epochs (storage-level fencing)",
        cql: include_str!("../../cql/007_room_owner.cql"),
        fill: None,
    },
    Migration {
        version: 8,
        description: "communities, roles and community members",
        cql: include_str!("../../cql/008_communities.cql"),
        fill: None,
    },
    Migration {
        version: 9,
        description: "categories of community channels",
        cql: include_str!("../../cql/009_categories.cql"),
        fill: None,
    },
    Migration {
        version: 10,
        description: "join requests, approval and voice moderation in communities",
        cql: include_str!("../../cql/010_join_requests.cql"),
        fill: None,
    },
    Migration {
        version: 11,
        description: "name index of community members (prefix search)",
        cql: include_str!("../../cql/011_member_names.cql"),
        fill: Some(Fill::MemberNames),
    },
    Migration {
        version: 12,
        description: "mentions of users and notification settings",
        cql: include_str!("../../cql/012_mentions.cql"),
        fill: None,
    },
    Migration {
        version: 13,
        description: "Web Push: the deployment's VAPID keys and users' push devices",
        cql: include_str!("../../cql/013_push.cql"),
        fill: None,
    },
];

/// The newest version this binary knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Splits CQL text into statements: `--` and `//` comments are dropped, `;` ends a statement
/// unless it is inside a single-quoted string (where `''` is an escaped quote).
pub fn split_statements(cql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut in_string = false;
    let mut chars = cql.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            current.push(c);
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    current.push('\'');
                    chars.next();
                } else {
                    in_string = false;
                }
            }
            continue;
        }
        match c {
            '\'' => {
                in_string = true;
                current.push(c);
            }
            '-' | '/' if chars.peek() == Some(&c) => {
                // A comment runs to the end of the line.
                for next in chars.by_ref() {
                    if next == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            ';' => {
                let statement = current.trim();
                if !statement.is_empty() {
                    statements.push(statement.to_owned());
                }
                current.clear();
            }
            _ => current.push(c),
        }
    }
    let statement = current.trim();
    if !statement.is_empty() {
        statements.push(statement.to_owned());
    }
    statements
}

/// Creates the keyspace and `schema_version` if needed and applies every pending migration.
/// Returns the schema version the keyspace is at afterwards.
pub async fn migrate(
    session: &Session,
    keyspace: &str,
    replication: &str,
    await_agreement: bool,
) -> StoreResult<i32> {
    let ddl = |cql: String| async move { schema_change(session, cql).await };
    ddl(format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}"
    ))
    .await?;
    ddl(format!(
        "CREATE TABLE IF NOT EXISTS {keyspace}.schema_version \
         (version int PRIMARY KEY, description text, applied_at timestamp)"
    ))
    .await?;
    agree(session, await_agreement).await?;

    let select = session
        .prepare(format!("SELECT version FROM {keyspace}.schema_version"))
        .await
        .map_err(|e| driver_error("prepare schema_version read", e))?;
    let rows = session
        .execute_unpaged(&select, ())
        .await
        .map_err(|e| driver_error("read schema_version", e))?
        .into_rows_result()
        .map_err(|e| StoreError::Corrupt(format!("schema_version: {e}")))?;
    let mut applied = Vec::new();
    for row in rows
        .rows::<(i32,)>()
        .map_err(|e| StoreError::Corrupt(format!("schema_version: {e}")))?
    {
        applied.push(
            row.map_err(|e| StoreError::Corrupt(format!("schema_version: {e}")))?
                .0,
        );
    }
    let current = applied.iter().copied().max().unwrap_or(0);
    if current > latest_version() {
        return Err(StoreError::Corrupt(format!(
            "keyspace {keyspace} is at schema version {current}, newer than the {} this \
             binary supports",
            latest_version()
        )));
    }

    let record = session
        .prepare(format!(
            "INSERT INTO {keyspace}.schema_version (version, description, applied_at) \
             VALUES (?, ?, ?)"
        ))
        .await
        .map_err(|e| driver_error("prepare schema_version write", e))?;
    // The migration files name tables without their keyspace.
    session
        .use_keyspace(keyspace, false)
        .await
        .map_err(|e| driver_error("use keyspace", e))?;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tracing::info!(
            version = migration.version,
            keyspace,
            "applying CQL schema version"
        );
        for statement in split_statements(migration.cql) {
            match ddl(statement.clone()).await {
                // `ALTER TABLE … ADD` has no `IF NOT EXISTS`: a column a previous, interrupted
                // run already added is success.
                Err(e) if adds_column(&statement) && e.to_string().contains("conflicts with") => {
                    tracing::info!(%statement, "column already present");
                }
                other => other?,
            }
        }
        agree(session, await_agreement).await?;
        if let Some(fill) = migration.fill {
            run_fill(session, fill).await?;
        }
        let now: CqlTimestamp = to_cql_time(voiceflow_wire::ids::now_ms());
        session
            .execute_unpaged(&record, (migration.version, migration.description, now))
            .await
            .map_err(|e| driver_error("record schema version", e))?;
    }
    Ok(latest_version().max(current))
}

/// Whether `statement` adds a column (`ALTER TABLE t ADD c type`).
fn adds_column(statement: &str) -> bool {
    let upper = statement.to_ascii_uppercase();
    upper.starts_with("ALTER TABLE") && upper.contains(" ADD ")
}

/// Runs one (idempotent) schema statement. Schema changes are slower than data requests,
/// so they get [`DDL_TIMEOUT`] instead of the configured request timeout.
pub(crate) async fn schema_change(session: &Session, cql: String) -> StoreResult<()> {
    let mut statement = Statement::new(cql);
    statement.set_request_timeout(Some(DDL_TIMEOUT));
    statement.set_is_idempotent(true);
    session
        .query_unpaged(statement, ())
        .await
        .map(|_| ())
        .map_err(|e| driver_error("schema change", e))
}

/// Waits for every node to agree on the schema, when asked to.
async fn agree(session: &Session, wanted: bool) -> StoreResult<()> {
    if wanted {
        session
            .await_schema_agreement()
            .await
            .map_err(|e| StoreError::Unavailable(format!("schema agreement: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_strings_and_drops_comments() {
        let cql = "-- header; with a semicolon\nCREATE TABLE a (x int PRIMARY KEY); // c;\n\
                   INSERT INTO a (x, s) VALUES (1, 'it''s; fine');\n\n  ;\nSELECT 1 -- tail";
        assert_eq!(
            split_statements(cql),
            vec![
                "CREATE TABLE a (x int PRIMARY KEY)".to_owned(),
                "INSERT INTO a (x, s) VALUES (1, 'it''s; fine')".to_owned(),
                "SELECT 1".to_owned(),
            ]
        );
    }

    #[test]
    fn the_initial_schema_has_every_table_and_no_keyspace_statement() {
        let statements = split_statements(MIGRATIONS[0].cql);
        let tables: Vec<&str> = statements
            .iter()
            .filter_map(|s| s.strip_prefix("CREATE TABLE IF NOT EXISTS "))
            .filter_map(|s| s.split_whitespace().next())
            .collect();
        for table in [
            "users",
            "users_by_email",
            "users_by_username",
            "rooms",
            "rooms_by_code",
            "public_rooms",
            "members_by_room",
            "rooms_by_user",
            "messages",
            "message_buckets",
            "messages_by_id",
            "message_nonces",
            "refresh_tokens",
            "refresh_tokens_by_family",
        ] {
            assert!(tables.contains(&table), "{table} missing from {tables:?}");
        }
        assert_eq!(
            tables.len(),
            statements.len(),
            "only CREATE TABLE statements"
        );
        assert_eq!(latest_version(), 13);
    }

    #[test]
    fn migration_3_creates_the_file_tables() {
        let files = MIGRATIONS
            .iter()
            .find(|m| m.version == 3)
            .expect("migration 3");
        let statements = split_statements(files.cql);
        assert_eq!(statements.len(), 2);
        assert!(statements[0].starts_with("CREATE TABLE IF NOT EXISTS files "));
        assert!(statements[1].starts_with("CREATE TABLE IF NOT EXISTS file_chunks "));
    }
}
