//! Event throughput and latency: svcgen's whole delivery path against the broker alone.
//!
//! For each broker that is compiled in and reachable on 127.0.0.1 (RabbitMQ on 5672, NATS
//! JetStream on 4222), one run measures
//!
//! * **svcgen**: events written to a producer's outbox (one transaction per event, several
//!   writers at once), published by the outbox relay, consumed through the inbox of a consumer
//!   with its own database, whose effect is one row; events per second from the first outbox
//!   write to the last effect, and the latency of each event from its outbox write to its effect
//!   (p50, p99);
//! * **raw**: the broker's client alone with the same number of messages of the same size:
//!   persistent/confirmed publishes (all in flight at once), a consumer with the same prefetch
//!   that acknowledges each message;
//!
//! and prints both rates and their ratio. The outboxes are on PostgreSQL (127.0.0.1:5432,
//! user `postgres`) when it is reachable, else on SQLite in a temporary directory (`--sqlite`
//! forces that). Everything it creates (databases, exchanges, queues, streams) is removed.
//! It prints figures and asserts nothing: it is a measurement, not a test.
//!
//! ```sh
//! cargo run --release -p svcgen-runtime --features nats --example bench_events
//! cargo run --release -p svcgen-runtime --features nats --example bench_events -- --events 5000 --sqlite
//! ```

// Without any broker compiled in there is nothing to measure; the example still builds.
#![cfg_attr(
    not(any(feature = "rabbitmq", feature = "nats")),
    allow(dead_code, unused_imports)
)]

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};
use svcgen_runtime::bus::{Bus, Envelope, Event, RetryPolicy};
use svcgen_runtime::db::{Db, query};
use svcgen_runtime::events::{self, Events};
use svcgen_runtime::{ServiceContext, Settings};
use tokio::sync::{mpsc, watch};

#[derive(Parser, Debug)]
#[command(about = "Measures svcgen's event delivery against the broker alone")]
struct Options {
    /// Events per measurement.
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// Size of an event's envelope in bytes (the raw measurements send messages of this size).
    #[arg(long, default_value_t = 512)]
    payload: usize,
    /// Producer transactions running at once.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Keep the outboxes on SQLite even when PostgreSQL is reachable.
    #[arg(long)]
    sqlite: bool,
}

/// Longest a measurement may take before it is reported as incomplete.
const DEADLINE: Duration = Duration::from_secs(60);
/// The raw consumers' prefetch: the same as svcgen's consumers.
const PREFETCH: u16 = 16;
const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
#[cfg(feature = "rabbitmq")]
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
#[cfg(feature = "nats")]
const NATS_URL: &str = "nats://127.0.0.1:4222";

/// The benchmark's event: its sequence number, when it was written (microseconds since the run
/// began) and padding up to the requested size.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Tick {
    seq: u64,
    sent_us: u64,
    pad: String,
}

impl Event for Tick {
    const NAME: &'static str = "bench.tick";
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn reachable(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    )
    .is_ok()
}

/// One measurement: how many events arrived, in how long, and each one's latency.
struct Measurement {
    arrived: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Measurement {
    fn rate(&self) -> f64 {
        self.arrived as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn percentile_ms(&self, percent: usize) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let index = (sorted.len() * percent).div_ceil(100).saturating_sub(1);
        sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
    }

    fn line(&self, expected: usize) -> String {
        let missing = if self.arrived < expected {
            format!("  (only {} of {expected} arrived in time)", self.arrived)
        } else {
            String::new()
        };
        format!(
            "{:>8.0} events/s   p50 {:>7.2} ms   p99 {:>7.2} ms{missing}",
            self.rate(),
            self.percentile_ms(50),
            self.percentile_ms(99)
        )
    }
}

/// Receives `expected` latencies from `seen` (or stops at the deadline).
async fn collect(
    seen: &mut mpsc::UnboundedReceiver<u64>,
    expected: usize,
    started: Instant,
) -> Measurement {
    let mut latencies_us = Vec::with_capacity(expected);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while latencies_us.len() < expected {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Some(latency)) => latencies_us.push(latency),
            Ok(None) | Err(_) => break,
        }
    }
    Measurement {
        arrived: latencies_us.len(),
        elapsed: started.elapsed(),
        latencies_us,
    }
}

/// Where the outboxes and inboxes live: PostgreSQL databases (dropped at the end) or SQLite
/// files in a temporary directory.
enum Databases {
    Postgres { created: Vec<String> },
    Sqlite { dir: tempfile::TempDir },
}

