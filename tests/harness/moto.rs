//! moto, the AWS emulator, as a process, and the AWS resources the service needs in it.

use crate::build::workspace_root;
use crate::process::{output_file, wait_for_line};
use anyhow::{bail, Context};
use serde_json::Value;
use std::path::Path;
use tokio::process::{Child, Command};

pub const REGION: &str = "us-east-1";
pub const TABLE: &str = "integrations";
pub const BUS: &str = "integrations-events";

pub struct Moto {
    _child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts `moto_server` from the checkout's virtual environment on a free port, with its
    /// request recorder available.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin = workspace_root().join(".venv/bin/moto_server");
        if !bin.exists() {
            bail!(
                "moto is not installed: run `scripts/setup`, which installs moto[server] from PyPI \
                 into .venv (python3 -m venv .venv && .venv/bin/pip install 'moto[server]')"
            );
        }
        let out = dir.join("moto.out");
        let (stdout, stderr) = output_file(&out)?;
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", dir.join("moto-recording.jsonl"))
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start moto_server")?;
        let line = wait_for_line(&out, "Running on http://", &mut child).await?;
        let endpoint = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .context("moto printed no address")?
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            _child: child,
            endpoint,
        })
    }

    pub async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(shared::adapters::aws_http::sdk_http_client())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }

    /// The environment a service process needs to reach this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    async fn recorder(&self, action: &str) -> anyhow::Result<String> {
        let url = format!("{}/moto-api/recorder/{action}", self.endpoint);
        let http = reqwest::Client::new();
        let resp = if action == "download-recording" {
            http.get(url).send().await?
        } else {
            http.post(url).send().await?
        };
        anyhow::ensure!(
            resp.status().is_success(),
            "recorder {action}: {}",
            resp.status()
        );
        Ok(resp.text().await?)
    }

    /// Starts counting requests from now on.
    pub async fn start_counting(&self) -> anyhow::Result<()> {
        self.recorder("reset-recording").await?;
        self.recorder("start-recording").await.map(|_| ())
    }

    /// Requests since `start_counting`, by operation (`X-Amz-Target`, e.g.
    /// `DynamoDB_20120810.GetItem`, `TrentService.GenerateDataKey`).
    /// Every request recorded since `start_counting`, as moto wrote it down.
    pub async fn recording(&self) -> anyhow::Result<Vec<Value>> {
        self.recorder("stop-recording").await?;
        let text = self.recorder("download-recording").await?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    pub async fn counts(&self) -> anyhow::Result<std::collections::BTreeMap<String, usize>> {
        self.recorder("stop-recording").await?;
        let text = self.recorder("download-recording").await?;
        let mut counts = std::collections::BTreeMap::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let target = v["headers"]["X-Amz-Target"]
                .as_str()
                .or_else(|| v["headers"]["x-amz-target"].as_str())
                .unwrap_or("other");
            *counts.entry(target.to_owned()).or_insert(0) += 1;
        }
        Ok(counts)
    }
}

/// The resources of one service: table, key, bus, and a queue that receives the bus's
/// events through a rule.
pub struct Resources {
    pub kms_key_id: String,
    pub queue_url: String,
    pub sdk: aws_config::SdkConfig,
}

