//! Where webhooks may be sent. A target URL must be `http` or `https` with a host; unless the
//! config sets `allow_private_targets = true`, every address it resolves to must be public:
//! loopback, private, link-local, unique-local and other non-global ranges are refused, so a
//! subscription cannot turn annex into a probe of the network it runs in.
//!
//! The check runs when a subscription is created or changed, again before every attempt (DNS
//! answers change), and a third time inside the HTTP client's resolver ([`GuardedResolver`]), so
//! the address actually connected to is the one that was checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a target URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TargetError {
    #[error("`url` is not a valid URL ({0}); expected an absolute http:// or https:// URL")]
    Invalid(String),
    #[error("`url` has scheme `{0}`; webhooks are sent over http:// or https:// only")]
    Scheme(String),
    #[error("`url` has no host; expected an absolute http:// or https:// URL")]
    NoHost,
    #[error(
        "target `{host}` resolves to {addr}, a {range} address; webhooks refuse private targets \
         unless the operator allows them: set allow_private_targets = true in \
         [extensions.webhooks] config (annex.toml or PUT /api/v1/extensions/webhooks/config)"
    )]
    Private { host: String, addr: IpAddr, range: &'static str },
    #[error("target `{host}` cannot be resolved: {error}")]
    Unresolvable { host: String, error: String },
}

impl TargetError {
    /// A stable snake_case code for API errors.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) | Self::Scheme(_) | Self::NoHost => "invalid_url",
            Self::Private { .. } => "private_target",
            Self::Unresolvable { .. } => "unresolvable_target",
        }
    }
}

/// Parses `url` and checks its scheme and host (no network).
pub(crate) fn parse(url: &str) -> Result<Url, TargetError> {
    let parsed = Url::parse(url).map_err(|e| TargetError::Invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::Scheme(parsed.scheme().to_owned()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::NoHost);
    }
    Ok(parsed)
}

/// Resolves `url`'s host and refuses it when any address is not public (unless allowed).
pub(crate) async fn vet(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().ok_or(TargetError::NoHost)?;
    // `[::1]` comes back bracketed from host_str.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((bare, url.port_or_known_default().unwrap_or(80)))
            .await
            .map_err(|e| TargetError::Unresolvable { host: host.to_owned(), error: e.to_string() })?
            .map(|a| a.ip())
            .collect(),
    };
    check_addrs(host, addrs)
}

fn check_addrs(host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Result<(), TargetError> {
    for addr in addrs {
        if let Some(range) = non_public_range(addr) {
            return Err(TargetError::Private { host: host.to_owned(), addr, range });
        }
    }
    Ok(())
}

/// The name of the non-public range `ip` falls in, or `None` for a public address.
pub(crate) fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local",
        _ if a == 0 => "unspecified",
        _ if a == 100 && (64..128).contains(&b) => "shared (carrier-grade NAT)",
        _ if a == 198 && (b == 18 || b == 19) => "benchmarking",
        _ if ip.is_multicast() => "multicast",
        _ if a >= 240 => "reserved",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_range(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) embeds an IPv4 address in the last 32 bits.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = seg;
        return v4_range(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_unique_local() => "unique-local",
        _ if ip.is_unicast_link_local() => "link-local",
        _ if (seg[0] & 0xffc0) == 0xfec0 => "site-local",
        _ if ip.is_multicast() => "multicast",
        _ => return None,
    })
}

/// The HTTP client's DNS resolver: resolves like the system does, then refuses non-public
/// addresses unless allowed, so a DNS answer that changed after [`vet`] cannot slip through.
#[derive(Debug, Default)]
pub(crate) struct GuardedResolver {
    pub(crate) allow_private: Arc<AtomicBool>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private.load(Ordering::Relaxed);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow {
                check_addrs(&host, addrs.iter().map(SocketAddr::ip))?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> Option<&'static str> {
        non_public_range(s.parse().expect("an IP"))
    }

    #[test]
    fn loopback_private_link_local_and_unique_local_addresses_are_not_public() {
        assert_eq!(range("127.0.0.1"), Some("loopback"));
        assert_eq!(range("10.1.2.3"), Some("private"));
        assert_eq!(range("172.16.0.1"), Some("private"));
        assert_eq!(range("192.168.1.1"), Some("private"));
        assert_eq!(range("169.254.169.254"), Some("link-local"));
        assert_eq!(range("0.0.0.0"), Some("unspecified"));
        assert_eq!(range("100.64.0.1"), Some("shared (carrier-grade NAT)"));
        assert_eq!(range("::1"), Some("loopback"));
        assert_eq!(range("fd00::1"), Some("unique-local"));
        assert_eq!(range("fe80::1"), Some("link-local"));
        assert_eq!(range("::ffff:127.0.0.1"), Some("loopback"));
        assert_eq!(range("64:ff9b::a00:1"), Some("private"));
        assert_eq!(range("93.184.216.34"), None);
        assert_eq!(range("2606:2800:220:1:248:1893:25c8:1946"), None);
    }

    #[test]
    fn only_absolute_http_and_https_urls_parse() {
        assert!(parse("https://example.com/hook").is_ok());
        assert!(parse("http://example.com:8080/hook").is_ok());
        assert_eq!(parse("ftp://example.com/").map(|_| ()), Err(TargetError::Scheme("ftp".into())));
        assert!(matches!(parse("/relative"), Err(TargetError::Invalid(_))));
    }

    #[tokio::test]
    async fn a_literal_private_address_is_refused_unless_allowed() {
        let url = parse("http://127.0.0.1:9/hook").expect("parses");
        let err = vet(&url, false).await.expect_err("refused");
        assert_eq!(err.code(), "private_target");
        assert!(err.to_string().contains("allow_private_targets = true"), "{err}");
        assert!(vet(&url, true).await.is_ok());
        let v6 = parse("http://[::1]:9/hook").expect("parses");
        assert!(vet(&v6, false).await.is_err());
    }
}
