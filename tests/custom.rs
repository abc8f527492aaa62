//! Custom handlers (`handler: custom`): the user's code lives in files svcgen writes once and
//! never touches again.
//!
//! * 100 random edits of the spec (entity fields, generated routes, a custom route coming and
//!   going, a custom route's optional input; custom routes, a consumer and a job stay), each regenerated over the same tree and checked
//!   with `cargo check`: not one line of the user's code is lost, and every cycle builds;
//! * when what a function receives or answers changes, `svcgen generate` names the file and
//!   the change, and the build fails in that file;
//! * the code runs in the request's transaction: its writes and its event take effect when it
//!   answers, and none of them when it fails; a custom consumer receives the event and writes
//!   in the inbox's transaction; a custom job runs on its schedule; a custom RPC answers the
//!   route it backs with the caller's identity (embedded, SQLite).

mod harness;
mod support;

use harness::{Api, Running, System, register, runtime};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the random edits turn on and off.
#[derive(Debug, Clone, Default)]
struct Edits {
    /// Optional fields `extra_<n>` of `note`.
    extra_fields: [bool; 4],
    /// The generated `DELETE /notes/{id}`.
    delete_route: bool,
    /// The custom `POST /notes/{id}/archive`.
    archive: bool,
    /// An optional `message` in `share_note`'s input.
    message: bool,
}

fn spec(name: &str, edits: &Edits) -> String {
    let mut fields = String::new();
    let mut removed = Vec::new();
    for (n, on) in edits.extra_fields.iter().enumerate() {
        if *on {
            fields += &format!("          extra_{n}: \"string?\"\n");
        } else {
            removed.push(format!("extra_{n}"));
        }
    }
    // A field turned off is dropped with its column (a name the table never had is ignored).
    fields += &format!("        removed: [{}]\n", removed.join(", "));
    let message = if edits.message {
        ", message: \"string?\""
    } else {
        ""
    };
    let mut routes = String::new();
    if edits.delete_route {
        routes += "      DELETE /notes/{id}: { delete: note }\n";
    }
    if edits.archive {
        routes += "      POST /notes/{id}/archive:\n        handler: custom\n        name: archive_note\n        output: { archived: string }\n";
    }
    format!(
        r#"system: {name}
auth: {{ service: accounts, roles: [user, admin] }}
stores:
  shelf_db: {{ engine: postgres }}
  accounts_db: {{ engine: postgres }}
events:
  note.shared:
    description: A note was shared with someone.
    fields: {{ note_id: uuid, email: email }}
  note.logged:
    description: A share was written down.
    fields: {{ note_id: uuid }}
services:
  accounts: {{ uses: auth, store: accounts_db }}
  shelf:
    store: shelf_db
    entities:
      note:
        owner: owner_id
        fields:
          title: string(1..200)
          shares: {{ type: int, default: 0 }}
{fields}      share_log:
        description: Who a note was shared with.
        fields: {{ note_id: uuid, email: email }}
    routes:
      POST /notes: {{ create: note }}
      GET /share-logs: {{ list: share_log, filter: [note_id] }}
      GET /notes/{{note_id}}/shares: {{ rpc: CountShares }}
      GET /notes/{{id}}: {{ get: note }}
      POST /notes/{{id}}/share:
        handler: custom
        name: share_note
        description: Shares a note with someone by e-mail.
        input: {{ email: email{message} }}
        output: {{ shares: int }}
        emit: [note.shared]
      GET /stats:
        handler: custom
        public: true
        input: {{ prefix: "string?" }}
        output: {{ notes: int }}
{routes}    on:
      note.shared:
        handler: custom
        emit: [note.logged]
    rpc:
      CountShares:
        description: How often a note was shared, and whether the caller owns it.
        idempotent: true
        handler: custom
        request: {{ note_id: uuid }}
        response: {{ shares: int, mine: bool }}
    jobs:
      tidy:
        description: Shouts the titles that ask for it.
        every: 1s
        handler: custom
"#
    )
}

/// The user's code, by file below the service's `src/custom/`.
const SHARE_NOTE: &str = r#"//! Sharing a note: one more share, and an event for whoever listens.

use super::prelude::*;

