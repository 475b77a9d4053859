//! Function URLs, gradual deploys with alarm rollback, and deployment events, end to end
//! through the real `auto-lambda-worker` binary against moto: the alias's weights read back
//! with GetAlias, alarms tripped with SetAlarmState, events read back through an SQS queue
//! subscribed to the SNS topic and a rule on the EventBridge bus.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const T: Duration = Duration::from_secs(90);

/// An app whose handler returns `v`, with `toml` as its lambda.toml.
fn app(v: u32, toml: &str) -> Vec<u8> {
    let code = format!("def handler(event, context):\n    return {{'v': {v}}}\n");
    zip_of(&[("app.py", code.as_bytes()), ("lambda.toml", toml.as_bytes())])
}

/// The alias's version and its additional weights.
async fn alias(aws: &Aws, function: &str, name: &str) -> (String, HashMap<String, f64>) {
    let a = aws
        .lambda
        .get_alias()
        .function_name(function)
        .name(name)
        .send()
        .await
        .unwrap();
    (
        a.function_version().unwrap().to_owned(),
        a.routing_config()
            .and_then(|r| r.additional_version_weights())
            .cloned()
            .unwrap_or_default(),
    )
}

/// Waits until the report at `key`/`id` says `outcome`; returns it.
async fn wait_outcome(aws: &Aws, stack: &Stack, key: &str, id: &str, outcome: &str) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let r = aws.wait_report_any(stack, key, id, T).await;
        if r["outcome"] == outcome {
            return r;
        }
        assert!(Instant::now() < deadline, "report never said {outcome}: {r:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends the queue a copy of the S3 event of the upload `report` is about (a redelivery, as
/// S3 and SQS may make): same key, ETag and event time, so the same ordering token.
async fn replay_upload(aws: &Aws, stack: &Stack, report: &Value) {
    let source = &report["source"];
    let event = serde_json::json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "eventTime": source["event_time"], "s3": {"bucket": {"name": stack.bucket},
        "object": {"key": source["key"], "eTag": source["etag"]}}}]});
    aws.sqs
        .send_message()
        .queue_url(&stack.queue_url)
        .message_body(event.to_string())
        .send()
        .await
        .unwrap();
}

async fn put_alarm(aws: &Aws, name: &str) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
    aws.cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .unwrap();
}

async fn set_alarm(aws: &Aws, name: &str, state: aws_sdk_cloudwatch::types::StateValue) {
    aws.cloudwatch
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("test")
        .send()
        .await
        .unwrap();
}

/// Deployment events as delivered: an SNS topic and an EventBridge bus, each feeding an SQS
/// queue the test reads.
struct Events {
    topic_arn: String,
    bus: String,
    sns_queue: String,
    bus_queue: String,
    sqs: aws_sdk_sqs::Client,
}

impl Events {
    async fn create(aws: &Aws, name: &str) -> Events {
        let sns = aws_sdk_sns::Client::new(&aws.sdk);
        let eb = aws_sdk_eventbridge::Client::new(&aws.sdk);
        let topic_arn = sns
            .create_topic()
            .name(format!("{name}-deployments"))
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let mut queues = Vec::new();
        for q in ["sns", "bus"] {
            let url = aws
                .sqs
                .create_queue()
                .queue_name(format!("{name}-events-{q}"))
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            let arn = aws
                .sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes()
                .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
                .clone();
            queues.push((url, arn));
        }
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queues[0].1)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        let bus = format!("{name}-deployments");
        eb.create_event_bus().name(&bus).send().await.unwrap();
        eb.put_rule()
            .name(format!("{name}-all"))
            .event_bus_name(&bus)
            .event_pattern(r#"{"source": ["auto-lambda"], "detail-type": ["auto-lambda Deployment State Change"]}"#)
            .send()
            .await
            .unwrap();
        eb.put_targets()
            .rule(format!("{name}-all"))
            .event_bus_name(&bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("q")
                    .arn(&queues[1].1)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Events {
            topic_arn,
            bus,
            sns_queue: queues[0].0.clone(),
            bus_queue: queues[1].0.clone(),
            sqs: aws.sqs.clone(),
        }
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--events-topic".into(),
            self.topic_arn.clone(),
            "--events-bus".into(),
            self.bus.clone(),
        ]
    }

