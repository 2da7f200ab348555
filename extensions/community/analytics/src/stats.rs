//! `GET /ext/analytics/stats`: the window and bucket parameters, and the aggregate queries
//! shared with the dashboard.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use annex_core::ApiError;
use serde::Serialize;

use crate::recorder::RecorderFigures;

/// The most buckets one query may ask for (a month of hours is 744).
pub(crate) const MAX_BUCKETS: u64 = 1000;
/// Rows in the top-paths and events lists.
const TOP: i64 = 10;

/// The bucket width of the views-over-time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    fn seconds(self) -> u64 {
        match self {
            Self::Hour => 3600,
            Self::Day => 86_400,
        }
    }
}

/// A half-open time window `[from, to)` cut into buckets, all in UTC.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Window {
    pub(crate) from: SystemTime,
    pub(crate) to: SystemTime,
    pub(crate) bucket: Bucket,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 UTC timestamp (`2024-05-01T13:00:00Z`).
fn parse_time(name: &str, value: &str) -> Result<SystemTime, ApiError> {
    let value = value.trim();
    let full = if value.len() == 10 { format!("{value}T00:00:00Z") } else { value.to_owned() };
    humantime::parse_rfc3339(&full).map_err(|e| {
        bad(format!(
            "parameter `{name}` = `{value}` is not a UTC time ({e}); use a date such as 2024-05-01 or an \
             RFC 3339 UTC timestamp such as 2024-05-01T13:00:00Z"
        ))
    })
}

impl Window {
    /// Reads `from`, `to` and `bucket` (defaults: `to` now, `bucket` hour, `from` 24 hours
    /// before `to` for hours or 30 days for days). Unknown parameters are refused, so a typo
    /// does not silently give the default window.
    pub(crate) fn from_query(query: &HashMap<String, String>, now: SystemTime) -> Result<Self, ApiError> {
        if let Some(unknown) = query.keys().find(|k| !matches!(k.as_str(), "from" | "to" | "bucket")) {
            return Err(bad(format!(
                "unknown parameter `{unknown}`; the parameters are from, to and bucket"
            )));
        }
        let bucket = match query.get("bucket").map(String::as_str) {
            None | Some("hour") => Bucket::Hour,
            Some("day") => Bucket::Day,
            Some(other) => return Err(bad(format!("parameter `bucket` = `{other}`: use `hour` or `day`"))),
        };
        let to = query.get("to").map(|v| parse_time("to", v)).transpose()?.unwrap_or(now);
        let span = Duration::from_secs(match bucket {
            Bucket::Hour => 24 * 3600,
            Bucket::Day => 30 * 86_400,
        });
        let from = match query.get("from") {
            Some(v) => parse_time("from", v)?,
            None => to.checked_sub(span).unwrap_or(UNIX_EPOCH),
        };
        let Ok(width) = to.duration_since(from) else {
            return Err(bad("parameter `from` must be before `to`"));
        };
        if width.is_zero() {
            return Err(bad("parameter `from` must be before `to`"));
        }
        let buckets = width.as_secs().div_ceil(bucket.seconds()) + 1;
        if buckets > MAX_BUCKETS {
            return Err(bad(format!(
                "the window from `from` to `to` holds about {buckets} {} buckets, more than {MAX_BUCKETS}; \
                 narrow the window or use bucket=day",
                bucket.as_str()
            )));
        }
        Ok(Self { from, to, bucket })
    }

    fn epoch(t: SystemTime) -> f64 {
        t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
    }

    pub(crate) fn start_secs(&self) -> f64 {
        Self::epoch(self.from)
    }

    pub(crate) fn end_secs(&self) -> f64 {
        Self::epoch(self.to)
    }
}

/// Views in one bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct BucketCount {
    /// The bucket's start, RFC 3339 UTC.
    pub(crate) start: String,
    pub(crate) views: i64,
}

/// One route's views.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct PathCount {
    pub(crate) route: String,
    pub(crate) views: i64,
    pub(crate) avg_ms: f64,
}

/// Responses by status class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct StatusMix {
    #[serde(rename = "2xx")]
    pub(crate) ok: i64,
    #[serde(rename = "3xx")]
    pub(crate) redirect: i64,
    #[serde(rename = "4xx")]
    pub(crate) client_error: i64,
    #[serde(rename = "5xx")]
    pub(crate) server_error: i64,
}

/// One custom event name's count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct EventCount {
    pub(crate) name: String,
    pub(crate) count: i64,
}

/// Views by user-agent family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct AgentCount {
    pub(crate) agent: String,
    pub(crate) views: i64,
}

/// Everything `/stats` answers and the dashboard draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Stats {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) bucket: Bucket,
    pub(crate) total_views: i64,
    pub(crate) views: Vec<BucketCount>,
    pub(crate) top_paths: Vec<PathCount>,
    pub(crate) status: StatusMix,
    pub(crate) agents: Vec<AgentCount>,
    pub(crate) events: Vec<EventCount>,
    pub(crate) recorder: RecorderFigures,
}