/// Counts one more share of the caller's note; refuses (and so undoes the count) for a blocked
/// domain.
pub async fn share_note(cx: &mut Cx<'_>, request: &ShareNoteRequest) -> ApiResult<ShareNoteOutput> {
    let changed = db::query("UPDATE note SET shares = shares + 1 WHERE id = $1 AND owner_id = $2")
        .bind(request.id)
        .bind(request.caller.user_id)
        .execute(&mut *cx.tx)
        .await?;
    if changed == 0 {
        return Err(ApiError::not_found("no note of yours has this id"));
    }
    if request.input.email.ends_with("@blocked.example") {
        return Err(ApiError::bad_request("that domain does not take shared notes"));
    }
    let row = db::query("SELECT shares FROM note WHERE id = $1")
        .bind(request.id)
        .fetch_optional(&mut *cx.tx)
        .await?
        .ok_or_else(|| ApiError::not_found("no note of yours has this id"))?;
    cx.emit(&events::NoteShared {
        note_id: request.id,
        email: request.input.email.clone(),
    })
    .await?;
    Ok(ShareNoteOutput {
        shares: row.get("shares")?,
    })
}
"#;

const GET_STATS: &str = r#"//! How many notes there are, by the start of their title.

use super::prelude::*;

/// Counts every note whose title starts with the prefix (all without one).
pub async fn get_stats(cx: &mut Cx<'_>, request: &GetStatsRequest) -> ApiResult<GetStatsOutput> {
    let prefix = request.input.prefix.clone().unwrap_or_default();
    let rows = db::query("SELECT title FROM note").fetch_all(&mut *cx.tx).await?;
    let notes = rows
        .iter()
        .filter(|row| row.get::<String>("title").is_ok_and(|t| t.starts_with(&prefix)))
        .count();
    Ok(GetStatsOutput {
        notes: i64::try_from(notes).unwrap_or(i64::MAX),
    })
}
"#;

const ARCHIVE_NOTE: &str = r#"//! Archiving: answers which note it was.

use super::prelude::*;

/// Answers the note's id.
pub async fn archive_note(_cx: &mut Cx<'_>, request: &ArchiveNoteRequest) -> ApiResult<ArchiveNoteOutput> {
    Ok(ArchiveNoteOutput {
        archived: request.id.to_string(),
    })
}
"#;

const ON_NOTE_SHARED: &str = r#"//! Every share is written down.

use super::prelude::*;