    /// Every message now in `queue`, as JSON.
    async fn drain(&self, queue: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .unwrap();
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                out.push(serde_json::from_str(m.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Waits until both destinations have delivered an event `event` for `version` of
    /// `function`; returns (the SNS one, the EventBridge one's detail). Every event read on the
    /// way is kept in `seen`.
    async fn wait(
        &self,
        seen: &mut Vec<(String, Value)>,
        function: &str,
        version: &str,
        event: &str,
    ) -> (Value, Value) {
        let deadline = Instant::now() + T;
        loop {
            for m in self.drain(&self.sns_queue).await {
                seen.push(("sns".into(), m));
            }
            for m in self.drain(&self.bus_queue).await {
                seen.push(("bus".into(), m));
            }
            let find = |via: &str| {
                seen.iter()
                    .filter(|(v, _)| v == via)
                    .map(|(_, m)| if via == "bus" { m["detail"].clone() } else { m.clone() })
                    .find(|d| d["event"] == event && d["function_name"] == function && d["version"] == version)
            };
            if let (Some(sns), Some(bus)) = (find("sns"), find("bus")) {
                return (sns, bus);
            }
            assert!(
                Instant::now() < deadline,
                "no {event} event for {function} version {version} on both destinations; seen: {seen:#?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// moto with the pipeline, the named alarms (OK), the event destinations, and a worker
/// sending events to both.
struct Shifting {
    stack: Stack,
    aws: Aws,
    events: Events,
    _worker: Worker,
    _moto: Moto,
}

impl Shifting {
    async fn start(name: &str, alarms: &[&str]) -> Shifting {
        let moto = Moto::start();
        let stack = moto.bootstrap(name, false);
        let aws = Aws::new(&stack.endpoint).await;
        for alarm in alarms {
            put_alarm(&aws, alarm).await;
        }
        let events = Events::create(&aws, name).await;
        let flags = events.flags();
        let worker = Worker::spawn(&stack, &flags.iter().map(String::as_str).collect::<Vec<_>>());
        Shifting {
            stack,
            aws,
            events,
            _worker: worker,
            _moto: moto,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_follows_the_manifest() {
    let moto = Moto::start();
    let stack = moto.bootstrap("urls", false);
    let aws = Aws::new(&stack.endpoint).await;
    let _worker = Worker::spawn(&stack, &[]);
    let key = "apps/web.zip";

    let toml = "alias = \"live\"\n[url]\nauth = \"NONE\"\ncors_origins = [\"https://example.com\"]\ncors_methods = [\"GET\"]\n";
    let id = aws.upload(&stack, key, app(1, toml)).await;
    let r = aws.wait_report(&stack, key, &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    let url = r["url"].as_str().expect("the report carries the URL");
    let cfg = url_config(&aws).await.expect("a URL on the alias");
    assert_eq!(cfg.function_url(), url);
    assert_eq!(cfg.auth_type().as_str(), "NONE");
    assert_eq!(cfg.cors().unwrap().allow_origins(), ["https://example.com"]);
    // Both grants public invoke needs since October 2025, each once.
    let sids = statement_ids(&aws).await;
    assert_eq!(
        sids,
        ["auto-lambda-url-public", "auto-lambda-url-public-invoke"],
        "{sids:?}"
    );
    let policy = policy_text(&aws).await;
    assert!(
        policy.contains("lambda:InvokeFunctionUrl") && policy.contains("InvokedViaFunctionUrl"),
        "{policy}"
    );

    // A redeploy with the same table changes nothing; new CORS settings update the URL.
    let id = aws.upload(&stack, key, app(2, toml)).await;
    assert_eq!(aws.wait_report(&stack, key, &id, T).await["url"], url);
    assert_eq!(statement_ids(&aws).await.len(), 2, "no grant twice");
    let cors = toml.replace("https://example.com", "https://shop.example.com");
    let id = aws.upload(&stack, key, app(3, &cors)).await;
    assert_eq!(aws.wait_report(&stack, key, &id, T).await["outcome"], "deployed");
    let cfg = url_config(&aws).await.unwrap();
    assert_eq!(cfg.cors().unwrap().allow_origins(), ["https://shop.example.com"]);

    // AWS_IAM: the URL stays, the public grants go.
    let iam = "alias = \"live\"\n[url]\nauth = \"AWS_IAM\"\n";
    let id = aws.upload(&stack, key, app(4, iam)).await;
    assert_eq!(aws.wait_report(&stack, key, &id, T).await["url"], url);
    assert_eq!(url_config(&aws).await.unwrap().auth_type().as_str(), "AWS_IAM");
    assert!(statement_ids(&aws).await.is_empty());

    // The table goes: so do the URL and the grant.
    let id = aws.upload(&stack, key, app(5, toml)).await;
    assert_eq!(aws.wait_report(&stack, key, &id, T).await["url"], url);
    assert_eq!(statement_ids(&aws).await.len(), 2);
    let id = aws.upload(&stack, key, app(6, "alias = \"live\"\n")).await;
    let r = aws.wait_report(&stack, key, &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    assert!(r["url"].is_null(), "{r:#}");
    assert!(url_config(&aws).await.is_none(), "the URL is gone");
    assert!(statement_ids(&aws).await.is_empty(), "so are the grants");
}

/// The URL on web:live, if any.
async fn url_config(
    aws: &Aws,
) -> Option<aws_sdk_lambda::operation::get_function_url_config::GetFunctionUrlConfigOutput> {
    match aws
        .lambda
        .get_function_url_config()
        .function_name("web")
        .qualifier("live")
        .send()
        .await
    {
        Ok(cfg) => Some(cfg),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(e) => panic!("{e:?}"),
    }
}

/// The policy of web:live as text ("" when there is none).
async fn policy_text(aws: &Aws) -> String {
    let policy = aws
        .lambda
        .get_policy()
        .function_name("web")
        .qualifier("live")
        .send()
        .await;
    policy.ok().and_then(|p| p.policy).unwrap_or_default()
}

/// The statement ids of web:live's policy, sorted.
async fn statement_ids(aws: &Aws) -> Vec<String> {
    let policy: Value = serde_json::from_str(&policy_text(aws).await).unwrap_or_default();
    let mut sids: Vec<String> = policy["Statement"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["Sid"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    sids.sort();
    sids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_promotes_when_alarms_stay_ok_and_events_say_so() {
    let Shifting { stack, aws, events, .. } = &Shifting::start("canary", &["orders-errors"]).await;
    let key = "apps/orders.zip";
    let toml = "alias = \"live\"\n[deploy]\nstrategy = \"canary\"\npercent = 25\ninterval_secs = 4\nalarms = [\"orders-errors\"]\n";

    // The first version has nothing to shift from: the alias is created on it.
    let id = aws.upload(stack, key, app(1, toml)).await;
    assert_eq!(aws.wait_report(stack, key, &id, T).await["outcome"], "deployed");
    assert_eq!(alias(aws, "orders", "live").await, ("1".into(), HashMap::new()));

    let id = aws.upload(stack, key, app(2, toml)).await;
    let r = wait_outcome(aws, stack, key, &id, "shifting").await;
    assert_eq!(r["shift"]["percent"], 25, "{r:#}");
    assert_eq!(r["shift"]["from_version"], "1");
    assert_eq!(r["shift"]["to_version"], "2");
    assert!(r["shift"]["next_step_at"].is_string(), "{r:#}");
    let (version, weights) = alias(aws, "orders", "live").await;
    assert_eq!(version, "1", "the stable version keeps most traffic");
    assert_eq!(weights, HashMap::from([("2".to_owned(), 0.25)]));
    // The worker holds nothing while the shift waits: the upload's message is gone, and the
    // step waits as a delayed message (not counted as visible or in flight).
    eventually(T, "the upload's message settled", || async {
        aws.queue_counts(&stack.queue_url).await == (0, 0)
    })
    .await;

    let r = wait_outcome(aws, stack, key, &id, "deployed").await;
    assert_eq!(r["shift"]["percent"], 100, "{r:#}");
    assert_eq!(alias(aws, "orders", "live").await, ("2".into(), HashMap::new()));

    let mut seen = Vec::new();
    let (sns, bus) = events.wait(&mut seen, "orders", "2", "shift-started").await;
    assert_eq!(sns["shift"]["percent"], 25);
    assert_eq!(bus["outcome"], "shifting");
    let (sns, bus) = events.wait(&mut seen, "orders", "2", "deployed").await;
    assert_eq!(sns["version"], "2", "the event carries the report's fields: {sns:#}");
    assert_eq!(bus["code_sha256"], sns["code_sha256"]);
    let raw_bus = seen.iter().find(|(via, _)| via == "bus").unwrap();
    assert_eq!(raw_bus.1["source"], "auto-lambda");
    assert_eq!(raw_bus.1["detail-type"], "auto-lambda Deployment State Change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tripped_alarm_rolls_back_and_an_alarm_on_before_is_ignored_unless_blocking() {
    use aws_sdk_cloudwatch::types::StateValue;
    let Shifting { stack, aws, events, .. } = &Shifting::start("rollback", &["pay-errors", "always-broken"]).await;
    set_alarm(aws, "always-broken", StateValue::Alarm).await;
    let key = "apps/pay.zip";
    let toml = "alias = \"live\"\n[deploy]\nstrategy = \"linear\"\npercent = 20\ninterval_secs = 3\nalarms = [\"pay-errors\", \"always-broken\"]\n";
    let id = aws.upload(stack, key, app(1, toml)).await;
    assert_eq!(aws.wait_report(stack, key, &id, T).await["outcome"], "deployed");

    // `always-broken` was in ALARM before the shift: it is ignored, so it cannot block a fix.
    let id = aws.upload(stack, key, app(2, toml)).await;
    let r = wait_outcome(aws, stack, key, &id, "shifting").await;
    assert_eq!(
        r["shift"]["ignored_alarms"],
        serde_json::json!(["always-broken"]),
        "{r:#}"
    );
    // One step further, then the guarding alarm goes off.
    eventually(T, "a second step", || async {
        let r = aws.wait_report_any(stack, key, &id, T).await;
        r["shift"]["percent"] == 40
    })
    .await;
    assert_eq!(
        alias(aws, "pay", "live").await.1,
        HashMap::from([("2".to_owned(), 0.4)])
    );
    set_alarm(aws, "pay-errors", StateValue::Alarm).await;
    let r = wait_outcome(aws, stack, key, &id, "rolled-back").await;
    assert!(r["error"].as_str().unwrap().contains("pay-errors"), "{r:#}");
    assert_eq!(alias(aws, "pay", "live").await, ("1".into(), HashMap::new()));
    // A redelivered event of the rolled-back upload never shifts traffic to it again.
    replay_upload(aws, stack, &r).await;
    eventually(T, "the replay worked", || async {
        let again = aws.wait_report_any(stack, key, &id, T).await;
        again["error"]
            .as_str()
            .is_some_and(|e| e.contains("upload it again to retry"))
    })
    .await;
    assert_eq!(aws.wait_report_any(stack, key, &id, T).await["outcome"], "rolled-back");
    assert_eq!(alias(aws, "pay", "live").await, ("1".into(), HashMap::new()));

    let mut seen = Vec::new();
    let (sns, _) = events.wait(&mut seen, "pay", "2", "rolled-back").await;
    assert!(sns["error"].as_str().unwrap().contains("pay-errors"));
    events.wait(&mut seen, "pay", "2", "shift-stepped").await;

    // With block_on_alarm, an alarm already in ALARM stops the shift before any traffic moves.
    set_alarm(aws, "pay-errors", StateValue::Ok).await;
    let blocking = format!("{toml}block_on_alarm = true\n");
    let id = aws.upload(stack, key, app(3, &blocking)).await;
    let r = aws.wait_report(stack, key, &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["error_class"], "permanent");
    assert!(r["error"].as_str().unwrap().contains("always-broken"), "{r:#}");
    assert_eq!(alias(aws, "pay", "live").await, ("1".into(), HashMap::new()));

    // An alarm name that does not exist (metric or composite) is named, before traffic moves.
    let typo = "alias = \"live\"\n[deploy]\nstrategy = \"canary\"\nalarms = [\"pay-erorrs\"]\n";
    let id = aws.upload(stack, key, app(4, typo)).await;
    let r = aws.wait_report(stack, key, &id, T).await;
    assert_eq!(r["outcome"], "failed", "{r:#}");
    assert_eq!(r["error_class"], "permanent");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("pay-erorrs") && error.contains("do not exist"), "{r:#}");
    assert_eq!(alias(aws, "pay", "live").await, ("1".into(), HashMap::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shift_survives_a_killed_worker_and_a_newer_upload_supersedes_it() {
    let moto = Moto::start();
    let stack = moto.bootstrap("shiftkill", false);
    let aws = Aws::new(&stack.endpoint).await;
    let key = "apps/cart.zip";
    let toml = "alias = \"live\"\n[deploy]\nstrategy = \"linear\"\npercent = 30\ninterval_secs = 2\n";
    // The first worker stops for good between sending a step's successor and moving the
    // alias (fault point `shift-step-sent`), the window the step order is about; its
    // messages come back 6 s after it dies.
    let mut worker = Worker::spawn_with(
        worker_command(&stack).env("FAILPOINTS", "shift-step-sent=sleep(60000)"),
        &["--visibility-timeout-secs", "6"],
    );
    let id = aws.upload(&stack, key, app(1, toml)).await;
    assert_eq!(aws.wait_report(&stack, key, &id, T).await["outcome"], "deployed");

    // SIGKILL mid-step: another worker finishes the shift, dropping the orphaned duplicate.
    let id2 = aws.upload(&stack, key, app(2, toml)).await;
    wait_outcome(&aws, &stack, key, &id2, "shifting").await;
    eventually(T, "a step half done", || async {
        worker.log().contains("Sent the next step")
    })
    .await;
    worker.signal("KILL");
    worker.wait_exit(Duration::from_secs(10));
    assert_eq!(
        alias(&aws, "cart", "live").await.1,
        HashMap::from([("2".to_owned(), 0.3)]),
        "killed after sending step 2, before moving the alias to 60 %"
    );
    let other = Worker::spawn(&stack, &[]);
    let r = wait_outcome(&aws, &stack, key, &id2, "deployed").await;
    assert_eq!(r["shift"]["step"], 4, "30, 60, 90, 100: {r:#}");
    assert_eq!(alias(&aws, "cart", "live").await, ("2".into(), HashMap::new()));
    eventually(T, "the orphaned step dropped", || async {
        other.log().contains("Nothing to do for this shift step")
    })
    .await;

    // A redelivered event of an upload mid-shift resumes its shift where it is; it never
    // moves traffic back to the first step.
    let id3 = aws.upload(&stack, key, app(3, toml)).await;
    let r3 = wait_outcome(&aws, &stack, key, &id3, "shifting").await;
    eventually(T, "the second step", || async {
        alias(&aws, "cart", "live").await.1.get("3").is_some_and(|w| *w > 0.5)
    })
    .await;
    replay_upload(&aws, &stack, &r3).await;
    eventually(T, "the replay resumed", || async {
        other.log().contains("Resuming the shift")
    })
    .await;
    let w = alias(&aws, "cart", "live").await;
    assert!(
        w.0 == "3" || w.1.get("3").is_some_and(|w| *w > 0.5),
        "never back to 30 %: {w:?}"
    );
    wait_outcome(&aws, &stack, key, &id3, "deployed").await;
    assert_eq!(alias(&aws, "cart", "live").await, ("3".into(), HashMap::new()));

    // A newer upload during a shift: the old shift ends, the new one starts from the stable
    // version (3), and finishes.
    let slow = toml.replace("interval_secs = 2", "interval_secs = 12");
    let id_slow = aws.upload(&stack, key, app(5, &slow)).await;
    wait_outcome(&aws, &stack, key, &id_slow, "shifting").await;
    let id4 = aws.upload(&stack, key, app(4, toml)).await;
    let r4 = wait_outcome(&aws, &stack, key, &id4, "shifting").await;
    assert_eq!(r4["shift"]["from_version"], "3", "from the stable version: {r4:#}");
    assert_eq!(r4["shift"]["to_version"], "5");
    let superseded = wait_outcome(&aws, &stack, key, &id_slow, "stale-skipped").await;
    assert!(
        superseded["error"].as_str().unwrap().contains("superseded"),
        "{superseded:#}"
    );
    let done = wait_outcome(&aws, &stack, key, &id4, "deployed").await;
    assert_eq!(alias(&aws, "cart", "live").await, ("5".into(), HashMap::new()));

    // A worker that stopped after promoting but before writing the report: the report still
    // says shifting, and the last step's message comes back. It puts the end on record; the
    // same message once more changes nothing.
    let report_key = format!("status/{key}/{id4}.json");
    let mut stale = done.clone();
    stale["outcome"] = "shifting".into();
    aws.s3
        .put_object()
        .bucket(&stack.bucket)
        .key(&report_key)
        .body(serde_json::to_vec(&stale).unwrap().into())
        .send()
        .await
        .unwrap();
    let step = serde_json::json!({"auto-lambda-shift-step": {"function": "cart", "alias": "live",
        "from_version": "3", "to_version": "5", "strategy": "linear", "schedule": [30, 60, 90, 100],
        "step": 3, "interval_secs": 2, "due_at_ms": 0, "alarms": [], "ignored_alarms": [],
        "started_at": done["shift"]["started_at"], "order": "x", "report_bucket": stack.bucket, "report_key": report_key}})
    .to_string();
    let send = || {
        aws.sqs
            .send_message()
            .queue_url(&stack.queue_url)
            .message_body(&step)
            .send()
    };
    send().await.unwrap();
    let fixed = wait_outcome(&aws, &stack, key, &id4, "deployed").await;
    assert_eq!(fixed["shift"]["percent"], 100, "{fixed:#}");
    send().await.unwrap();
    eventually(T, "the duplicate taken", || async {
        aws.queue_counts(&stack.queue_url).await == (0, 0)
    })
    .await;
    let after = aws.wait_report_any(&stack, key, &id4, T).await;
    assert_eq!(
        after["finished_at"], fixed["finished_at"],
        "a duplicate after the end writes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_cannot_be_sent_is_counted_and_never_fails_the_job() {
    let moto = Moto::start();
    let stack = moto.bootstrap("noevents", false);
    let aws = Aws::new(&stack.endpoint).await;
    let worker = Worker::spawn(
        &stack,
        &["--events-topic", "arn:aws:sns:us-east-1:123456789012:no-such-topic"],
    );
    let key = "apps/quiet.zip";
    let id = aws.upload(&stack, key, app(1, "")).await;
    let r = aws.wait_report(&stack, key, &id, T).await;
    assert_eq!(r["outcome"], "deployed", "{r:#}");
    eventually(T, "the failed send counted", || async {
        worker.metric("auto_lambda_event_publish_errors_total").await >= 1.0
    })
    .await;
    assert!(
        worker.log().contains("Cannot send a deployment event"),
        "{}",
        worker.log()
    );
    // And the worker goes on working.
    let id = aws.upload(&stack, key, app(2, "")).await;
    assert_eq!(aws.wait_report(&stack, key, &id, T).await["outcome"], "deployed");
}
