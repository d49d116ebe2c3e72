//! A Turbine-style aggregator over several instances' hystrix streams.
//!
//! ```text
//! cargo run --example turbine
//! cargo run --example turbine -- http://10.0.0.1:9000/hystrix.stream http://10.0.0.2:9000/hystrix.stream
//! ```
//!
//! With no arguments it starts three in-process "instances", each with a
//! registry of its own (as three processes would have), two commands
//! called 20 times a second, and its own `HystrixStream` on its own port
//! of `127.0.0.1`:
//!
//! - `GetUser` answers on every instance;
//! - `GetRatings` fails on `instance-2` only: its breaker there trips
//!   within a second or two and its calls are served by the fallback,
//!   while the other two instances' breakers stay closed.
//!
//! With arguments, it starts no instances and aggregates the stream URLs
//! given instead. Either way the aggregate is the cluster `default`, so
//! the turbine URL printed needs no `?cluster=`: paste it into the Hystrix
//! dashboard (or read it with `curl -N`).
//!
//! Every 2 s it prints what its own subscription to the turbine reads, per
//! command: requests summed over the hosts, the hosts reporting, and the
//! circuit: `false`, or `{"false":2,"true":1}` when hosts differ (here
//! `GetRatings` once `instance-2`'s breaker is open).
//!
//! It stops after `RAMPART_TURBINE_SECONDS` seconds (default 60).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rampart::registry::Registry;
use rampart::stream::turbine::Turbine;
use rampart::stream::{HystrixStream, Server, Serving};
use rampart::{BoxError, Command};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

const INSTANCES: usize = 3;
const CALLS_PER_SECOND: u64 = 20;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let seconds: u64 = match std::env::var("RAMPART_TURBINE_SECONDS") {
        Ok(s) => s
            .parse()
            .map_err(|_| format!("RAMPART_TURBINE_SECONDS must be whole seconds, got {s:?}"))?,
        Err(_) => 60,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();

    // Kept alive for the run: dropping a Serving stops that instance.
    let mut instances: Vec<Serving> = Vec::new();
    let urls = if args.is_empty() {
        for i in 1..=INSTANCES {
            let serving = start_instance(i).await?;
            println!("instance-{i}: {}", serving.url("/hystrix.stream"));
            instances.push(serving);
        }
        instances.iter().map(|s| s.url("/hystrix.stream")).collect()
    } else {
        args
    };

    let turbine = Turbine::builder()
        .cluster("default", urls)
        .delay(Duration::from_secs(1))
        .build()?;
    let serving = Server::new(turbine).start().await?;
    let url = serving.url("/turbine.stream");
    println!("turbine:    {url}");
    println!(
        "page:       {}",
        serving.url("/dashboard?stream=turbine.stream%3Fcluster%3Ddefault")
    );
    println!("running for {seconds} s (RAMPART_TURBINE_SECONDS)\n");

    let watch = tokio::spawn(print_aggregate(format!("{url}?delay=2000")));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    watch.abort();
    drop(instances);
    Ok(())
}

/// One instance: a registry of its own, two commands under load, and its
/// stream on a port of its own.
async fn start_instance(index: usize) -> Result<Serving, BoxError> {
    let registry = Registry::new();
    let users = Command::builder("GetUser")
        .group("users")
        .timeout(Duration::from_millis(200))
        .registry(&registry)
        .build()?;
    let ratings = Command::builder("GetRatings")
        .group("ratings")
        .timeout(Duration::from_millis(200))
        .registry(&registry)
        .fallback_sync(|_cause| Ok("no ratings"))
        .build()?;
    let ratings_fail = index == 2;

    let mut users = ServiceBuilder::new()
        .layer(users)
        .service(service_fn(|_: ()| async { Ok::<_, BoxError>("user") }));
    let mut ratings =
        ServiceBuilder::new()
            .layer(ratings)
            .service(service_fn(move |_: ()| async move {
                if ratings_fail {
                    Err::<&str, BoxError>("ratings: connection refused".into())
                } else {
                    Ok("4.5 stars")
                }
            }));
    // The services own the commands (the registry only points at them):
    // they live as long as this task, which runs for the whole example.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / CALLS_PER_SECOND));
        loop {
            tick.tick().await;
            // Errors are what the dashboards show; nothing to do here.
            if let Ok(users) = users.ready().await {
                let _ = users.call(()).await;
            }
            if let Ok(ratings) = ratings.ready().await {
                let _ = ratings.call(()).await;
            }
        }
    });

    let stream = HystrixStream::builder().registry(&registry).build()?;
    Ok(Server::new(stream).start().await?)
}

/// Subscribes to the turbine and prints, per command, what it reads.
async fn print_aggregate(url: String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = match http::Request::get(url.as_str()).body(Empty::new()) {
        Ok(request) => request,
        Err(e) => return eprintln!("bad turbine URL {url}: {e}"),
    };
    let mut body = match client.request(request).await {
        Ok(response) if response.status().is_success() => response.into_body(),
        Ok(response) => return eprintln!("the turbine answered {}", response.status()),
        Err(e) => return eprintln!("cannot reach the turbine: {e}"),
    };
    let mut buffer = String::new();
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    let started = tokio::time::Instant::now();
    while let Some(Ok(frame)) = body.frame().await {
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buffer.push_str(&String::from_utf8_lossy(data));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(json) = event.trim_end().strip_prefix("data: ") else {
                continue; // a ping
            };
            let Ok(object) = serde_json::from_str::<Value>(json) else {
                continue;
            };
            if object["type"] != "HystrixCommand" {
                continue;
            }
            let name = object["name"].as_str().unwrap_or("?").to_owned();
            if object.get("deleteData").is_some() {
                latest.remove(&name);
            } else {
                latest.insert(name, object);
            }
        }
        let mut line = format!("{:>3} s", started.elapsed().as_secs());
        if latest.is_empty() {
            line.push_str(" | nothing yet: the turbine is reaching its instances");
        }
        for (name, o) in &latest {
            line.push_str(&format!(
                " | {name}: {} requests, {} hosts, open: {}",
                o["requestCount"], o["reportingHosts"], o["isCircuitBreakerOpen"]
            ));
        }
        println!("{line}");
    }
}