/// Writes the share into `share_log`, and says so.
pub async fn on_note_shared(cx: &mut Cx<'_>, event: &events::NoteShared) -> ApiResult<()> {
    let now = db::now();
    db::query(
        "INSERT INTO share_log (id, note_id, email, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, 1)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(event.note_id)
    .bind(event.email.clone())
    .bind(now)
    .bind(now)
    .execute(&mut *cx.tx)
    .await?;
    cx.emit(&events::NoteLogged {
        note_id: event.note_id,
    })
    .await
}
"#;

const TIDY: &str = r#"//! Titles that start with `shout:` are written in capitals.

use super::prelude::*;

/// Upper-cases the titles that ask for it.
pub async fn tidy(cx: &mut Cx<'_>) -> ApiResult<()> {
    db::query("UPDATE note SET title = upper(title) WHERE title LIKE 'shout:%'")
        .execute(&mut *cx.tx)
        .await?;
    Ok(())
}
"#;

const COUNT_SHARES: &str = r#"//! How often a note was shared.

use super::prelude::*;

/// Reads the note's count of shares; says whether the caller owns it.
pub async fn count_shares(
    cx: &mut Cx<'_>,
    caller: Option<&Caller>,
    request: &proto::CountSharesRequest,
) -> ApiResult<proto::CountSharesResponse> {
    let id = uuid::Uuid::parse_str(&request.note_id)
        .map_err(|_| ApiError::bad_request("note_id is not a uuid"))?;
    let row = db::query("SELECT shares, owner_id FROM note WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *cx.tx)
        .await?
        .ok_or_else(|| ApiError::not_found("no such note"))?;
    let owner: uuid::Uuid = row.get("owner_id")?;
    Ok(proto::CountSharesResponse {
        shares: row.get("shares")?,
        mine: caller.is_some_and(|c| c.user_id == owner),
    })
}
"#;

/// Generates `edits` over the tree of `name` (as `svcgen generate` does); the notices about
/// custom handlers it prints.
fn generate(name: &str, edits: &Edits) -> (System, Vec<String>) {
    let out = System::out_dir(name);
    let history = svcgen::evolve::History::read(&out).expect("history");
    let options = svcgen::Options {
        spec_name: format!("{name}.yaml"),
        runtime_path: "../../../runtime".into(),
        history,
    };
    let (_, files) = svcgen::generate(&spec(name, edits), &options)
        .unwrap_or_else(|problems| panic!("{edits:?}: {problems:?}"));
    let notices = svcgen::write::custom_handler_notices(&out, &files);
    svcgen::write::write_tree(&out, &files).expect("written");
    (System::existing(&out, name), notices)
}

/// Writes the user's code for every handler file svcgen seeded and nobody wrote yet.
fn write_user_code(custom: &Path, written: &mut BTreeMap<PathBuf, String>) {
    for (file, code) in [
        ("share_note.rs", SHARE_NOTE),
        ("get_stats.rs", GET_STATS),
        ("archive_note.rs", ARCHIVE_NOTE),
        ("on_note_shared.rs", ON_NOTE_SHARED),
        ("tidy.rs", TIDY),
        ("count_shares.rs", COUNT_SHARES),
    ] {
        let path = custom.join(file);
        if path.exists() && !written.contains_key(&path) {
            let seed = std::fs::read_to_string(&path).unwrap();
            assert!(!seed.contains("@generated"), "a seed is the user's: {seed}");
            std::fs::write(&path, code).unwrap();
            written.insert(path, code.to_owned());
        }
    }
}

/// `cargo check` of the whole workspace; its error output when it fails.
fn check(system: &System) -> Result<(), String> {
    let output = system
        .cargo(&["check", "--workspace", "--message-format", "short"])
        .output()
        .expect("cargo runs");
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A small deterministic generator (xorshift), so that a failing cycle can be replayed.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn a_hundred_spec_edits_lose_no_line_of_custom_code_and_every_cycle_builds() {
    let name = "custom_cycles";
    let out = System::out_dir(name);
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }
    let custom = out.join("services/shelf/src/custom");
    let mut edits = Edits::default();
    let mut written = BTreeMap::new();
    let (system, _) = generate(name, &edits);
    write_user_code(&custom, &mut written);
    check(&system).unwrap_or_else(|errors| panic!("the first generation: {errors}"));
    let mut random = Random(0x5eed_cafe_f00d_u64);
    for cycle in 1..=100 {
        match random.below(4) {
            0 => {
                let n = random.below(4) as usize;
                edits.extra_fields[n] = !edits.extra_fields[n];
            }
            1 => edits.delete_route = !edits.delete_route,
            2 => edits.archive = !edits.archive,
            _ => edits.message = !edits.message,
        }
        let (system, notices) = generate(name, &edits);
        write_user_code(&custom, &mut written);
        for (path, code) in &written {
            let now = std::fs::read_to_string(path).unwrap_or_else(|_| {
                panic!("cycle {cycle} ({edits:?}): {} is gone", path.display())
            });
            assert_eq!(
                &now,
                code,
                "cycle {cycle} ({edits:?}): {} changed",
                path.display()
            );
        }
        check(&system)
            .unwrap_or_else(|errors| panic!("cycle {cycle} ({edits:?}) does not build: {errors}"));
        if !edits.archive && written.keys().any(|p| p.ends_with("archive_note.rs")) {
            // Kept, and said so when its route went away.
            assert!(custom.join("archive_note.rs").exists());
        }
        for notice in &notices {
            assert!(
                notice.contains("share_note") || notice.contains("archive_note"),
                "cycle {cycle}: {notice}"
            );
        }
    }
    assert!(
        written.len() == 6,
        "every handler appeared in 100 cycles: {:?}",
        written.keys()
    );

    // A change of what the user's function answers: svcgen says so, and the build fails in
    // the user's file.
    let before = spec(name, &edits);
    let changed = before.replace(
        "output: { shares: int }",
        "output: { shares: int, total: int }",
    );
    assert_ne!(changed, before);
    let history = svcgen::evolve::History::read(&out).unwrap();
    let options = svcgen::Options {
        spec_name: format!("{name}.yaml"),
        runtime_path: "../../../runtime".into(),
        history,
    };
    let (_, files) = svcgen::generate(&changed, &options).unwrap();
    let notices = svcgen::write::custom_handler_notices(&out, &files);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].starts_with(
            "services/shelf/src/custom/share_note.rs: what `share_note` receives or answers changed"
        ),
        "{notices:?}"
    );
    assert!(
        notices[0].contains("output { shares: int, total: int }"),
        "{notices:?}"
    );
    svcgen::write::write_tree(&out, &files).unwrap();
    let errors = check(&System::existing(&out, name)).expect_err("the user's code no longer fits");
    assert!(
        errors.contains("services/shelf/src/custom/share_note.rs") && errors.contains("total"),
        "{errors}"
    );
}

