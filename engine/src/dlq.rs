//! The dead-letter record ([`dead_letter_record`]) with its headers, the RFC 3339 timestamps
//! they carry ([`rfc3339_utc`]), and the retry backoff ([`retry_backoff`]).
//!
//! The timestamp formatter is a few lines of calendar arithmetic, written here rather than
//! taken from a date crate: the engine needs one UTC format and no parsing or time zones.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use klamm::{ConsumerRecord, ProducerRecord};

use crate::handler::ErrorClass;

/// Formats milliseconds since the Unix epoch as RFC 3339 in UTC with milliseconds:
/// `2024-05-01T12:34:56.789Z`. Times before the epoch are formatted too (proleptic Gregorian).
pub fn rfc3339_utc(ms_since_epoch: i64) -> String {
    let secs = ms_since_epoch.div_euclid(1000);
    let ms = ms_since_epoch.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

/// Now as [`rfc3339_utc`].
pub fn now_rfc3339() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    rfc3339_utc(ms)
}

/// The dead-letter copy of `record`: same key, value and headers, plus `original-topic`,
/// `original-partition`, `original-offset`, `error`, `error-class`, `retry-count` and
/// `timestamp` (when it was dead-lettered, RFC 3339 UTC).
pub fn dead_letter_record(
    dlq_topic: &str,
    record: &ConsumerRecord,
    error: &str,
    class: ErrorClass,
    retry_count: u32,
) -> ProducerRecord {
    let mut out = match &record.value {
        Some(v) => ProducerRecord::new(dlq_topic, v.clone()),
        None => ProducerRecord::tombstone(dlq_topic),
    };
    if let Some(k) = &record.key {
        out = out.key(k.clone());
    }
    out.headers.extend(record.headers.iter().cloned());
    out.header("original-topic", record.topic.to_string())
        .header("original-partition", record.partition.to_string())
        .header("original-offset", record.offset.to_string())
        .header("error", error.to_string())
        .header("error-class", class.as_str())
        .header("retry-count", retry_count.to_string())
        .header("timestamp", now_rfc3339())
}

/// A random number in [0, 1), from the standard library's per-process random hash keys.
fn unit_random() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// How long to wait before retry `retry` (0 for the first): `base` doubled `retry` times,
/// capped at `max`, then ±20% jitter (so retries of many messages do not run in step).
pub fn retry_backoff(base: Duration, max: Duration, retry: u32) -> Duration {
    let doubled = base.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX));
    let capped = doubled.min(max);
    capped.mul_f64(0.8 + 0.4 * unit_random())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_714_566_896_789), "2024-05-01T12:34:56.789Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_utc(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for retry in 0..40 {
            let expected = (base * 2u32.saturating_pow(retry.min(20))).min(max);
            let d = retry_backoff(base, max, retry);
            assert!(d >= expected.mul_f64(0.8) && d <= expected.mul_f64(1.2), "{retry}: {d:?}");
        }
    }

    #[test]
    fn dead_letter_headers() {
        let rec = ConsumerRecord {
            topic: Arc::from("events"),
            partition: 2,
            offset: 17,
            key: Some(Bytes::from_static(b"ws-1")),
            value: Some(Bytes::from_static(b"oops")),
            headers: vec![klamm::Header::new("trace", "t-1"), klamm::Header::null("replayed")],
            timestamp: 0,
            timestamp_type: klamm::protocol::records::TimestampType::CreateTime,
            high_watermark: 18,
            leader_epoch: None,
        };
        let out = dead_letter_record("events.dlq", &rec, "bad", ErrorClass::Permanent, 0);
        let headers: Vec<(String, Vec<u8>)> = out
            .headers
            .iter()
            .map(|h| (h.key_str().unwrap().to_owned(), h.value.as_deref().unwrap_or(&[]).to_vec()))
            .collect();
        // The record's own headers come first, as they were (a null value stays null).
        assert_eq!(out.headers[..2], rec.headers[..]);
        let get = |k: &str| {
            headers.iter().find(|(n, _)| n == k).map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        };
        assert_eq!(get("original-topic").as_deref(), Some("events"));
        assert_eq!(get("original-partition").as_deref(), Some("2"));
        assert_eq!(get("original-offset").as_deref(), Some("17"));
        assert_eq!(get("error").as_deref(), Some("bad"));
        assert_eq!(get("error-class").as_deref(), Some("permanent"));
        assert_eq!(get("retry-count").as_deref(), Some("0"));
        assert!(get("timestamp").unwrap().ends_with('Z'));
        assert_eq!(out.key.as_deref(), Some(&b"ws-1"[..]));
    }
}