impl Databases {
    fn new(options: &Options) -> anyhow::Result<Databases> {
        if !options.sqlite && reachable(5432) {
            Ok(Databases::Postgres {
                created: Vec::new(),
            })
        } else {
            Ok(Databases::Sqlite {
                dir: tempfile::tempdir()?,
            })
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Databases::Postgres { .. } => "PostgreSQL (127.0.0.1:5432)",
            Databases::Sqlite { .. } => "SQLite (temporary files)",
        }
    }

    /// A fresh database for one service of one measurement.
    async fn open(&mut self, name: &str) -> anyhow::Result<Db> {
        let url = match self {
            Databases::Postgres { created } => {
                let database = format!("svcgen_bench_{}_{name}", uuid::Uuid::new_v4().simple());
                created.push(database.clone());
                format!("postgres://postgres@127.0.0.1:5432/{database}")
            }
            Databases::Sqlite { dir } => format!(
                "sqlite://{}",
                dir.path()
                    .join(format!("{name}-{}.sqlite", uuid::Uuid::new_v4().simple()))
                    .display()
            ),
        };
        let db = Db::connect(&url)
            .await
            .with_context(|| format!("cannot open the {name} database"))?;
        events::prepare(&db).await?;
        Ok(db)
    }

    async fn remove(self) {
        if let Databases::Postgres { created } = self {
            use sqlx::Connection as _;
            let Ok(mut admin) = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await else {
                eprintln!("warning: cannot connect to PostgreSQL to drop the benchmark databases");
                return;
            };
            for name in created {
                let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(&mut admin)
                    .await
                {
                    eprintln!("warning: cannot drop {name}: {error}");
                }
            }
            let _ = admin.close().await;
        }
    }
}

/// The padding that makes a Tick's envelope `size` bytes long (or as close as it gets).
fn padding_for(size: usize) -> String {
    let probe = |pad: usize| {
        let tick = Tick {
            seq: 1_000_000,
            sent_us: 1_000_000_000,
            pad: "x".repeat(pad),
        };
        Envelope::of("bench_producer", &tick)
            .ok()
            .and_then(|envelope| serde_json::to_vec(&envelope).ok())
            .map_or(0, |bytes| bytes.len())
    };
    let base = probe(0);
    "x".repeat(size.saturating_sub(base))
}

/// svcgen's whole path: outbox write, relay, broker, inbox, effect.
async fn svcgen_path(
    bus: Bus,
    databases: &mut Databases,
    options: &Options,
    pad: &str,
) -> anyhow::Result<Measurement> {
    let settings = Arc::new(Settings::new(
        "bench",
        b"benchmark-jwt-key-9f8e7d6c5b4a39281706",
        b"benchmark-internal-key-0a1b2c3d4e5f6789",
        900,
        3600,
    ));
    let producer = ServiceContext {
        service: "bench_producer",
        db: databases.open("producer").await?,
        bus: bus.clone(),
        settings: settings.clone(),
        events: Events::default(),
    };
    let consumer = ServiceContext {
        service: "bench_consumer",
        db: databases.open("consumer").await?,
        bus: bus.clone(),
        settings,
        events: Events::default(),
    };
    query("CREATE TABLE bench_effects (event_id TEXT PRIMARY KEY, seq BIGINT NOT NULL)")
        .execute(&consumer.db)
        .await?;
    let (seen_sender, mut seen) = mpsc::unbounded_channel();
    consumer
        .subscribe::<Tick, _, _>(
            RetryPolicy::default(),
            false,
            move |envelope, tick, mut tx| {
                let seen = seen_sender.clone();
                async move {
                    query("INSERT INTO bench_effects (event_id, seq) VALUES ($1, $2)")
                        .bind(envelope.id.to_string())
                        .bind(i64::try_from(tick.seq)?)
                        .execute(&mut tx)
                        .await?;
                    // The effect is written (its transaction commits right after the handler).
                    seen.send(now_us().saturating_sub(tick.sent_us))?;
                    Ok(tx)
                }
            },
        )
        .await?;
    let (stop_relay, stopping) = watch::channel(false);
    let relay = tokio::spawn(events::relay(producer.clone(), stopping));

    let started = Instant::now();
    let writers = options.writers.max(1);
    let mut writing = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let (producer, pad, events) = (producer.clone(), pad.to_owned(), options.events);
        writing.spawn(async move {
            for seq in (writer..events).step_by(writers) {
                let mut tx = producer.begin().await?;
                let tick = Tick {
                    seq: seq as u64,
                    sent_us: now_us(),
                    pad: pad.clone(),
                };
                producer.emit(&mut tx, &tick).await?;
                producer.commit(tx).await?;
            }
            anyhow::Ok(())
        });
    }
    let measurement = collect(&mut seen, options.events, started).await;
    while let Some(written) = writing.join_next().await {
        written??;
    }
    let _ = stop_relay.send(true);
    let _ = relay.await;
    bus.close().await;
    producer.db.close().await;
    consumer.db.close().await;
    Ok(measurement)
}

