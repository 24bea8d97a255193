use std::time::Duration;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, SseStream, TestApp};

const WAIT: Duration = Duration::from_secs(10);

both_backends!(
    live_events_reach_every_stream,
    last_event_id_replays_missed_events,
    a_stalled_reader_does_not_hold_up_others
);

async fn live_events_reach_every_stream(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("kim", false).await;
    let mut phone = SseStream::open(&app.url("/events"), &token, None).await;
    let mut laptop = SseStream::open(&app.url("/events"), &token, None).await;
    let note = app.post_note(&token, "live!").await;
    for stream in [&mut phone, &mut laptop] {
        let event = stream.next(WAIT).await.expect("item.created");
        assert_eq!(event.event, "item.created");
        let data: Value = serde_json::from_str(&event.data).expect("json");
        assert_eq!(data["id"], note["id"]);
        assert_eq!(data["text"], "live!");
        assert!(event.id.is_some());
    }
    reqwest::Client::new()
        .delete(app.url(&format!("/api/items/{}", note["id"].as_str().expect("id"))))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    let event = phone.next(WAIT).await.expect("item.deleted");
    assert_eq!(event.event, "item.deleted");
    assert!(event.data.contains(note["id"].as_str().expect("id")));
    // Without a sign-in there is no stream.
    assert_eq!(
        reqwest::get(app.url("/events"))
            .await
            .expect("events")
            .status(),
        401
    );
    app.stop().await;
}

async fn last_event_id_replays_missed_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("lee", false).await;
    let mut stream = SseStream::open(&app.url("/events"), &token, None).await;
    app.post_note(&token, "first").await;
    let first = stream.next(WAIT).await.expect("first");
    drop(stream);
    // Offline: two notes go by.
    app.post_note(&token, "second").await;
    app.post_note(&token, "third").await;
    let mut stream = SseStream::open(&app.url("/events"), &token, first.id.as_deref()).await;
    let texts: Vec<String> = [
        stream.next(WAIT).await.expect("second"),
        stream.next(WAIT).await.expect("third"),
    ]
    .iter()
    .map(|e| {
        serde_json::from_str::<Value>(&e.data).expect("json")["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    })
    .collect();
    assert_eq!(texts, ["second", "third"]);
    // A page passes the last event it rendered as ?after= on its first connection.
    let after = first.id.as_deref().expect("id");
    let mut from_page =
        SseStream::open(&app.url(&format!("/events?after={after}")), &token, None).await;
    assert!(
        from_page
            .next(WAIT)
            .await
            .expect("second")
            .data
            .contains("second")
    );
    // And live events continue after the replay, without repeats.
    app.post_note(&token, "fourth").await;
    let next = stream.next(WAIT).await.expect("fourth");
    assert!(next.data.contains("fourth"), "{next:?}");
    app.stop().await;
}

async fn a_stalled_reader_does_not_hold_up_others(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("max", false).await;
    // This client never reads its stream.
    let _stalled = SseStream::open(&app.url("/events"), &token, None).await;
    let mut active = SseStream::open(&app.url("/events"), &token, None).await;
    // Big notes fill the stalled connection's socket buffers quickly.
    let big = "x".repeat(60_000);
    for i in 0..40 {
        app.post_note(&token, &format!("{i} {big}")).await;
        let event = active
            .next(WAIT)
            .await
            .expect("the active client keeps receiving");
        assert!(event.data.contains(&format!("\"{i} x")), "event {i}");
    }
    app.stop().await;
}
