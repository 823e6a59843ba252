//! The two text expositions `/metrics` serves, chosen by the scraper's `Accept`: OpenMetrics
//! 1.0, which prometheus-client encodes, and the Prometheus text format 0.0.4, which
//! prometheus-client cannot write and which `promtool check metrics` and older scrapers read.
//! The 0.0.4 text is converted from the OpenMetrics text: `# HELP` and `# TYPE` name a
//! counter by its samples' `_total` name, and OpenMetrics-only lines (`# UNIT`, `# EOF`,
//! `_created` samples, exemplars) are left out.

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
    /// `text/plain; version=0.0.4`.
    PrometheusText,
}

impl Format {
    /// The format `accept` prefers (highest `q`; OpenMetrics on a tie). Without an `Accept`,
    /// or with one that names neither, the 0.0.4 text, as Prometheus' own client libraries
    /// answer: every scraper reads it.
    pub(crate) fn negotiate(accept: Option<&str>) -> Self {
        let mut best: Option<(f32, Self)> = None;
        for range in accept.unwrap_or_default().split(',') {
            let Some((format, q)) = media_range(range) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((best_q, best_format)) => {
                    q > best_q || (q == best_q && format == Self::OpenMetrics && best_format != format)
                }
            };
            if q > 0.0 && better {
                best = Some((q, format));
            }
        }
        best.map_or(Self::PrometheusText, |(_, format)| format)
    }

    /// The `Content-Type` of an answer in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// One `Accept` entry: the format it names (a version we do not write names none) and its
/// `q`.
fn media_range(range: &str) -> Option<(Format, f32)> {
    let mut parts = range.split(';').map(str::trim);
    let media = parts.next()?.to_ascii_lowercase();
    let mut version = None;
    let mut q = 1.0_f32;
    for param in parts {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "version" => version = Some(value.to_owned()),
            "q" => q = value.parse().ok().filter(|q: &f32| (0.0..=1.0).contains(q))?,
            _ => {}
        }
    }
    let format = match (media.as_str(), version.as_deref()) {
        ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => Format::OpenMetrics,
        ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Format::PrometheusText,
        _ => return None,
    };
    Some((format, q))
}

/// The Prometheus text format 0.0.4 of an OpenMetrics text exposition.
pub(crate) fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // OpenMetrics writes `# HELP` before `# TYPE`; the name 0.0.4 gives the family is known
    // only from the type, so the help waits for it.
    let mut help: Option<(&str, &str)> = None;
    // The current family, for its `_created` samples.
    let mut family: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (exposed, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "stateset" => (name.to_owned(), "gauge"),
                "histogram" | "gaugehistogram" => (name.to_owned(), "histogram"),
                "summary" => (name.to_owned(), "summary"),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some((_, text)) = help.take().filter(|(help_name, _)| *help_name == name) {
                out.push_str(&format!("# HELP {exposed} {}\n", help_text(text)));
            }
            out.push_str(&format!("# TYPE {exposed} {kind}\n"));
            family = Some((name, kind));
        } else if line.starts_with('#') {
            // `# UNIT` and `# EOF` have no 0.0.4 form.
        } else if !line.trim().is_empty() {
            let (name, labels, rest) = split_sample(line);
            let created = family.is_some_and(|(family, kind)| {
                kind != "gauge" && name.strip_suffix("_created") == Some(family)
            });
            if !created {
                out.push_str(name);
                out.push_str(labels);
                out.push(' ');
                out.push_str(&sample_value(rest));
                out.push('\n');
            }
        }
    }
    out
}

/// OpenMetrics escapes `"` in help text; 0.0.4 escapes only `\` and newlines.
fn help_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some(next) => {
                out.push('\\');
                out.push(next);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A sample line's name, its `{labels}` (empty when none) and what follows them. Label
/// values are quoted and may hold spaces, braces and escaped quotes.
fn split_sample(line: &str) -> (&str, &str, &str) {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let (name, after) = line.split_at(name_end);
    if !after.starts_with('{') {
        return (name, "", after.trim_start());
    }
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in after.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return (name, &after[..=i], after[i + 1..].trim_start()),
            _ => {}
        }
    }
    (name, after, "")
}

