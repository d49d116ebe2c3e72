//! A fleet on etcd: instances registered with leases (Eureka's semantics),
//! clients balancing over what they discover, and one key written to etcd
//! forcing a breaker open in every client, then a timeout changed live.
//!
//! ```text
//! etcd --data-dir "$(mktemp -d)" \
//!   --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
//!   --listen-peer-urls http://127.0.0.1:2380 &
//! cargo run --example fleet --features etcd
//! ```
//!
//! `RAMPART_ETCD` names another etcd (default `http://127.0.0.1:2379`).
//! Without one it says how to start it and exits with status 2. Exits 1 if
//! what it shows does not happen.
//!
//! The "processes" are three ratings servers (hyper, on 127.0.0.1) and two
//! clients, each client with a registry of its own, as separate processes
//! would have: nothing is shared between them but etcd.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::balance::rule::RoundRobin;
use rampart::balance::Balance;
use rampart::circuit_breaker::{CircuitBreakerHandle, State};
use rampart::config::{EtcdSource, EtcdWatch};
use rampart::discovery::{Discovery, Registration, Status};
use rampart::registry::Registry;
use rampart::{BoxError, Command};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let endpoint =
        std::env::var("RAMPART_ETCD").unwrap_or_else(|_| "http://127.0.0.1:2379".to_owned());
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2));
    let reachable = match etcd_client::Client::connect([&endpoint], Some(options)).await {
        Ok(mut client) => client
            .status()
            .await
            .map(|_| client)
            .map_err(BoxError::from),
        Err(e) => Err(e.into()),
    };
    let etcd = match reachable {
        Ok(client) => client,
        Err(e) => {
            eprintln!("No etcd answers at {endpoint} ({e}). Start one:");
            eprintln!("  etcd --data-dir \"$(mktemp -d)\" \\");
            eprintln!("    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \\");
            eprintln!("    --listen-peer-urls http://127.0.0.1:2380 &");
            eprintln!(
                "(Debian: apt-get install etcd-server) or set RAMPART_ETCD to one that runs."
            );
            std::process::exit(2);
        }
    };
    // A prefix of this run's own, so runs never see each other's keys.
    let root = format!("/rampart-fleet-example-{}", std::process::id());
    let services = format!("{root}/services");
    let properties = format!("{root}/shop");
    println!("etcd at {endpoint}; keys under {root}");

    // ===== three ratings instances, registered with leases =====
    let mut registrations = Vec::new();
    for id in ["r1", "r2", "r3"] {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        tokio::spawn(serve(listener, id));
        let registration = Registration::builder("ratings", id, address.clone())
            .prefix(&services)
            .ttl(Duration::from_secs(10))
            .renew_every(Duration::from_secs(3))
            .start(etcd.clone())?;
        tokio::time::timeout(WAIT, registration.handle().registered())
            .await?
            .ok_or("the registration stopped")?;
        println!("instance {id} at {address}: registered (lease 10 s, renewed every 3 s)");
        registrations.push(registration);
    }

    // ===== two clients, each on its own registry, as two processes =====
    let mut clients = Vec::new();
    for name in ["client-a", "client-b"] {
        clients.push(Fleet::client(name, &etcd, &services, &properties).await?);
    }

    let mut failures = Vec::new();
    let mut check = |ok: bool, what: &str| {
        println!("  {} {what}", if ok { "ok:" } else { "FAILED:" });
        if !ok {
            failures.push(what.to_owned());
        }
    };

    println!("\n1. Each client calls the instances it discovered:");
    for client in &mut clients {
        let seen = client.calls(6).await;
        println!("  {}: {seen:?}", client.name);
        check(
            seen.len() == 3,
            &format!("{} reaches all three instances", client.name),
        );
    }

    println!("\n2. One key, {properties}/Ratings/force_open = true:");
    let mut kv = etcd.clone();
    // Timed from before the write: the watchers may hear of it before the
    // writer hears etcd's answer.
    let written = Instant::now();
    kv.put(format!("{properties}/Ratings/force_open"), "true", None)
        .await?;
    for client in &clients {
        client
            .until(|c| c.breaker.state() == State::ForcedOpen)
            .await;
        println!(
            "  {}: breaker {:?} after {:?}",
            client.name,
            client.breaker.state(),
            written.elapsed()
        );
    }
    check(
        written.elapsed() < Duration::from_secs(1),
        "every client forced open within 1 s",
    );
    for client in &mut clients {
        let seen = client.calls(3).await;
        println!("  {}: {seen:?}", client.name);
        check(
            seen.keys().all(|k| k == "fallback"),
            &format!("{} serves its fallback", client.name),
        );
    }

    println!("\n3. A timeout changed live, {properties}/Ratings/timeout = 250ms:");
    kv.put(format!("{properties}/Ratings/timeout"), "250ms", None)
        .await?;
    for client in &clients {
        client
            .until(|c| (c.timeout)() == Duration::from_millis(250))
            .await;
        println!("  {}: timeout {:?}", client.name, (client.timeout)());
    }

    println!("\n4. A bad value, force_open = perhaps: reported, nothing changes:");
    kv.put(format!("{properties}/Ratings/force_open"), "perhaps", None)
        .await?;
    for client in &clients {
        client.until(|c| !c.watch.errors().is_empty()).await;
        println!("  {}: {}", client.name, client.watch.errors()[0]);
        check(
            client.breaker.state() == State::ForcedOpen,
            &format!("{} still forced open", client.name),
        );
    }

    println!("\n5. The keys deleted: each client back to its built values:");
    kv.delete(
        format!("{properties}/Ratings/"),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await?;
    for client in &mut clients {
        client.until(|c| c.breaker.state() == State::Closed).await;
        let seen = client.calls(6).await;
        println!(
            "  {}: breaker {:?}, timeout {:?}, {seen:?}",
            client.name,
            client.breaker.state(),
            (client.timeout)()
        );
        check(
            seen.len() == 3,
            &format!("{} served by the instances again", client.name),
        );
    }

    println!("\n6. Instance r2 marks itself DOWN: clients stop calling it:");
    registrations[1].set_status(Status::Down);
    for client in &mut clients {
        client.until(|c| c.discovery.current().len() == 2).await;
        let seen = client.calls(6).await;
        println!("  {}: {seen:?}", client.name);
        check(
            !seen.contains_key("r2"),
            &format!("{} no longer calls r2", client.name),
        );
    }

    for registration in registrations {
        registration.shutdown().await?;
    }
    kv.delete(
        root.clone(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await?;
    if failures.is_empty() {
        println!("\nEverything above happened as described.");
        Ok(())
    } else {
        eprintln!("\nFAILED: {}", failures.join("; "));
        std::process::exit(1);
    }
}

/// One client process: its registry, its discovery, a command over a
/// balancer over what it discovers, and its etcd property watch.
struct Fleet<S> {
    name: &'static str,
    service: S,
    breaker: CircuitBreakerHandle,
    /// The command's timeout in force.
    timeout: Box<dyn Fn() -> Duration>,
    discovery: Discovery,
    watch: EtcdWatch,
}

fn fallback(_: &rampart::fallback::Cause) -> Result<String, BoxError> {
    Ok("fallback".to_owned())
}

impl Fleet<()> {
    async fn client(
        name: &'static str,
        etcd: &etcd_client::Client,
        services: &str,
        properties: &str,
    ) -> Result<
        Fleet<impl Service<(), Response = String, Error = BoxError, Future: Send> + Send>,
        BoxError,
    > {
        let registry = Registry::new();
        let discovery = Discovery::builder("ratings")
            .prefix(services)
            .start(etcd.clone())?;
        discovery.synced().await;
        let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let balancer = Balance::builder("ratings")
            .rule(RoundRobin::new())
            .registry(&registry)
            .build(discovery.endpoints(move |instance| {
                let (http, address) = (http.clone(), instance.address.clone());
                tower::service_fn(move |_: ()| {
                    let (http, uri) = (http.clone(), format!("http://{address}/"));
                    async move {
                        let response = http.get(uri.parse()?).await?;
                        let body = response.into_body().collect().await?.to_bytes();
                        Ok::<_, BoxError>(String::from_utf8_lossy(&body).into_owned())
                    }
                })
            }))?;
        let command = Command::builder("Ratings")
            .timeout(Duration::from_secs(1))
            .registry(&registry)
            .fallback_sync(fallback as fn(&rampart::fallback::Cause) -> Result<String, BoxError>)
            .build()?;
        let watch = EtcdSource::watch(etcd.clone(), properties, &registry)?;
        Ok(Fleet {
            name,
            service: command.layer(balancer),
            breaker: command.breaker(),
            timeout: Box::new(move || command.timeout()),
            discovery,
            watch,
        })
    }
}

impl<S> Fleet<S>
where
    S: Service<(), Response = String, Error = BoxError>,
{
    /// `n` calls; how many each instance (or the fallback) answered.
    async fn calls(&mut self, n: usize) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let answer = match self.service.ready().await {
                Ok(svc) => svc.call(()).await.unwrap_or_else(|e| format!("error: {e}")),
                Err(e) => format!("error: {e}"),
            };
            *seen.entry(answer).or_insert(0) += 1;
        }
        seen
    }

    /// Waits (at most 10 s) for `ok` to hold of this client.
    async fn until(&self, ok: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !ok(self) && start.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A ratings instance answering its own id.
async fn serve(listener: TcpListener, id: &'static str) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let answer = hyper::service::service_fn(move |_: Request<Incoming>| async move {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(id.as_bytes()))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), answer)
                .await;
        });
    }
}