const UTC_TEXT: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS"Z"'"#;

/// Runs the aggregate queries for `window`. Buckets come from `generate_series`, so a bucket
/// without views is present with 0.
pub(crate) async fn query(
    pool: &sqlx::PgPool,
    window: &Window,
    recorder: RecorderFigures,
) -> Result<Stats, sqlx::Error> {
    let (from, to, unit) = (window.start_secs(), window.end_secs(), window.bucket.as_str());
    let views: Vec<(String, i64)> = sqlx::query_as(&format!(
        r"with counts as (
              select date_trunc($3, occurred_at at time zone 'utc') as start, count(*) as views
              from page_views
              where occurred_at >= to_timestamp($1) and occurred_at < to_timestamp($2)
              group by 1
          )
          select to_char(s.start, {UTC_TEXT}), coalesce(c.views, 0)
          from generate_series(date_trunc($3, to_timestamp($1) at time zone 'utc'),
                               to_timestamp($2) at time zone 'utc' - interval '1 microsecond',
                               ('1 ' || $3)::interval) as s(start)
          left join counts c on c.start = s.start
          order by s.start"
    ))
    .bind(from)
    .bind(to)
    .bind(unit)
    .fetch_all(pool)
    .await?;
    let top: Vec<(String, i64, f64)> = sqlx::query_as(
        r"select route, count(*), coalesce(avg(duration_us), 0)::float8 / 1000
          from page_views
          where occurred_at >= to_timestamp($1) and occurred_at < to_timestamp($2)
          group by route
          order by count(*) desc, route
          limit $3",
    )
    .bind(from)
    .bind(to)
    .bind(TOP)
    .fetch_all(pool)
    .await?;
    let (total, ok, redirect, client_error, server_error): (i64, i64, i64, i64, i64) = sqlx::query_as(
        r"select count(*),
                 count(*) filter (where status between 200 and 299),
                 count(*) filter (where status between 300 and 399),
                 count(*) filter (where status between 400 and 499),
                 count(*) filter (where status between 500 and 599)
          from page_views
          where occurred_at >= to_timestamp($1) and occurred_at < to_timestamp($2)",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    let agents: Vec<(String, i64)> = sqlx::query_as(
        r"select agent, count(*)
          from page_views
          where occurred_at >= to_timestamp($1) and occurred_at < to_timestamp($2)
          group by agent
          order by count(*) desc, agent",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let events: Vec<(String, i64)> = sqlx::query_as(
        r"select name, count(*)
          from events
          where occurred_at >= to_timestamp($1) and occurred_at < to_timestamp($2)
          group by name
          order by count(*) desc, name
          limit $3",
    )
    .bind(from)
    .bind(to)
    .bind(TOP)
    .fetch_all(pool)
    .await?;
    Ok(Stats {
        from: humantime::format_rfc3339_seconds(window.from).to_string(),
        to: humantime::format_rfc3339_seconds(window.to).to_string(),
        bucket: window.bucket,
        total_views: total,
        views: views.into_iter().map(|(start, views)| BucketCount { start, views }).collect(),
        top_paths: top.into_iter().map(|(route, views, avg_ms)| PathCount { route, views, avg_ms }).collect(),
        status: StatusMix { ok, redirect, client_error, server_error },
        agents: agents.into_iter().map(|(agent, views)| AgentCount { agent, views }).collect(),
        events: events.into_iter().map(|(name, count)| EventCount { name, count }).collect(),
        recorder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn defaults_are_the_last_day_by_hour() {
        let now = at("2024-05-02T12:30:00Z");
        let w = Window::from_query(&q(&[]), now).unwrap();
        assert_eq!((w.from, w.to, w.bucket), (at("2024-05-01T12:30:00Z"), now, Bucket::Hour));
    }

    #[test]
    fn dates_and_utc_timestamps_are_accepted() {
        let w = Window::from_query(
            &q(&[("from", "2024-05-01"), ("to", "2024-05-03T00:00:00Z"), ("bucket", "day")]),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(
            (w.from, w.to, w.bucket),
            (at("2024-05-01T00:00:00Z"), at("2024-05-03T00:00:00Z"), Bucket::Day)
        );
    }

    #[test]
    fn bad_parameters_are_refused_with_the_parameter_named() {
        let now = SystemTime::now();
        for (query, needle) in [
            (q(&[("bucket", "week")]), "`bucket`"),
            (q(&[("from", "yesterday")]), "`from`"),
            (q(&[("to", "2024-13-01")]), "`to`"),
            (q(&[("from", "2024-05-02"), ("to", "2024-05-01")]), "before"),
            (q(&[("from", "2024-05-01"), ("to", "2024-05-01")]), "before"),
            (q(&[("from", "2000-01-01"), ("to", "2024-01-01")]), "bucket=day"),
            (q(&[("buckets", "day")]), "unknown parameter `buckets`"),
        ] {
            let err = Window::from_query(&query, now).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.message().contains(needle), "{needle} not in {}", err.message());
        }
    }
}
