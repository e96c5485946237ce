//! Unit tests of the limits: buckets, verdicts and addresses.

use super::*;

#[test]
fn the_client_address_comes_from_trusted_proxies_only() {
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
    let fwd = Some("6.6.6.6, 203.0.113.7, 10.0.0.2");
    assert_eq!(client_ip(ip("10.0.0.1"), fwd, &proxies), ip("203.0.113.7"));
    assert_eq!(client_ip(ip("192.0.2.9"), fwd, &proxies), ip("192.0.2.9"));
    assert_eq!(client_ip(ip("10.0.0.1"), None, &proxies), ip("10.0.0.1"));
    assert_eq!(
        client_ip(ip("10.0.0.1"), Some("junk"), &proxies),
        ip("10.0.0.1")
    );
    assert_eq!(client_ip(ip("10.0.0.1"), fwd, &[]), ip("10.0.0.1"));
}

#[test]
fn nesting_is_counted_outside_strings_only() {
    assert!(!nesting_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
    assert!(nesting_exceeds(br#"{"a":[1,{"b":[2]}]}"#, 3));
    // Brackets in strings, escaped quotes included, do not nest.
    assert!(!nesting_exceeds(br#"{"a":"[[[[{{{{","b":"\"[[[[\\"}"#, 1));
    assert!(nesting_exceeds(br#"{"a":"\\",  "b":[[1]]}"#, 2));
    let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
    assert!(nesting_exceeds(deep.as_bytes(), 32));
    assert!(!nesting_exceeds(deep.as_bytes(), 33));
    // Unbalanced closers never go below zero.
    assert!(!nesting_exceeds(b"]]]]]]]][[", 2));
}

fn config(extra: &str) -> Config {
    Config::from_toml(extra).expect("config")
}

#[test]
fn a_connection_bucket_refuses_then_closes_a_flood() {
    let limits = Limits::new(&config(
        "[limits]\nconnection_events = 4\nconnection_close_factor = 2\n",
    ));
    let mut gate = limits.connection();
    let ping = r#"{"type":"ping","id":1}"#;
    for _ in 0..4 {
        assert!(matches!(
            gate.check_text(&limits, Snowflake(1), ping),
            Verdict::Forward(_)
        ));
    }
    for _ in 4..8 {
        match gate.check_text(&limits, Snowflake(1), ping) {
            Verdict::Refuse(f) => {
                let v: serde_json::Value = serde_json::from_str(f.as_str()).expect("json");
                assert_eq!(v["error"]["code"], "RATE_LIMITED");
                assert_eq!(v["id"], 1);
                assert!(v["error"]["details"]["retryAfterMs"].as_u64() > Some(0));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    match gate.check_text(&limits, Snowflake(1), ping) {
        Verdict::Close(_, reason) => assert_eq!(reason.code, CLOSE_RATE_LIMITED),
        other => panic!("expected a close, got {other:?}"),
    }
}

#[test]
fn messages_are_limited_per_user_and_bad_frames_count_within_a_minute() {
    let limits = Limits::new(&config(
        "max_invalid_frames = 3\n[limits]\nmessages_per_sec = 1\nmessages_burst = 2\n",
    ));
    let send = r#"{"type":"message:send","id":9,"data":{"roomId":"1","content":"hi"}}"#;
    let mut a = limits.connection();
    let mut b = limits.connection();
    assert!(matches!(
        a.check_text(&limits, Snowflake(1), send),
        Verdict::Forward(_)
    ));
    assert!(matches!(
        b.check_text(&limits, Snowflake(1), send),
        Verdict::Forward(_)
    ));
    assert!(matches!(
        a.check_text(&limits, Snowflake(1), send),
        Verdict::Refuse(_)
    ));
    assert!(matches!(
        b.check_text(&limits, Snowflake(2), send),
        Verdict::Forward(_)
    ));
    // Other events are not messages.
    assert!(matches!(
        a.check_text(&limits, Snowflake(1), r#"{"type":"ping"}"#),
        Verdict::Forward(_)
    ));

    let deep = format!(
        r#"{{"type":"ping","id":4,"data":{}1{}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    match a.check_text(&limits, Snowflake(1), &deep) {
        Verdict::Refuse(f) => {
            assert!(f.as_str().contains("nested too deeply"), "{}", f.as_str())
        }
        other => panic!("{other:?}"),
    }
    // A valid frame between them does not wipe the count.
    assert!(matches!(
        a.check_text(&limits, Snowflake(1), r#"{"type":"ping","id":5}"#),
        Verdict::Forward(_)
    ));
    assert!(matches!(
        a.check_text(&limits, Snowflake(1), &deep),
        Verdict::Refuse(_)
    ));
    match a.check_text(&limits, Snowflake(1), &deep) {
        Verdict::Close(_, reason) => assert_eq!(reason.code, 4002),
        other => panic!("{other:?}"),
    }
}

fn refusal_message(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Refuse(f) => {
            let v: serde_json::Value = serde_json::from_str(f.as_str()).expect("json");
            assert_eq!(v["error"]["code"], "RATE_LIMITED", "{v}");
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_user_bucket_spans_connections_and_outlives_them() {
    let limits = Limits::new(&config(
        "[limits]\nconnection_events = 100\nuser_events = 3\n",
    ));
    let ping = r#"{"type":"ping","id":1}"#;
    let mut gates = [limits.connection(), limits.connection()];
    for i in [0, 1, 0] {
        assert!(matches!(
            gates[i].check_text(&limits, Snowflake(1), ping),
            Verdict::Forward(_)
        ));
    }
    let refused = gates[1].check_text(&limits, Snowflake(1), ping);
    assert!(refusal_message(&refused).contains("from this user"));
    drop(gates);
    // A new connection (a reconnect) finds the bucket as it was.
    let mut c = limits.connection();
    let refused = c.check_text(&limits, Snowflake(1), ping);
    assert!(refusal_message(&refused).contains("from this user"));
    assert!(matches!(
        c.check_binary(&limits, Snowflake(1)),
        Verdict::Refuse(_)
    ));
    // Another user has their own.
    assert!(matches!(
        c.check_text(&limits, Snowflake(2), ping),
        Verdict::Forward(_)
    ));
}

#[test]
fn edits_deletions_and_reactions_draw_on_the_users_action_bucket() {
    let limits = Limits::new(&config(
        "[limits]\nactions_per_sec = 1\nactions_burst = 3\n",
    ));
    // A payload every one of these events takes (the gate parses it, after the buckets).
    let frame = |event: &str| {
        format!(
            r#"{{"type":"{event}","id":3,"data":{{"roomId":"1","messageId":"2","content":"x","emoji":"+"}}}}"#
        )
    };
    let mut gates = [limits.connection(), limits.connection()];
    for (i, event) in [
        (0, "message:update"),
        (1, "reaction:add"),
        (0, "message:delete"),
    ] {
        assert!(matches!(
            gates[i].check_text(&limits, Snowflake(1), &frame(event)),
            Verdict::Forward(_)
        ));
    }
    let [mut a, mut b] = gates;
    let refused = b.check_text(&limits, Snowflake(1), &frame("reaction:remove"));
    assert!(refusal_message(&refused).contains("edits, deletions and reactions"));
    assert!(limits.action(Snowflake(1)).is_err(), "REST shares it");
    // Other events, messages included, have their own budgets.
    for event in ["ping", "message:send", "message:read", "typing:start"] {
        assert!(matches!(
            a.check_text(&limits, Snowflake(1), &frame(event)),
            Verdict::Forward(_)
        ));
    }
}

#[test]
fn buckets_of_idle_users_are_forgotten() {
    // A bucket refilled within a microsecond: every key but the newest few is idle (its
    // bucket full again) by the time a sweep runs.
    let keyed = Keyed::new(Quota::per_second(nonzero(1_000_000)));
    for n in 0..SWEEP_EVERY {
        keyed.check(&Snowflake(n)).expect("a fresh key");
    }
    assert!(
        keyed.len() < (SWEEP_EVERY / 2) as usize,
        "{} keys remembered after {SWEEP_EVERY} checks",
        keyed.len()
    );
}

#[test]
fn rate_limits_can_be_turned_off() {
    let limits = Limits::new(&config("[limits]\nrate_limits = false\n"));
    let mut gate = limits.connection();
    for _ in 0..1000 {
        assert!(matches!(
            gate.check_text(
                &limits,
                Snowflake(1),
                r#"{"type":"message:send","data":{"roomId":"1","content":"hi"}}"#
            ),
            Verdict::Forward(_)
        ));
        limits.login(None, None).expect("no login limit");
        limits.action(Snowflake(1)).expect("no action limit");
    }
    // Nor a cap on connections per user (load generators hold hundreds per user).
    let slots: Vec<_> = (0..100)
        .map(|_| limits.open_connection(Snowflake(1)).expect("no cap"))
        .collect();
    assert_eq!(slots.len(), 100);
}

#[test]
fn retry_after_rounds_up() {
    let r = RateLimited {
        retry_after: Duration::from_micros(1500),
    };
    assert_eq!(r.retry_after_ms(), 2);
    let response = r.response("logins");
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
}
