//! Where the service may send requests on a provider's behalf: `https` to public addresses.
//! Loopback is allowed only when the operator says so (a provider on the developer's own
//! machine); private, link-local (the cloud metadata service), unspecified, multicast and
//! shared-address ranges never are. URLs are checked when they are registered, and every
//! resolved address again at connect time, so a name that later resolves elsewhere gains
//! nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// `--allow-loopback-providers` / `ALLOW_LOOPBACK_PROVIDERS=true`.
    pub allow_loopback: bool,
}

fn v4_public(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT)
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15, benchmarking
        || (a == 198 && (b == 18 || b == 19))
        // 240.0.0.0/4, reserved
        || a >= 240)
}

fn v6_public(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // 2001:db8::/32 documentation
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

impl OutboundPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            // ::ffff:a.b.c.d is the IPv4 address a.b.c.d.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        match ip {
            IpAddr::V4(v4) => v4_public(v4),
            IpAddr::V6(v6) => v6_public(v6),
        }
    }

    /// Checks a URL's scheme and, for an address or `localhost`, its host. A name is checked
    /// on its resolved addresses when a connection is made.
    pub fn check_url(&self, url: &Url) -> Result<(), &'static str> {
        let loopback_name =
            matches!(url.host(), Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost"));
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => None,
            None => return Err("must name a host"),
        };
        let loopback = loopback_name || ip.is_some_and(|ip| ip.is_loopback());
        if loopback && !self.allow_loopback {
            return Err(
                "must not be a loopback address (allow loopback providers for development)",
            );
        }
        if let Some(ip) = ip {
            if !self.permits(ip) {
                return Err("must be a public address");
            }
        }
        match url.scheme() {
            "https" => Ok(()),
            "http" if loopback => Ok(()),
            "http" => Err("must use https (http is allowed for allowed loopback hosts only)"),
            _ => Err("must be an https URL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: OutboundPolicy, url: &str) -> Result<(), &'static str> {
        policy.check_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn only_public_https_unless_loopback_is_allowed() {
        let strict = OutboundPolicy::default();
        let dev = OutboundPolicy {
            allow_loopback: true,
        };
        assert!(check(strict, "https://idp.example/token").is_ok());
        assert!(check(strict, "https://93.184.216.34/token").is_ok());
        for refused in [
            "http://idp.example/token",
            "https://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
            "http://localhost:9000/token",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.5/token",
            "https://172.16.3.4/token",
            "https://192.168.1.1/token",
            "https://100.64.0.1/token",
            "https://0.0.0.0/token",
            "https://[::1]/token",
            "https://[fd00::1]/token",
            "https://[fe80::1]/token",
            "https://[::ffff:127.0.0.1]/token",
            "https://[::ffff:169.254.169.254]/token",
            "ftp://idp.example/token",
        ] {
            assert!(check(strict, refused).is_err(), "{refused}");
        }
        // Development: loopback over http, and nothing else more.
        assert!(check(dev, "http://127.0.0.1:9000/token").is_ok());
        assert!(check(dev, "http://localhost:9000/token").is_ok());
        assert!(check(dev, "http://idp.example/token").is_err());
        assert!(check(dev, "https://169.254.169.254/").is_err());
        assert!(check(dev, "https://10.0.0.5/").is_err());
        assert!(dev.permits("127.0.0.1".parse().unwrap()));
        assert!(!strict.permits("127.0.0.1".parse().unwrap()));
        assert!(!dev.permits("169.254.169.254".parse().unwrap()));
        assert!(strict.permits("2606:4700::1111".parse().unwrap()));
    }
}