/// `value [timestamp] [# exemplar]` in 0.0.4 form: the exemplar dropped, the timestamp from
/// seconds to milliseconds.
fn sample_value(rest: &str) -> String {
    let rest = rest.split(" # ").next().unwrap_or(rest);
    let mut fields = rest.split_whitespace();
    let value = fields.next().unwrap_or("NaN");
    match fields.next().and_then(|t| t.parse::<f64>().ok()) {
        Some(seconds) => format!("{value} {}", (seconds * 1000.0).round() as i64),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_by_accept_as_prometheus_asks() {
        use Format::*;
        // What Prometheus 2.x and 3.x send.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("text/plain; version=0.0.4; charset=utf-8")),
            PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=1.0.0; charset=utf-8")),
            OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0.2, text/plain;q=0.9")),
            PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("text/plain, application/openmetrics-text")),
            OpenMetrics
        );
        assert_eq!(Format::negotiate(None), PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), PrometheusText);
        assert_eq!(Format::negotiate(Some("application/json")), PrometheusText);
        // A version we do not write, or q=0, is not a choice.
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=2.0.0")),
            PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=x")),
            PrometheusText
        );
    }

    #[test]
    fn converts_openmetrics_to_the_0_0_4_text() {
        let openmetrics = concat!(
            "# HELP app_requests Requests \\\"answered\\\", by route.\n",
            "# TYPE app_requests counter\n",
            "app_requests_total{route=\"a b}\",status=\"200\"} 3\n",
            "app_requests_created{route=\"a b}\",status=\"200\"} 1700000000.5\n",
            "# HELP app_open Open now.\n",
            "# TYPE app_open gauge\n",
            "# UNIT app_open connections\n",
            "app_open 2 1700000000.25\n",
            "# HELP app_wait_seconds Wait.\n",
            "# TYPE app_wait_seconds histogram\n",
            "app_wait_seconds_sum 0.5\n",
            "app_wait_seconds_count 1\n",
            "app_wait_seconds_bucket{le=\"+Inf\"} 1 # {trace_id=\"x # y\"} 0.5\n",
            "# HELP app_build Build.\n",
            "# TYPE app_build info\n",
            "app_build_info{version=\"1\"} 1\n",
            "# EOF\n",
        );
        assert_eq!(
            prometheus_text(openmetrics),
            concat!(
                "# HELP app_requests_total Requests \"answered\", by route.\n",
                "# TYPE app_requests_total counter\n",
                "app_requests_total{route=\"a b}\",status=\"200\"} 3\n",
                "# HELP app_open Open now.\n",
                "# TYPE app_open gauge\n",
                "app_open 2 1700000000250\n",
                "# HELP app_wait_seconds Wait.\n",
                "# TYPE app_wait_seconds histogram\n",
                "app_wait_seconds_sum 0.5\n",
                "app_wait_seconds_count 1\n",
                "app_wait_seconds_bucket{le=\"+Inf\"} 1\n",
                "# HELP app_build_info Build.\n",
                "# TYPE app_build_info gauge\n",
                "app_build_info{version=\"1\"} 1\n",
            )
        );
    }

    #[test]
    fn keeps_escapes_in_help_and_label_values() {
        let text = prometheus_text(concat!(
            "# HELP x Back\\\\slash and\\nline.\n",
            "# TYPE x gauge\n",
            "x{subject=\"CN=\\\"q\\\" \\\\ }\"} 1\n",
            "# EOF\n",
        ));
        assert_eq!(
            text,
            concat!(
                "# HELP x Back\\\\slash and\\nline.\n",
                "# TYPE x gauge\n",
                "x{subject=\"CN=\\\"q\\\" \\\\ }\"} 1\n",
            )
        );
    }
}
