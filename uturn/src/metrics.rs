//! Prometheus metrics (`--metrics ADDR:PORT`, `GET /metrics`).
//!
//! Workers count into their own [`Counters`] with relaxed atomics; nothing is
//! copied in the background. A scrape runs [`RelayCollector::encode`], which
//! sums every worker's counters at that moment and writes the OpenMetrics text
//! exposition with `prometheus-client`. No label carries a username or client
//! address: cardinality stays fixed and nothing personal leaks.
//!
//! Traffic the XDP fast path relays never reaches a worker, so it is counted
//! apart: `uturn_xdp_packets_total` / `uturn_xdp_bytes_total` are summed at
//! scrape time from the program's per-rule, per-CPU counters (rules already
//! removed keep their totals), next to the userspace `uturn_relayed_*`.
//! All relayed traffic is the sum of both.
//!
//! The media relay's engines (one per worker, docs/media.md) keep their own
//! counters ([`MediaStats`]), which each worker copies into its [`Counters`];
//! `uturn_media_*` sums them at scrape time (zeros without the media relay,
//! so dashboards see the same series either way).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use uturn_dataplane::{Counters, DropReason};
use uturn_ebpf::XdpFastPath;
use uturn_media::MediaStats;

use crate::api::{Handler, HttpRequest, HttpResponse};
use crate::config::VERSION;

/// `Content-Type` of the OpenMetrics text format that `prometheus-client` writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reads the workers' counters at scrape time.
#[derive(Debug)]
pub struct RelayCollector {
    counters: Arc<[Counters]>,
    backend: &'static str,
    xdp: Option<Arc<XdpFastPath>>,
}

/// The media engines' counters added up.
fn sum_media(all: impl Iterator<Item = MediaStats>) -> MediaStats {
    let mut t = MediaStats::default();
    for s in all {
        let fields = [
            (&mut t.sessions, s.sessions),
            (&mut t.sessions_started, s.sessions_started),
            (&mut t.sessions_ended, s.sessions_ended),
            (&mut t.streams, s.streams),
            (&mut t.viewers, s.viewers),
            (&mut t.ice_checks, s.ice_checks),
            (&mut t.ice_rejected, s.ice_rejected),
            (&mut t.consent_lost, s.consent_lost),
            (&mut t.dtls_connected, s.dtls_connected),
            (&mut t.dtls_failures, s.dtls_failures),
            (&mut t.rtp_in, s.rtp_in),
            (&mut t.rtcp_in, s.rtcp_in),
            (&mut t.bytes_in, s.bytes_in),
            (&mut t.rtp_out, s.rtp_out),
            (&mut t.rtcp_out, s.rtcp_out),
            (&mut t.bytes_out, s.bytes_out),
            (&mut t.srtp_auth_failures, s.srtp_auth_failures),
            (&mut t.srtp_replays, s.srtp_replays),
            (&mut t.malformed, s.malformed),
            (&mut t.unknown_ssrc, s.unknown_ssrc),
            (&mut t.keyframe_requests, s.keyframe_requests),
            (&mut t.nacks_received, s.nacks_received),
            (&mut t.nacks_answered, s.nacks_answered),
            (&mut t.nacks_over_budget, s.nacks_over_budget),
            (&mut t.sr_sent, s.sr_sent),
            (&mut t.rr_sent, s.rr_sent),
            (&mut t.unexpected_media, s.unexpected_media),
            (&mut t.unknown_source, s.unknown_source),
            (&mut t.forwarded_out, s.forwarded_out),
            (&mut t.forwarded_in, s.forwarded_in),
            (&mut t.transmits_dropped, s.transmits_dropped),
            (&mut t.twcc_feedback_sent, s.twcc_feedback_sent),
        ];
        for (total, value) in fields {
            *total = total.wrapping_add(value);
        }
    }
    t
}

/// Every worker's counters added up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Totals {
    to_peer_packets: u64,
    to_peer_bytes: u64,
    to_client_packets: u64,
    to_client_bytes: u64,
    drops: [u64; DropReason::ALL.len()],
    allocations: u64,
    permissions: u64,
    channels: u64,
    auth_failures: u64,
}

