//! What the Hystrix stream holds for 1000 commands and 10 subscribers, and
//! that it does not grow while they read: measured with a global allocator
//! that keeps the bytes allocated and not yet freed
//! (`benches/support/alloc.rs`). The only test in its binary, so nothing
//! else allocates meanwhile.

#[path = "../benches/support/alloc.rs"]
mod alloc;

use http_body_util::BodyExt;
use rampart::registry::Registry;
use rampart::stream::HystrixStream;
use rampart::{BoxError, Command};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};

const COMMANDS: usize = 1000;
const SUBSCRIBERS: usize = 10;

#[tokio::test(start_paused = true)]
async fn a_thousand_commands_and_ten_subscribers_stay_within_a_bound() {
    let registry = Registry::new();
    let mut services = Vec::new();
    for n in 0..COMMANDS {
        let layer = Command::builder(format!("Command{n:04}"))
            .group(format!("Group{:02}", n % 50))
            .registry(&registry)
            .fallback_sync(|_| Ok("fallback"))
            .build()
            .unwrap();
        let mut svc = layer.layer(tower::service_fn(move |_: ()| async move {
            tokio::time::sleep(Duration::from_millis(1 + n as u64 % 7)).await;
            if n % 3 == 0 {
                Err::<&str, BoxError>("down".into())
            } else {
                Ok("ok")
            }
        }));
        for _ in 0..5 {
            svc.ready().await.unwrap().call(()).await.unwrap();
        }
        services.push(svc);
    }
    let stream = HystrixStream::builder()
        .registry(&registry)
        .max_subscribers(SUBSCRIBERS)
        .build()
        .unwrap();
    let before = alloc::live_bytes();

    let mut bodies = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut stream = stream.clone();
        let request = http::Request::get("/hystrix.stream").body(()).unwrap();
        let response = ServiceExt::<http::Request<()>>::ready(&mut stream)
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        bodies.push(response.into_body());
    }
    let mut frame_len = 0;
    let read = |bodies: &mut Vec<rampart::stream::ResponseBody>| {
        let bodies = std::mem::take(bodies);
        async move {
            let mut back = Vec::new();
            for mut body in bodies {
                let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
                back.push((body, frame.len()));
            }
            back
        }
    };
    // 11 s of frames: longer than the 10 s window the stream keeps samples for.
    for _ in 0..22 {
        let back = read(&mut bodies).await;
        frame_len = back[0].1;
        bodies = back.into_iter().map(|(b, _)| b).collect();
    }
    let settled = alloc::live_bytes();
    for _ in 0..10 {
        let back = read(&mut bodies).await;
        bodies = back.into_iter().map(|(b, _)| b).collect();
    }
    let later = alloc::live_bytes();

    let held = settled.saturating_sub(before);
    let grown = later as i64 - settled as i64;
    println!(
        "{COMMANDS} commands, {SUBSCRIBERS} subscribers: frame {frame_len} bytes \
         ({} per command), stream holds {held} bytes, \
         {grown:+} bytes over 10 more intervals",
        frame_len / COMMANDS
    );
    // One frame (shared, never copied per subscriber) plus the one being
    // built, and the stream's per-component samples.
    assert!(
        held <= 2 * frame_len + 1024 * 1024,
        "the stream holds {held} bytes for a {frame_len}-byte frame"
    );
    assert!(
        grown.unsigned_abs() as usize <= frame_len / 10,
        "memory moved by {grown} bytes while subscribers read"
    );
    drop(services);
}
