//! The table's stream as Lambda's event source mapping feeds it to `event-relay`: records read
//! from moto's DynamoDB Streams API, kept only when they match the filter `template.yaml`
//! declares, handed to the relay binary in order through the Runtime API, and handed again
//! from the first record the relay reports as failed, as Lambda retries a shard.

use crate::moto::{self, Moto};
use crate::runtime_api::Function;
use anyhow::Context;
use serde_json::{json, Value};

pub struct StreamPump {
    http: reqwest::Client,
    endpoint: String,
    stream_arn: String,
    filter: Value,
    /// The last record read; the next read starts after it.
    last_sequence: Option<String>,
    /// Read and matched, not yet relayed.
    pending: Vec<Value>,
}

/// What one call of [`StreamPump::pump`] came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pumped {
    /// Records the relay took.
    pub relayed: usize,
    /// Records it reported as failed (from the first failure on), kept for the next call.
    pub failed: usize,
}

impl StreamPump {
    pub async fn new(moto: &Moto) -> anyhow::Result<Self> {
        let t = moto::template()?;
        let pattern = t["Resources"]["EventRelayFunction"]["Properties"]["Events"]["Outbox"]
            ["Properties"]["FilterCriteria"]["Filters"][0]["Pattern"]
            .as_str()
            .context("no filter pattern on EventRelayFunction's Outbox event")?;
        let mut pump = Self {
            http: reqwest::Client::new(),
            endpoint: moto.endpoint.clone(),
            stream_arn: String::new(),
            filter: serde_json::from_str(pattern)?,
            last_sequence: None,
            pending: Vec::new(),
        };
        let table = pump
            .call(
                "DynamoDB_20120810.DescribeTable",
                json!({"TableName": moto::TABLE}),
            )
            .await?;
        pump.stream_arn = table["Table"]["LatestStreamArn"]
            .as_str()
            .context("the table has no stream: template.yaml's StreamSpecification")?
            .to_owned();
        Ok(pump)
    }

    async fn call(&self, target: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(&self.endpoint)
            .header("X-Amz-Target", target)
            .header("Content-Type", "application/x-amz-json-1.0")
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/{}/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
                    moto::REGION
                ),
            )
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{target}: {status} {body}");
        Ok(body)
    }

    /// Reads what the stream has gained, keeping the records the filter lets through. A fresh
    /// iterator each time: moto restores a table whose transaction was cancelled from a copy,
    /// and an iterator taken before would still show the cancelled writes, which a real
    /// stream never carries.
    async fn read(&mut self) -> anyhow::Result<()> {
        let stream = self
            .call(
                "DynamoDBStreams_20120810.DescribeStream",
                json!({"StreamArn": self.stream_arn}),
            )
            .await?;
        let shard = stream["StreamDescription"]["Shards"][0]["ShardId"]
            .as_str()
            .context("the stream has no shard")?
            .to_owned();
        let mut request = json!({"StreamArn": self.stream_arn, "ShardId": shard});
        match &self.last_sequence {
            Some(seq) => {
                request["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
                request["SequenceNumber"] = json!(seq);
            }
            None => request["ShardIteratorType"] = json!("TRIM_HORIZON"),
        }
        let it = self
            .call("DynamoDBStreams_20120810.GetShardIterator", request)
            .await?;
        let iterator = it["ShardIterator"]
            .as_str()
            .context("no shard iterator")?
            .to_owned();
        let got = self
            .call(
                "DynamoDBStreams_20120810.GetRecords",
                json!({"ShardIterator": iterator}),
            )
            .await?;
        let records = got["Records"].as_array().cloned().unwrap_or_default();
        if let Some(last) = records.last() {
            self.last_sequence = last["dynamodb"]["SequenceNumber"]
                .as_str()
                .map(str::to_owned);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64();
        for mut record in records {
            if !matches(&self.filter, &record) {
                continue;
            }
            record["eventSourceARN"] = json!(self.stream_arn);
            record["dynamodb"]["ApproximateCreationDateTime"] = json!(now);
            self.pending.push(record);
        }
        Ok(())
    }

    /// Hands every pending record to the relay in one batch, as the event source mapping
    /// would; what the relay reports as failed stays pending.
    pub async fn pump(&mut self, relay: &Function) -> anyhow::Result<Pumped> {
        self.read().await?;
        if self.pending.is_empty() {
            return Ok(Pumped::default());
        }
        let answer = relay
            .invoke(json!({"Records": self.pending.clone()}))
            .await?;
        let first_failed = answer["batchItemFailures"]
            .as_array()
            .and_then(|f| f.first())
            .and_then(|f| f["itemIdentifier"].as_str())
            .map(str::to_owned);
        let from = match &first_failed {
            None => self.pending.len(),
            Some(seq) => self
                .pending
                .iter()
                .position(|r| r["dynamodb"]["SequenceNumber"] == seq.as_str())
                .with_context(|| format!("the relay reported an unknown record {seq}"))?,
        };
        let rest = self.pending.split_off(from);
        let relayed = std::mem::replace(&mut self.pending, rest).len();
        Ok(Pumped {
            relayed,
            failed: self.pending.len(),
        })
    }
}

/// Whether a stream record matches an event filter pattern, for the parts of the pattern
/// language the template uses: nested fields, lists of values, `prefix` and `exists`.
pub fn matches(pattern: &Value, record: &Value) -> bool {
    let Some(fields) = pattern.as_object() else {
        return false;
    };
    fields.iter().all(|(name, p)| {
        let value = record.get(name);
        match p {
            Value::Object(_) => value.is_some_and(|v| matches(p, v)),
            Value::Array(options) => options.iter().any(|o| leaf(o, value)),
            _ => false,
        }
    })
}

fn leaf(option: &Value, value: Option<&Value>) -> bool {
    match option {
        Value::Object(o) if o.contains_key("exists") => {
            o["exists"].as_bool() == Some(value.is_some())
        }
        Value::Object(o) if o.contains_key("prefix") => value
            .and_then(Value::as_str)
            .zip(o["prefix"].as_str())
            .is_some_and(|(v, p)| v.starts_with(p)),
        literal => value == Some(literal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_filter_keeps_only_undelivered_outbox_items() {
        let t = moto::template().unwrap();
        let pattern: Value = serde_json::from_str(
            t["Resources"]["EventRelayFunction"]["Properties"]["Events"]["Outbox"]["Properties"]
                ["FilterCriteria"]["Filters"][0]["Pattern"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let record = |name: &str, pk: &str, delivered: bool| {
            let mut image = json!({"pk": {"S": pk}, "event_id": {"S": "evt_1"}});
            if delivered {
                image["delivered_at"] = json!({"N": "1"});
            }
            json!({"eventName": name, "dynamodb": {"Keys": {"pk": {"S": pk}}, "NewImage": image}})
        };
        assert!(matches(&pattern, &record("INSERT", "OUTBOX#evt_1", false)));
        assert!(matches(&pattern, &record("MODIFY", "OUTBOX#evt_1", false)));
        assert!(!matches(&pattern, &record("MODIFY", "OUTBOX#evt_1", true)));
        assert!(!matches(&pattern, &record("INSERT", "BOT#acme", false)));
        assert!(!matches(
            &pattern,
            &json!({"eventName": "REMOVE", "dynamodb": {"Keys": {"pk": {"S": "OUTBOX#evt_1"}}}})
        ));
    }
}