impl Totals {
    fn sum(counters: &[Counters]) -> Totals {
        let mut t = Totals::default();
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        for c in counters {
            t.to_peer_packets = t.to_peer_packets.wrapping_add(get(&c.to_peer_packets));
            t.to_peer_bytes = t.to_peer_bytes.wrapping_add(get(&c.to_peer_bytes));
            t.to_client_packets = t.to_client_packets.wrapping_add(get(&c.to_client_packets));
            t.to_client_bytes = t.to_client_bytes.wrapping_add(get(&c.to_client_bytes));
            for (total, drop) in t.drops.iter_mut().zip(c.drops.iter()) {
                *total = total.wrapping_add(get(drop));
            }
            t.allocations = t.allocations.wrapping_add(get(&c.allocations));
            t.permissions = t.permissions.wrapping_add(get(&c.permissions));
            t.channels = t.channels.wrapping_add(get(&c.channels));
            t.auth_failures = t.auth_failures.wrapping_add(get(&c.auth_failures));
        }
        t
    }
}

/// Gauges are signed in `prometheus-client`; our values never come near `i64::MAX`.
fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

impl RelayCollector {
    /// `backend` is `Dataplane::backend()`'s name; the label is `uring` or `epoll`.
    pub fn new(
        counters: Arc<[Counters]>,
        backend: &'static str,
        xdp: Option<Arc<XdpFastPath>>,
    ) -> Self {
        let backend = match backend {
            "io_uring" => "uring",
            other => other,
        };
        RelayCollector {
            counters,
            backend,
            xdp,
        }
    }