/// A message of `size` bytes whose first 8 bytes are the send time.
fn timed_message(size: usize) -> Vec<u8> {
    let mut message = now_us().to_be_bytes().to_vec();
    message.resize(size.max(8), b'x');
    message
}

fn sent_us(message: &[u8]) -> u64 {
    message
        .get(..8)
        .and_then(|head| <[u8; 8]>::try_from(head).ok())
        .map_or(0, u64::from_be_bytes)
}

#[cfg(feature = "rabbitmq")]
async fn raw_rabbitmq(options: &Options, size: usize) -> anyhow::Result<Measurement> {
    use futures_util::StreamExt as _;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let publisher = Connection::connect(AMQP_URL, ConnectionProperties::default()).await?;
    let subscriber = Connection::connect(AMQP_URL, ConnectionProperties::default()).await?;
    let queue = format!("svcgen-bench-raw-{}", uuid::Uuid::new_v4().simple());
    let channel = publisher.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let consuming = subscriber.create_channel().await?;
    consuming
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut deliveries = consuming
        .basic_consume(
            queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let (seen_sender, mut seen) = mpsc::unbounded_channel();
    let consumer = tokio::spawn(async move {
        while let Some(Ok(delivery)) = deliveries.next().await {
            let latency = now_us().saturating_sub(sent_us(&delivery.data));
            if delivery.ack(BasicAckOptions::default()).await.is_err()
                || seen_sender.send(latency).is_err()
            {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut confirms = Vec::with_capacity(options.events);
    for _ in 0..options.events {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &timed_message(size),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
        confirms.push(confirm);
    }
    for confirm in confirms {
        if !confirm.await?.is_ack() {
            bail!("RabbitMQ refused a message");
        }
    }
    let measurement = collect(&mut seen, options.events, started).await;
    consumer.abort();
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = subscriber.close(200, "done".into()).await;
    let _ = publisher.close(200, "done".into()).await;
    Ok(measurement)
}

/// Deletes the exchanges and queues svcgen declared for a measurement.
#[cfg(feature = "rabbitmq")]
async fn remove_rabbitmq_topology(exchange: &str) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let Ok(connection) =
        lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        let queue = format!("{exchange}.bench_consumer.{}", Tick::NAME);
        for name in [format!("{queue}.dead-letter"), queue] {
            let _ = channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for name in [exchange.to_owned(), format!("{exchange}.dead-letter")] {
            let _ = channel
                .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
    let _ = connection.close(200, "done".into()).await;
}

#[cfg(feature = "nats")]
async fn raw_nats(options: &Options, size: usize) -> anyhow::Result<Measurement> {
    use async_nats::jetstream::{self, consumer::pull, stream};
    use futures_util::StreamExt as _;

    let publisher = async_nats::connect(NATS_URL).await?;
    let subscriber = async_nats::connect(NATS_URL).await?;
    let name = format!("svcgen-bench-raw-{}", uuid::Uuid::new_v4().simple());
    let subject = format!("{name}.tick");
    let publishing = jetstream::new(publisher.clone());
    let consuming = jetstream::new(subscriber.clone());
    let stream = publishing
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Interest,
            ..stream::Config::default()
        })
        .await?;
    stream
        .create_consumer(pull::Config {
            durable_name: Some("bench".to_owned()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..pull::Config::default()
        })
        .await?;
    let consumer: jetstream::consumer::PullConsumer = consuming
        .get_stream(&name)
        .await?
        .get_consumer("bench")
        .await
        .map_err(|error| anyhow::anyhow!(error))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(usize::from(PREFETCH))
        .messages()
        .await?;
    let (seen_sender, mut seen) = mpsc::unbounded_channel();
    let receiving = tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            let latency = now_us().saturating_sub(sent_us(&message.payload));
            if message.ack().await.is_err() || seen_sender.send(latency).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut acks = Vec::with_capacity(options.events);
    for _ in 0..options.events {
        acks.push(
            publishing
                .publish(subject.clone(), timed_message(size).into())
                .await?,
        );
    }
    for ack in acks {
        ack.await?;
    }
    let measurement = collect(&mut seen, options.events, started).await;
    receiving.abort();
    let _ = publishing.delete_stream(&name).await;
    let _ = subscriber.drain().await;
    let _ = publisher.drain().await;
    Ok(measurement)
}

/// Prints one broker's pair of measurements and their ratio.
fn report(
    broker: &str,
    raw_client: &str,
    svcgen: anyhow::Result<Measurement>,
    raw: anyhow::Result<Measurement>,
    expected: usize,
) {
    println!("{broker}");
    let lines = [
        (
            "svcgen: outbox -> relay -> broker -> inbox -> effect".to_owned(),
            &svcgen,
        ),
        (
            format!("raw {raw_client}: confirmed publish -> consume -> ack"),
            &raw,
        ),
    ];
    for (label, measurement) in lines {
        match measurement {
            Ok(measurement) => println!("  {label:<52} {}", measurement.line(expected)),
            Err(error) => println!("  {label:<52} failed: {error:#}"),
        }
    }
    if let (Ok(svcgen), Ok(raw)) = (&svcgen, &raw) {
        println!(
            "  svcgen / raw: {:.3} (svcgen delivers {:.1}% of the raw rate)",
            svcgen.rate() / raw.rate(),
            100.0 * svcgen.rate() / raw.rate()
        );
    }
}

/// Both RabbitMQ measurements; false when RabbitMQ is not there.
#[cfg(feature = "rabbitmq")]
async fn measure_rabbitmq(
    options: &Options,
    databases: &mut Databases,
    pad: &str,
    size: usize,
) -> bool {
    if !reachable(5672) {
        println!("RabbitMQ: not reachable on 127.0.0.1:5672; skipped");
        return false;
    }
    let exchange = format!("svcgen-bench-{}", uuid::Uuid::new_v4().simple());
    let svcgen = match Bus::connect(AMQP_URL, &exchange).await {
        Ok(bus) => svcgen_path(bus, databases, options, pad).await,
        Err(error) => Err(error.into()),
    };
    remove_rabbitmq_topology(&exchange).await;
    let raw = raw_rabbitmq(options, size).await;
    report(
        "RabbitMQ (127.0.0.1:5672)",
        "lapin",
        svcgen,
        raw,
        options.events,
    );
    true
}

#[cfg(not(feature = "rabbitmq"))]
async fn measure_rabbitmq(_: &Options, _: &mut Databases, _: &str, _: usize) -> bool {
    println!("RabbitMQ: not compiled in (feature `rabbitmq`); skipped");
    false
}

/// Both NATS measurements; false when NATS is not there.
#[cfg(feature = "nats")]
async fn measure_nats(
    options: &Options,
    databases: &mut Databases,
    pad: &str,
    size: usize,
) -> bool {
    if !reachable(4222) {
        println!("NATS: not reachable on 127.0.0.1:4222; skipped");
        return false;
    }
    // A namespace without dots is its own stream name.
    let namespace = format!("svcgen-bench-{}", uuid::Uuid::new_v4().simple());
    let svcgen = match Bus::connect(NATS_URL, &namespace).await {
        Ok(bus) => svcgen_path(bus, databases, options, pad).await,
        Err(error) => Err(error.into()),
    };
    if let Ok(client) = async_nats::connect(NATS_URL).await {
        let _ = async_nats::jetstream::new(client.clone())
            .delete_stream(&namespace)
            .await;
        let _ = client.drain().await;
    }
    let raw = raw_nats(options, size).await;
    report(
        "NATS JetStream (127.0.0.1:4222)",
        "async-nats",
        svcgen,
        raw,
        options.events,
    );
    true
}

#[cfg(not(feature = "nats"))]
async fn measure_nats(_: &Options, _: &mut Databases, _: &str, _: usize) -> bool {
    println!("NATS: not compiled in (add `--features nats`); skipped");
    false
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.events == 0 {
        bail!("--events must be at least 1");
    }
    epoch();
    let pad = padding_for(options.payload);
    let size = serde_json::to_vec(&Envelope::of(
        "bench_producer",
        &Tick {
            seq: 1_000_000,
            sent_us: 1_000_000_000,
            pad: pad.clone(),
        },
    )?)?
    .len();
    let mut databases = Databases::new(&options)?;
    println!(
        "svcgen event benchmark: {} events of {size} bytes per measurement; outboxes and inboxes on {}; {} writers; consumer prefetch {PREFETCH}",
        options.events,
        databases.describe(),
        options.writers,
    );
    let rabbitmq = measure_rabbitmq(&options, &mut databases, &pad, size).await;
    let nats = measure_nats(&options, &mut databases, &pad, size).await;
    databases.remove().await;
    if !rabbitmq && !nats {
        println!("nothing measured: no broker reachable");
    }
    Ok(())
}