impl Resources {
    pub async fn create(moto: &Moto) -> anyhow::Result<Self> {
        let sdk = moto.sdk().await;
        create_table_from_template(&aws_sdk_dynamodb::Client::new(&sdk)).await?;
        let kms = aws_sdk_kms::Client::new(&sdk);
        let key = kms.create_key().send().await?;
        let kms_key_id = key
            .key_metadata()
            .map(|m| m.key_id().to_owned())
            .context("no key id")?;
        let events = aws_sdk_eventbridge::Client::new(&sdk);
        events.create_event_bus().name(BUS).send().await?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue = sqs.create_queue().queue_name("bot-events").send().await?;
        let queue_url = queue.queue_url().context("no queue url")?.to_owned();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?;
        let queue_arn = attrs
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .context("no queue arn")?
            .clone();
        events
            .put_rule()
            .name("to-bot-platform")
            .event_bus_name(BUS)
            .event_pattern(r#"{"source": ["bot-integrations"]}"#)
            .send()
            .await?;
        events
            .put_targets()
            .rule("to-bot-platform")
            .event_bus_name(BUS)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(queue_arn)
                    .build()?,
            )
            .send()
            .await?;
        Ok(Self {
            kms_key_id,
            queue_url,
            sdk,
        })
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TABLE_NAME", TABLE.into()),
            ("KMS_KEY_ID", self.kms_key_id.clone()),
            ("EVENT_BUS_NAME", BUS.into()),
        ]
    }

    /// Every event that reached the queue since the last call.
    pub async fn drain_queue(&self) -> anyhow::Result<Vec<Value>> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut out = Vec::new();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await?;
            let messages = got.messages();
            if messages.is_empty() {
                return Ok(out);
            }
            for m in messages {
                if let Some(body) = m.body() {
                    out.push(serde_json::from_str(body)?);
                }
                if let Some(handle) = m.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
        }
    }

    /// Every item of the table, for tests that look at what is stored.
    pub async fn all_items(
        &self,
    ) -> anyhow::Result<
        Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
    > {
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk);
        let out = ddb.scan().table_name(TABLE).send().await?;
        Ok(out.items().to_vec())
    }
}

/// `template.yaml` as JSON, read by cfn-lint's CloudFormation decoder (which knows `!Ref`,
/// `!GetAtt` and the other short forms).
pub fn template() -> anyhow::Result<Value> {
    let root = workspace_root();
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .args([
            "-c",
            "import json, sys\nfrom cfnlint.decode import decode\ntemplate, errors = decode(sys.argv[1])\nif errors: sys.exit(str(errors))\nprint(json.dumps(template, default=str))",
        ])
        .arg(root.join("template.yaml"))
        .output()
        .context("cannot run .venv/bin/python: run scripts/setup")?;
    anyhow::ensure!(
        out.status.success(),
        "cannot read template.yaml (is cfn-lint installed? run scripts/setup): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Creates the table with the key schema, attributes, stream and TTL that `template.yaml`
/// declares.
pub async fn create_table_from_template(ddb: &aws_sdk_dynamodb::Client) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
        TimeToLiveSpecification,
    };
    let t = template()?;
    let table = &t["Resources"]["Table"]["Properties"];
    let mut req = ddb
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest);
    for a in table["AttributeDefinitions"]
        .as_array()
        .context("AttributeDefinitions")?
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().context("AttributeName")?)
                .attribute_type(ScalarAttributeType::from(
                    a["AttributeType"].as_str().context("AttributeType")?,
                ))
                .build()?,
        );
    }
    let key_schema = |list: &Value| -> anyhow::Result<Vec<KeySchemaElement>> {
        list.as_array()
            .context("KeySchema")?
            .iter()
            .map(|k| {
                Ok(KeySchemaElement::builder()
                    .attribute_name(k["AttributeName"].as_str().context("AttributeName")?)
                    .key_type(KeyType::from(k["KeyType"].as_str().context("KeyType")?))
                    .build()?)
            })
            .collect()
    };
    req = req.set_key_schema(Some(key_schema(&table["KeySchema"])?));
    for index in table["GlobalSecondaryIndexes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index["IndexName"].as_str().context("IndexName")?)
                .set_key_schema(Some(key_schema(&index["KeySchema"])?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            index["Projection"]["ProjectionType"]
                                .as_str()
                                .context("ProjectionType")?,
                        ))
                        .build(),
                )
                .build()?,
        );
    }
    if let Some(view) = table["StreamSpecification"]["StreamViewType"].as_str() {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view))
                .build()?,
        );
    }
    req.send().await.context("create table")?;
    let ttl = &table["TimeToLiveSpecification"];
    ddb.update_time_to_live()
        .table_name(TABLE)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(ttl["AttributeName"].as_str().context("TTL attribute")?)
                .enabled(ttl["Enabled"].as_bool().unwrap_or(false))
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}