    /// The media relay's series (`uturn_media_*`).
    fn encode_media(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = sum_media(self.counters.iter().map(Counters::media));
        let gauges = [
            (
                "uturn_media_sessions",
                "Live media sessions (WHIP publishers and WHEP viewers) past their first ICE check",
                t.sessions,
            ),
            (
                "uturn_media_streams",
                "Streams with a publisher whose fan-out runs",
                t.streams,
            ),
            (
                "uturn_media_viewers",
                "Viewers attached to streams",
                t.viewers,
            ),
        ];
        for (name, help, value) in gauges {
            let g = gauge(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }

        let counters = [
            (
                "uturn_media_sessions_started",
                "Media sessions that completed their first ICE check",
                t.sessions_started,
            ),
            (
                "uturn_media_sessions_ended",
                "Media sessions ended (DELETE, close_notify, consent loss, publisher gone)",
                t.sessions_ended,
            ),
            (
                "uturn_media_ice_checks",
                "ICE connectivity checks answered",
                t.ice_checks,
            ),
            (
                "uturn_media_ice_rejected",
                "ICE checks for a media ufrag that failed authentication or were refused",
                t.ice_rejected,
            ),
            (
                "uturn_media_consent_lost",
                "Media sessions ended by ICE consent expiry (RFC 7675)",
                t.consent_lost,
            ),
            (
                "uturn_media_dtls_handshakes",
                "DTLS handshakes completed",
                t.dtls_connected,
            ),
            (
                "uturn_media_dtls_failures",
                "DTLS associations that failed (fingerprint, profile, timeout, protocol)",
                t.dtls_failures,
            ),
            (
                "uturn_media_keyframe_requests",
                "Keyframe requests (PLI/FIR) sent to publishers",
                t.keyframe_requests,
            ),
            (
                "uturn_media_nacks_received",
                "NACKs received from viewers",
                t.nacks_received,
            ),
            (
                "uturn_media_retransmissions",
                "Packets retransmitted from the packet cache in answer to NACKs",
                t.nacks_answered,
            ),
            (
                "uturn_media_retransmissions_over_budget",
                "NACKed packets not retransmitted because the viewer's retransmission budget was spent",
                t.nacks_over_budget,
            ),
            (
                "uturn_media_twcc_feedback",
                "Transport-wide congestion control feedback messages sent to publishers",
                t.twcc_feedback_sent,
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }

        let mut family = encoder.encode_descriptor(
            "uturn_media_packets",
            "SRTP and SRTCP packets, by protocol and direction",
            None,
            MetricType::Counter,
        )?;
        for (protocol, direction, value) in [
            ("rtp", "in", t.rtp_in),
            ("rtp", "out", t.rtp_out),
            ("rtcp", "in", t.rtcp_in),
            ("rtcp", "out", t.rtcp_out),
        ] {
            let labels = [("protocol", protocol), ("direction", direction)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "uturn_media_bytes",
            "SRTP and SRTCP bytes, by direction",
            None,
            MetricType::Counter,
        )?;
        for (direction, value) in [("in", t.bytes_in), ("out", t.bytes_out)] {
            let labels = [("direction", direction)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "uturn_media_rtcp_reports",
            "Sender reports to viewers and receiver reports to publishers",
            None,
            MetricType::Counter,
        )?;
        for (kind, value) in [("sr", t.sr_sent), ("rr", t.rr_sent)] {
            let labels = [("type", kind)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "uturn_media_dropped_packets",
            "Media datagrams dropped, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in [
            ("srtp_auth", t.srtp_auth_failures),
            ("srtp_replay", t.srtp_replays),
            ("malformed", t.malformed),
            ("unknown_ssrc", t.unknown_ssrc),
            ("unexpected", t.unexpected_media),
            ("unknown_source", t.unknown_source),
            ("queue_full", t.transmits_dropped),
        ] {
            let labels = [("reason", reason)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "uturn_media_mailbox_datagrams",
            "Datagrams handed between workers for a session homed on another one",
            None,
            MetricType::Counter,
        )?;
        for (direction, value) in [("out", t.forwarded_out), ("in", t.forwarded_in)] {
            let labels = [("direction", direction)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// The XDP fast path's series; zeros when it is not attached, so that
    /// dashboards see the same series either way.
    fn encode_xdp(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.xdp.as_ref().map(|x| x.totals()).unwrap_or_default();
        let per_direction = [
            (
                "uturn_xdp_packets",
                "Datagrams relayed by the XDP fast path",
                totals.to_peer.packets,
                totals.to_client.packets,
            ),
            (
                "uturn_xdp_bytes",
                "Payload bytes relayed by the XDP fast path",
                totals.to_peer.bytes,
                totals.to_client.bytes,
            ),
        ];
        for (name, help, to_peer, to_client) in per_direction {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (direction, value) in [("to_peer", to_peer), ("to_client", to_client)] {
                let labels = [("direction", direction)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }

        let events = self.xdp.as_ref().map(|x| x.events()).unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "uturn_xdp_passed_packets",
            "Datagrams of offloaded channels the XDP program passed to userspace, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in [
            ("length", events.pass_length),
            ("route", events.pass_route),
            ("forwarding_disabled", events.pass_forwarding_disabled),
            ("no_neighbour", events.pass_no_neighbour),
            ("mtu", events.pass_mtu),
            ("headroom", events.pass_headroom),
            ("checksum", events.pass_checksum),
        ] {
            let labels = [("reason", reason)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }

        let rules = gauge(self.xdp.as_ref().map_or(0, |x| x.rules() as u64));
        rules.encode(encoder.encode_descriptor(
            "uturn_xdp_rules",
            "Channel bindings offloaded to XDP",
            None,
            rules.metric_type(),
        )?)?;

        let mut family = encoder.encode_descriptor(
            "uturn_xdp_attached",
            "1 for each interface the XDP program is attached to",
            None,
            MetricType::Gauge,
        )?;
        for iface in self.xdp.iter().flat_map(|x| x.interfaces()) {
            let labels = [("iface", iface.as_str())];
            gauge(1).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Collector for RelayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = Totals::sum(&self.counters);

        let gauges = [
            ("uturn_allocations", "Live allocations", t.allocations),
            ("uturn_permissions", "Live permissions", t.permissions),
            ("uturn_channels", "Live channel bindings", t.channels),
            (
                "uturn_workers",
                "Dataplane worker threads",
                self.counters.len() as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let g = gauge(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }

        // Counter names get their `_total` suffix from the encoder.
        let per_direction = [
            (
                "uturn_relayed_packets",
                "Relayed datagrams",
                t.to_peer_packets,
                t.to_client_packets,
            ),
            (
                "uturn_relayed_bytes",
                "Relayed payload bytes",
                t.to_peer_bytes,
                t.to_client_bytes,
            ),
        ];
        for (name, help, to_peer, to_client) in per_direction {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (direction, value) in [("to_peer", to_peer), ("to_client", to_client)] {
                let labels = [("direction", direction)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "uturn_dropped_packets",
            "Datagrams dropped, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in DropReason::ALL.iter().zip(t.drops) {
            let labels = [("reason", reason.as_str())];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }

        let failures = ConstCounter::new(t.auth_failures);
        failures.encode(encoder.encode_descriptor(
            "uturn_auth_failures",
            "Requests rejected by authentication",
            None,
            failures.metric_type(),
        )?)?;

        // An info metric: the encoder writes `uturn_info{...} 1`.
        let mut info = encoder.encode_descriptor(
            "uturn",
            "Relay build and backend",
            None,
            MetricType::Info,
        )?;
        info.encode_info(&[("backend", self.backend), ("version", VERSION)])?;

        self.encode_xdp(&mut encoder)?;
        self.encode_media(&mut encoder)
    }
}

/// Serves `GET /metrics`.
#[derive(Debug)]
pub struct MetricsEndpoint {
    registry: Registry,
}

impl MetricsEndpoint {
    pub fn new(
        counters: Arc<[Counters]>,
        backend: &'static str,
        xdp: Option<Arc<XdpFastPath>>,
    ) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(RelayCollector::new(counters, backend, xdp)));
        MetricsEndpoint { registry }
    }

    /// The text exposition of every metric, as a scrape sees it.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Handler for MetricsEndpoint {
    fn handle(&self, request: &HttpRequest<'_>) -> Option<HttpResponse> {
        if request.path() != "/metrics" {
            return None;
        }
        if request.method != "GET" {
            return Some(HttpResponse::method_not_allowed("GET"));
        }
        Some(match self.render() {
            Ok(body) => HttpResponse::new(200, CONTENT_TYPE, body),
            Err(_) => HttpResponse::json_error(500, "cannot encode metrics"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(n: usize) -> Arc<[Counters]> {
        (0..n).map(|_| Counters::default()).collect()
    }

    /// The sample line for `name` (with labels, if any), parsed as a number.
    fn sample(text: &str, series: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn sums_workers_at_scrape_time() {
        let c = counters(2);
        c[0].to_peer_packets.store(3, Ordering::Relaxed);
        c[1].to_peer_packets.store(4, Ordering::Relaxed);
        c[0].to_peer_bytes.store(300, Ordering::Relaxed);
        c[1].to_client_packets.store(5, Ordering::Relaxed);
        c[1].to_client_bytes.store(500, Ordering::Relaxed);
        c[0].allocations.store(2, Ordering::Relaxed);
        c[1].allocations.store(1, Ordering::Relaxed);
        c[0].permissions.store(6, Ordering::Relaxed);
        c[1].channels.store(7, Ordering::Relaxed);
        c[0].auth_failures.store(9, Ordering::Relaxed);
        c[1].drop(DropReason::NoPermission);
        c[1].drop(DropReason::NoPermission);
        c[0].drop(DropReason::Malformed);

        let metrics = MetricsEndpoint::new(c.clone(), "epoll", None);
        let text = metrics.render().unwrap();

        assert_eq!(sample(&text, "uturn_allocations"), Some(3));
        assert_eq!(sample(&text, "uturn_permissions"), Some(6));
        assert_eq!(sample(&text, "uturn_channels"), Some(7));
        assert_eq!(sample(&text, "uturn_workers"), Some(2));
        assert_eq!(
            sample(&text, "uturn_relayed_packets_total{direction=\"to_peer\"}"),
            Some(7)
        );
        assert_eq!(
            sample(
                &text,
                "uturn_relayed_packets_total{direction=\"to_client\"}"
            ),
            Some(5)
        );
        assert_eq!(
            sample(&text, "uturn_relayed_bytes_total{direction=\"to_peer\"}"),
            Some(300)
        );
        assert_eq!(
            sample(&text, "uturn_relayed_bytes_total{direction=\"to_client\"}"),
            Some(500)
        );
        assert_eq!(
            sample(
                &text,
                "uturn_dropped_packets_total{reason=\"no_permission\"}"
            ),
            Some(2)
        );
        assert_eq!(
            sample(&text, "uturn_dropped_packets_total{reason=\"malformed\"}"),
            Some(1)
        );
        assert_eq!(sample(&text, "uturn_auth_failures_total"), Some(9));
        let info = format!("uturn_info{{backend=\"epoll\",version=\"{VERSION}\"}}");
        assert_eq!(sample(&text, &info), Some(1));
        assert!(text.ends_with("# EOF\n"));

        // Read at scrape time: a later change shows in the next scrape.
        c[0].allocations.store(0, Ordering::Relaxed);
        let text = metrics.render().unwrap();
        assert_eq!(sample(&text, "uturn_allocations"), Some(1));
    }

    #[test]
    fn every_drop_reason_is_exported() {
        let metrics = MetricsEndpoint::new(counters(1), "io_uring", None);
        let text = metrics.render().unwrap();
        let info = format!("uturn_info{{backend=\"uring\",version=\"{VERSION}\"}}");
        assert_eq!(sample(&text, &info), Some(1));
        for reason in DropReason::ALL {
            let series = format!(
                "uturn_dropped_packets_total{{reason=\"{}\"}}",
                reason.as_str()
            );
            assert_eq!(sample(&text, &series), Some(0), "{series} missing");
        }
        assert!(text.contains("# TYPE uturn_relayed_packets counter"));
        // Without XDP the fast-path series are there, at zero.
        for direction in ["to_peer", "to_client"] {
            for name in ["uturn_xdp_packets_total", "uturn_xdp_bytes_total"] {
                let series = format!("{name}{{direction=\"{direction}\"}}");
                assert_eq!(sample(&text, &series), Some(0), "{series} missing");
            }
        }
        assert_eq!(sample(&text, "uturn_xdp_rules"), Some(0));
        assert!(!text.contains("uturn_xdp_attached{"));
        assert!(text.contains("# TYPE uturn_allocations gauge"));
    }

    #[test]
    fn endpoint_routes() {
        let metrics = MetricsEndpoint::new(counters(1), "epoll", None);
        let get = HttpRequest::new("GET", "/metrics");
        let response = metrics.handle(&get).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.content_type, CONTENT_TYPE);
        assert!(response.body.contains("uturn_workers 1"));

        let post = HttpRequest::new("POST", "/metrics");
        assert_eq!(metrics.handle(&post).unwrap().status, 405);

        let other = HttpRequest::new("GET", "/other");
        assert!(metrics.handle(&other).is_none());
    }

    #[test]
    fn media_series_sum_every_engine() {
        let engines = vec![
            MediaStats {
                sessions: 2,
                viewers: 1,
                streams: 1,
                rtp_in: 10,
                rtp_out: 40,
                bytes_out: 4000,
                srtp_auth_failures: 3,
                keyframe_requests: 1,
                sr_sent: 5,
                forwarded_out: 7,
                ..MediaStats::default()
            },
            MediaStats {
                sessions: 3,
                viewers: 3,
                rtp_out: 2,
                srtp_replays: 4,
                nacks_answered: 6,
                dtls_failures: 1,
                twcc_feedback_sent: 9,
                ..MediaStats::default()
            },
        ];
        let c = counters(2);
        for (worker, stats) in c.iter().zip(&engines) {
            worker.set_media(stats);
        }
        let metrics = MetricsEndpoint::new(c, "epoll", None);
        let text = metrics.render().unwrap();
        for (series, value) in [
            ("uturn_media_sessions", 5),
            ("uturn_media_viewers", 4),
            ("uturn_media_streams", 1),
            (
                "uturn_media_packets_total{protocol=\"rtp\",direction=\"in\"}",
                10,
            ),
            (
                "uturn_media_packets_total{protocol=\"rtp\",direction=\"out\"}",
                42,
            ),
            ("uturn_media_bytes_total{direction=\"out\"}", 4000),
            ("uturn_media_dropped_packets_total{reason=\"srtp_auth\"}", 3),
            (
                "uturn_media_dropped_packets_total{reason=\"srtp_replay\"}",
                4,
            ),
            ("uturn_media_keyframe_requests_total", 1),
            ("uturn_media_retransmissions_total", 6),
            ("uturn_media_twcc_feedback_total", 9),
            ("uturn_media_dtls_failures_total", 1),
            ("uturn_media_rtcp_reports_total{type=\"sr\"}", 5),
            ("uturn_media_mailbox_datagrams_total{direction=\"out\"}", 7),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
        }
        assert!(text.contains("# TYPE uturn_media_sessions gauge"));
        assert!(text.ends_with("# EOF\n"));

        // Without the media relay the series are there, at zero.
        let text = MetricsEndpoint::new(counters(1), "epoll", None)
            .render()
            .unwrap();
        assert_eq!(sample(&text, "uturn_media_sessions"), Some(0));
        assert_eq!(
            sample(
                &text,
                "uturn_media_dropped_packets_total{reason=\"malformed\"}"
            ),
            Some(0)
        );
    }
}