#[test]
fn custom_code_runs_in_the_request_transaction() {
    let name = "custom_run";
    let out = System::out_dir(name);
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }
    let (_, _) = generate(name, &Edits::default());
    let mut written = BTreeMap::new();
    write_user_code(&out.join("services/shelf/src/custom"), &mut written);
    let system = System::existing(&out, name);
    let data = tempfile::tempdir().unwrap();
    let running = Running::embedded(&system, name, data.path());
    runtime().block_on(async {
        let api = Api::new(&running.url);
        let (_, token) = register(&api, "ada@example.com").await;
        let (_, other) = register(&api, "bob@example.com").await;
        let (status, note) = api
            .call(
                Method::POST,
                "/notes",
                Some(&token),
                Some(json!({ "title": "Rust" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{note}");
        let id = note["id"].as_str().unwrap();
        let share = format!("/notes/{id}/share");

        let (status, answer) = api
            .call(
                Method::POST,
                &share,
                Some(&token),
                Some(json!({ "email": "eve@example.com" })),
            )
            .await;
        assert_eq!((status, &answer), (StatusCode::OK, &json!({ "shares": 1 })));
        // The request is checked before the code runs.
        let (status, answer) = api
            .call(
                Method::POST,
                &share,
                Some(&token),
                Some(json!({ "email": "nope" })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let (status, _) = api
            .call(
                Method::POST,
                &share,
                None,
                Some(json!({ "email": "eve@example.com" })),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // An error of the code undoes its writes.
        let (status, answer) = api
            .call(
                Method::POST,
                &share,
                Some(&token),
                Some(json!({ "email": "x@blocked.example" })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        let (status, answer) = api
            .call(
                Method::POST,
                &share,
                Some(&other),
                Some(json!({ "email": "eve@example.com" })),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        let (_, note) = api
            .call(Method::GET, &format!("/notes/{id}"), Some(&token), None)
            .await;
        assert_eq!(note["shares"], 1, "{note}");

        // The consumer's code wrote the share down (the refused ones left nothing).
        let mut logged = serde_json::Value::Null;
        for _ in 0..100 {
            let (_, page) = api
                .call(
                    Method::GET,
                    &format!("/share-logs?note_id={id}"),
                    Some(&token),
                    None,
                )
                .await;
            logged = page["items"].clone();
            if logged.as_array().is_some_and(|items| !items.is_empty()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let items = logged.as_array().expect("a page of share logs");
        assert_eq!(items.len(), 1, "{logged}");
        assert_eq!(items[0]["email"], "eve@example.com");

        // An RPC's code answers the route it backs, with the caller it is called for.
        let shares_path = format!("/notes/{id}/shares");
        let (status, answer) = api
            .call(Method::GET, &shares_path, Some(&token), None)
            .await;
        assert_eq!(
            (status, &answer),
            (StatusCode::OK, &json!({ "shares": 1, "mine": true }))
        );
        let (_, answer) = api
            .call(Method::GET, &shares_path, Some(&other), None)
            .await;
        assert_eq!(answer, json!({ "shares": 1, "mine": false }));
        let unknown = "/notes/0190a6d2-0000-7000-8000-000000000000/shares";
        let (status, answer) = api.call(Method::GET, unknown, Some(&token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

        // The job's code runs on its schedule.
        let (_, loud) = api
            .call(
                Method::POST,
                "/notes",
                Some(&token),
                Some(json!({ "title": "shout: hello" })),
            )
            .await;
        let loud_path = format!("/notes/{}", loud["id"].as_str().unwrap());
        let mut title = String::new();
        for _ in 0..100 {
            let (_, note) = api.call(Method::GET, &loud_path, Some(&token), None).await;
            title = note["title"].as_str().unwrap_or_default().to_owned();
            if title == "SHOUT: HELLO" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(title, "SHOUT: HELLO");

        // A public route's code gets no caller and reads the query string.
        let (status, stats) = api.call(Method::GET, "/stats?prefix=Ru", None, None).await;
        assert_eq!((status, &stats), (StatusCode::OK, &json!({ "notes": 1 })));
        let (status, answer) = api.call(Method::GET, "/stats?other=1", None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    });
    running.stop();
}
