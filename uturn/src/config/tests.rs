//! Config parsing, merging, validation and what is built from it.

use std::sync::Arc;

use super::settings::{parse_fib_trie, parse_if_inet6};
use super::*;

const PRIMARY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// A command line, split at whitespace.
fn cli(args: &str) -> Config {
    Config::try_parse_from(std::iter::once("uturn").chain(args.split_whitespace())).unwrap()
}

fn cli_err(args: &str) -> clap::error::ErrorKind {
    let argv = std::iter::once("uturn").chain(args.split_whitespace());
    Config::try_parse_from(argv).unwrap_err().kind()
}

fn toml(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("test.toml"))
}

fn resolve(config: Config) -> Result<Settings, ConfigError> {
    config.resolve(|| Some(PRIMARY))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn defaults() {
    let s = resolve(cli("")).unwrap();
    assert_eq!(s.listen, vec![addr("0.0.0.0:3478")]);
    assert_eq!(s.relay.ipv4, Some(PRIMARY));
    assert_eq!(s.relay.ipv6, None);
    assert_eq!(s.realm, "uturn");
    assert_eq!((s.min_port, s.max_port), (49152, 65535));
    assert_eq!(s.software, Some(format!("uturn/{VERSION}")));
    assert_eq!(s.max_lifetime, Duration::from_secs(3600));
    assert_eq!(s.nonce_lifetime, Duration::from_secs(3600));
    assert_eq!(s.rest_ttl, Duration::from_secs(86400));
    assert_eq!(s.backend, BackendChoice::Auto);
    assert!(s.threads >= 1);
    assert!(s.pin);
    assert!(!s.strict_channels);
    assert!(!s.has_credentials());
    assert_eq!((s.user_quota, s.total_quota), (0, 0));
    assert_eq!((s.api, s.metrics), (None, None));
}

/// The two command lines the outside checks use.
#[test]
fn contract_command_lines() {
    let base = "--listen 127.0.0.1:3478 --relay-ip 127.0.0.1 --realm test";
    let with_user = format!("{base} --user alice:secret --allow-peer 127.0.0.0/8");
    let s = resolve(cli(&with_user)).unwrap();
    assert_eq!(s.listen, vec![addr("127.0.0.1:3478")]);
    assert_eq!(s.relay.ipv4, Some(Ipv4Addr::LOCALHOST));
    assert_eq!(s.realm, "test");
    assert_eq!(s.users, vec![("alice".to_owned(), "secret".to_owned())]);
    assert_eq!(s.allow_peer, vec!["127.0.0.0/8".parse::<IpNet>().unwrap()]);

    let with_secret = format!("{base} --auth-secret SECRET --allow-peer 127.0.0.0/8");
    let s = resolve(cli(&with_secret)).unwrap();
    assert_eq!(s.secrets, vec!["SECRET".to_owned()]);
    assert!(s.users.is_empty());
    assert!(s.has_credentials());
}

#[test]
fn every_flag() {
    let s = resolve(cli("--listen 192.0.2.1:3478 --listen [2001:db8::1]:3478 --relay-ip 192.0.2.1 --relay-ip 2001:db8::1 --external-ip 203.0.113.9 --realm r --min-port 50000 --max-port 50100 --user a:p:with:colons --user b: --auth-secret s1 --auth-secret s2 --allow-peer 10.0.0.0/8 --deny-peer 10.1.0.0/16 --deny-peer 2001:db8::/32 --threads 3 --backend epoll --api 127.0.0.1:8080 --metrics 127.0.0.1:9090 --log-level debug --software x/1 --user-quota 4 --total-quota 100 --strict-channels --max-lifetime 1800 --nonce-lifetime 60 --rest-ttl 600 --no-pin"))
    .unwrap();
    assert_eq!(
        s.listen,
        vec![addr("192.0.2.1:3478"), addr("[2001:db8::1]:3478")]
    );
    assert_eq!(s.relay.ipv4, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(s.relay.ipv6, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(s.relay.external_ipv4, Some(Ipv4Addr::new(203, 0, 113, 9)));
    assert_eq!(s.realm, "r");
    assert_eq!((s.min_port, s.max_port), (50000, 50100));
    assert_eq!(
        s.users,
        vec![
            ("a".to_owned(), "p:with:colons".to_owned()),
            ("b".to_owned(), String::new())
        ]
    );
    assert_eq!(s.secrets, vec!["s1".to_owned(), "s2".to_owned()]);
    assert_eq!(s.allow_peer.len(), 1);
    assert_eq!(s.deny_peer.len(), 2);
    assert_eq!(s.threads, 3);
    assert_eq!(s.backend, BackendChoice::Epoll);
    assert_eq!(s.api, Some(addr("127.0.0.1:8080")));
    assert_eq!(s.metrics, Some(addr("127.0.0.1:9090")));
    assert_eq!(s.software.as_deref(), Some("x/1"));
    assert_eq!((s.user_quota, s.total_quota), (4, 100));
    assert!(s.strict_channels);
    assert_eq!(s.max_lifetime, Duration::from_secs(1800));
    assert_eq!(s.nonce_lifetime, Duration::from_secs(60));
    assert_eq!(s.rest_ttl, Duration::from_secs(600));
    assert!(!s.pin);
    assert_eq!(cli("--log-level trace").log_level(), LogLevel::Trace);
    assert_eq!(cli("").log_level(), LogLevel::Info);
    assert_eq!(resolve(cli("--no-software")).unwrap().software, None);
    assert_eq!(
        resolve(cli("--backend uring")).unwrap().backend,
        BackendChoice::Uring
    );
}

#[test]
fn toml_keys_are_flag_names() {
    let file = toml(
        r#"
        listen = ["127.0.0.1:3479"]
        relay-ip = ["127.0.0.1"]
        external-ip = ["203.0.113.9/127.0.0.1"]
        realm = "file"
        min-port = 40000
        max-port = 40010
        user = ["alice:secret"]
        auth-secret = ["s"]
        allow-peer = ["127.0.0.0/8"]
        deny-peer = ["127.0.0.9/32"]
        threads = 2
        backend = "epoll"
        api = "127.0.0.1:8080"
        metrics = "127.0.0.1:9090"
        log-level = "warn"
        software = "sw"
        no-software = false
        user-quota = 1
        total-quota = 2
        strict-channels = true
        max-lifetime = 100
        nonce-lifetime = 200
        rest-ttl = 300
        no-pin = true
        "#,
    )
    .unwrap();
    assert_eq!(file.log_level(), LogLevel::Warn);
    let s = resolve(file).unwrap();
    assert_eq!(s.listen, vec![addr("127.0.0.1:3479")]);
    assert_eq!(s.relay.ipv4, Some(Ipv4Addr::LOCALHOST));
    assert_eq!(s.relay.external_ipv4, Some(Ipv4Addr::new(203, 0, 113, 9)));
    assert_eq!(s.realm, "file");
    assert_eq!((s.min_port, s.max_port), (40000, 40010));
    assert_eq!(s.users, vec![("alice".to_owned(), "secret".to_owned())]);
    assert_eq!(s.secrets, vec!["s".to_owned()]);
    assert_eq!(s.threads, 2);
    assert_eq!(s.backend, BackendChoice::Epoll);
    assert_eq!(s.software.as_deref(), Some("sw"));
    assert_eq!((s.user_quota, s.total_quota), (1, 2));
    assert!(s.strict_channels);
    assert_eq!(s.max_lifetime, Duration::from_secs(100));
    assert_eq!(s.nonce_lifetime, Duration::from_secs(200));
    assert_eq!(s.rest_ttl, Duration::from_secs(300));
    assert!(!s.pin);
}

#[test]
fn flags_win_and_lists_are_replaced() {
    let file = toml(
        r#"
        listen = ["127.0.0.1:3479", "127.0.0.2:3479"]
        realm = "file"
        user = ["alice:secret", "bob:pw"]
        min-port = 40000
        threads = 2
        "#,
    )
    .unwrap();
    let merged = cli("--realm flag --user carol:x --threads 5").over(file);
    let s = resolve(merged).unwrap();
    assert_eq!(s.realm, "flag");
    assert_eq!(s.threads, 5);
    // The command line's list replaces the file's, it is not appended.
    assert_eq!(s.users, vec![("carol".to_owned(), "x".to_owned())]);
    // What the command line does not mention comes from the file.
    assert_eq!(
        s.listen,
        vec![addr("127.0.0.1:3479"), addr("127.0.0.2:3479")]
    );
    assert_eq!(s.min_port, 40000);
    // ... and what neither mentions is the default.
    assert_eq!(s.max_port, 65535);

    let file = toml(r#"listen = ["127.0.0.1:3479"]"#).unwrap();
    let s = resolve(cli("--listen 127.0.0.3:1000").over(file)).unwrap();
    assert_eq!(s.listen, vec![addr("127.0.0.3:1000")]);
}

#[test]
fn load_reads_the_file() {
    let dir = std::env::temp_dir().join(format!("uturn-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("uturn.toml");
    std::fs::write(&path, "realm = \"from-file\"\nthreads = 7\n").unwrap();
    let path_arg = path.to_str().unwrap();
    let config = cli(&format!("--config {path_arg} --threads 1"))
        .load()
        .unwrap();
    assert_eq!(config.realm.as_deref(), Some("from-file"));
    assert_eq!(config.threads, Some(1));

    let missing = dir.join("missing.toml");
    let err = cli(&format!("--config {}", missing.display()))
        .load()
        .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn example_config_is_valid() {
    let config = toml(include_str!("../../../config/uturn.toml")).unwrap();
    let s = resolve(config).unwrap();
    assert_eq!(s.listen, vec![addr("0.0.0.0:3478")]);
    assert!(s.has_credentials());
    // The demo page and WHIP/WHEP are on by default, on loopback only.
    assert_eq!(s.api, Some(addr("127.0.0.1:8080")));
}

#[test]
fn bad_addresses() {
    use clap::error::ErrorKind::ValueValidation;
    assert_eq!(cli_err("--listen nope"), ValueValidation);
    assert_eq!(cli_err("--listen 127.0.0.1"), ValueValidation);
    assert_eq!(cli_err("--relay-ip 1.2.3"), ValueValidation);
    assert_eq!(cli_err("--allow-peer 10.0.0.0/33"), ValueValidation);
    assert_eq!(cli_err("--api localhost"), ValueValidation);
    assert_eq!(
        cli_err("--backend dpdk"),
        clap::error::ErrorKind::InvalidValue
    );
    assert!(matches!(
        toml(r#"listen = ["nope"]"#),
        Err(ConfigError::Parse { .. })
    ));
    assert!(matches!(
        toml(r#"deny-peer = ["x/8"]"#),
        Err(ConfigError::Parse { .. })
    ));
    assert!(matches!(
        resolve(cli("--listen 127.0.0.1:0")),
        Err(ConfigError::ListenerPortZero(_))
    ));
    assert!(matches!(
        resolve(cli("--listen 127.0.0.1:1 --listen 127.0.0.1:1")),
        Err(ConfigError::DuplicateListener(_))
    ));
    assert!(matches!(
        resolve(cli("--relay-ip 0.0.0.0")),
        Err(ConfigError::UnspecifiedRelayIp(_))
    ));
}

#[test]
fn port_range() {
    assert!(matches!(
        resolve(cli("--min-port 50001 --max-port 50000")),
        Err(ConfigError::PortRange {
            min: 50001,
            max: 50000
        })
    ));
    assert!(matches!(
        resolve(cli("--min-port 0")),
        Err(ConfigError::MinPortZero)
    ));
    let s = resolve(cli("--min-port 50000 --max-port 50000")).unwrap();
    assert_eq!((s.min_port, s.max_port), (50000, 50000));
    assert_eq!(
        cli_err("--max-port 65536"),
        clap::error::ErrorKind::ValueValidation
    );
}

#[test]
fn user_needs_a_colon() {
    assert!(matches!(
        "alice".parse::<UserSpec>(),
        Err(ConfigError::UserWithoutColon)
    ));
    assert!(matches!(
        ":pw".parse::<UserSpec>(),
        Err(ConfigError::EmptyUserName)
    ));
    assert_eq!(
        cli_err("--user alice"),
        clap::error::ErrorKind::ValueValidation
    );
    let err = toml(r#"user = ["alice"]"#).unwrap_err();
    assert!(err.to_string().contains("NAME:PASSWORD"), "{err}");
    assert!(matches!(
        resolve(cli("--user a:1 --user a:2")),
        Err(ConfigError::DuplicateUser(_))
    ));
    // Passwords stay out of Debug output.
    let user: UserSpec = "alice:hunter2".parse().unwrap();
    assert!(!format!("{user:?}").contains("hunter2"));
}

#[test]
fn unknown_toml_keys() {
    let err = toml("listen = [\"127.0.0.1:3478\"]\nlisten-port = 3478\n").unwrap_err();
    assert!(err.to_string().contains("listen-port"), "{err}");
    // `config` is a command-line flag only.
    assert!(toml("config = \"other.toml\"").is_err());
    // Keys are kebab-case, like the flags.
    assert!(toml("min_port = 1").is_err());
}

#[test]
fn no_listener() {
    let file = toml("listen = []").unwrap();
    assert!(matches!(resolve(file), Err(ConfigError::NoListener)));
}

#[test]
fn other_values() {
    assert!(matches!(
        resolve(cli("--threads 0")),
        Err(ConfigError::ZeroThreads)
    ));
    for flag in ["--max-lifetime", "--nonce-lifetime", "--rest-ttl"] {
        assert!(
            matches!(
                resolve(cli(&format!("{flag} 0"))),
                Err(ConfigError::ZeroSeconds(_))
            ),
            "{flag}"
        );
    }
    assert!(matches!(
        resolve(Config::try_parse_from(["uturn", "--realm", ""]).unwrap()),
        Err(ConfigError::EmptyRealm)
    ));
    assert!(matches!(
        resolve(cli("--relay-ip 192.0.2.1 --relay-ip 192.0.2.2")),
        Err(ConfigError::TwoRelayIps("IPv4"))
    ));
    assert!(matches!(
        resolve(cli("--relay-ip 2001:db8::1 --relay-ip 2001:db8::2")),
        Err(ConfigError::TwoRelayIps("IPv6"))
    ));
    assert_eq!(
        cli_err("--log-level loud"),
        clap::error::ErrorKind::InvalidValue
    );
}

#[test]
fn external_ip_parsing() {
    let e: ExternalIp = "203.0.113.9".parse().unwrap();
    assert_eq!(e.public, IpAddr::from([203, 0, 113, 9]));
    assert_eq!(e.private, None);
    let e: ExternalIp = "203.0.113.9/10.0.0.5".parse().unwrap();
    assert_eq!(e.private, Some(IpAddr::from([10, 0, 0, 5])));
    let e: ExternalIp = "2001:db8::9/fd00::5".parse().unwrap();
    assert_eq!(e.public, "2001:db8::9".parse::<IpAddr>().unwrap());
    assert_eq!(e.private, Some("fd00::5".parse().unwrap()));
    for bad in [
        "",
        "x",
        "203.0.113.9/",
        "/10.0.0.5",
        "203.0.113.9/x",
        "0.0.0.0",
        "1.2.3.4/0.0.0.0",
        "1.2.3.4/5.6.7.8/9.9.9.9",
    ] {
        assert!(
            matches!(
                bad.parse::<ExternalIp>(),
                Err(ConfigError::BadExternalIp(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        "203.0.113.9/fd00::5".parse::<ExternalIp>(),
        Err(ConfigError::ExternalIpFamilies(_))
    ));
    assert_eq!(
        cli_err("--external-ip x"),
        clap::error::ErrorKind::ValueValidation
    );
}

#[test]
fn external_ip_maps_to_relay_ip() {
    // PUBLIC only: advertised for the relay IP.
    let s = resolve(cli("--relay-ip 10.0.0.5 --external-ip 203.0.113.9")).unwrap();
    assert_eq!(s.relay.ipv4, Some(Ipv4Addr::new(10, 0, 0, 5)));
    assert_eq!(s.relay.external_ipv4, Some(Ipv4Addr::new(203, 0, 113, 9)));
    // PUBLIC/PRIVATE without --relay-ip: PRIVATE is where relays bind.
    let s = resolve(cli("--external-ip 203.0.113.9/10.0.0.6")).unwrap();
    assert_eq!(s.relay.ipv4, Some(Ipv4Addr::new(10, 0, 0, 6)));
    assert_eq!(s.relay.external_ipv4, Some(Ipv4Addr::new(203, 0, 113, 9)));
    // PRIVATE agreeing with --relay-ip is fine; disagreeing is an error.
    assert!(resolve(cli(
        "--relay-ip 10.0.0.6 --external-ip 203.0.113.9/10.0.0.6"
    ))
    .is_ok());
    assert!(matches!(
        resolve(cli(
            "--relay-ip 10.0.0.5 --external-ip 203.0.113.9/10.0.0.6"
        )),
        Err(ConfigError::ExternalPrivateNotRelay { .. })
    ));
    // One per family.
    assert!(matches!(
        resolve(cli("--external-ip 203.0.113.9 --external-ip 203.0.113.10")),
        Err(ConfigError::TwoExternalIps("IPv4"))
    ));
    // An IPv6 public address needs an IPv6 relay address.
    assert!(matches!(
        resolve(cli("--external-ip 2001:db8::9")),
        Err(ConfigError::ExternalWithoutRelay(_, "IPv6"))
    ));
    let s = resolve(cli("--relay-ip fd00::5 --external-ip 2001:db8::9")).unwrap();
    assert_eq!(s.relay.ipv6, Some("fd00::5".parse().unwrap()));
    assert_eq!(s.relay.external_ipv6, Some("2001:db8::9".parse().unwrap()));
    // An explicit IPv6-only --relay-ip: no IPv4 relay address is made up,
    // so an IPv4 external IP has nothing to map to.
    assert_eq!(s.relay.ipv4, None);
    assert!(matches!(
        resolve(cli(
            "--relay-ip fd00::5 --external-ip 2001:db8::9 --external-ip 203.0.113.9"
        )),
        Err(ConfigError::ExternalWithoutRelay(_, "IPv4"))
    ));
}

#[test]
fn relay_ip_derivation() {
    // A specific first listener is the relay IP.
    let s = resolve(cli("--listen 192.0.2.3:3478 --listen 0.0.0.0:3479")).unwrap();
    assert_eq!(s.relay.ipv4, Some(Ipv4Addr::new(192, 0, 2, 3)));
    let s = resolve(cli("--listen [2001:db8::3]:3478")).unwrap();
    assert_eq!(s.relay.ipv6, Some("2001:db8::3".parse().unwrap()));
    assert_eq!(s.relay.ipv4, None);
    // A wildcard listener: the host's primary IPv4.
    let s = resolve(cli("--listen 0.0.0.0:3478")).unwrap();
    assert_eq!(s.relay.ipv4, Some(PRIMARY));
    assert!(!s.relay.fallback);
    // No route: loopback, flagged so a warning is logged.
    let s = cli("--listen [::]:3478").resolve(|| None).unwrap();
    assert_eq!(s.relay.ipv4, Some(Ipv4Addr::LOCALHOST));
    assert!(s.relay.fallback);
    // An explicit relay IP is never second-guessed.
    let s = resolve(cli("--listen 192.0.2.3:3478 --relay-ip 192.0.2.4")).unwrap();
    assert_eq!(s.relay.ipv4, Some(Ipv4Addr::new(192, 0, 2, 4)));
}

#[test]
fn primary_ipv4_is_specific() {
    // Depends on the host's routes; whatever it finds must be usable.
    if let Some(ip) = primary_ipv4() {
        assert!(!ip.is_unspecified());
    }
}

#[test]
fn host_ips_from_procfs() {
    let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
               \x20    +-- 127.0.0.0/8 2 0 2\n           |-- 127.0.0.0\n              /8 host LOCAL\n\
               \x20          |-- 127.0.0.1\n              /32 host LOCAL\n\
               \x20       |-- 127.255.255.255\n           /32 link BROADCAST\n\
               \x20          |-- 192.0.2.2\n              /32 host LOCAL\n\
               Local:\n           |-- 127.0.0.1\n              /32 host LOCAL\n";
    assert_eq!(
        parse_fib_trie(fib),
        vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([192, 0, 2, 2])]
    );
    let inet6 = "fd000000000000000000000000000002 04 40 00 82     eth0\n\
                 00000000000000000000000000000001 01 80 10 80       lo\n\
                 garbage\n";
    assert_eq!(
        parse_if_inet6(inet6),
        vec![
            "fd00::2".parse::<IpAddr>().unwrap(),
            "::1".parse::<IpAddr>().unwrap()
        ]
    );
    let mut s = resolve(cli("--listen 0.0.0.0:3478")).unwrap();
    assert!(s.has_wildcard_listener());
    s.host_ips = parse_fib_trie(fib);
    assert!(s.own_ips().contains(&IpAddr::from([192, 0, 2, 2])));
}

#[test]
fn turn_uris() {
    let s = resolve(cli("--listen 0.0.0.0:3478 --listen 192.0.2.1:3479")).unwrap();
    assert_eq!(
        s.turn_uris(),
        vec![
            format!("turn:{PRIMARY}:3478?transport=udp"),
            "turn:192.0.2.1:3479?transport=udp".to_owned(),
        ]
    );
    let s = resolve(cli("--listen 0.0.0.0:3478 --listen 10.0.0.5:3478 --listen [::]:3478 --relay-ip 10.0.0.5 --relay-ip 2001:db8::5 --external-ip 203.0.113.9"))
    .unwrap();
    // The external address hides both IPv4 listeners (deduplicated).
    assert_eq!(
        s.turn_uris(),
        vec![
            "turn:203.0.113.9:3478?transport=udp".to_owned(),
            "turn:[2001:db8::5]:3478?transport=udp".to_owned(),
        ]
    );
}

#[test]
fn own_ips_cover_listeners_relays_and_externals() {
    let s = resolve(cli("--listen 0.0.0.0:3478 --listen 192.0.2.1:3479 --relay-ip 10.0.0.5 --external-ip 203.0.113.9"))
    .unwrap();
    let own = s.own_ips();
    for ip in ["192.0.2.1", "10.0.0.5", "203.0.113.9"] {
        assert!(own.contains(&ip.parse().unwrap()), "{ip}");
    }
    assert!(!own.iter().any(IpAddr::is_unspecified));
}

/// The contract command line: peers on 127.0.0.1 (the relay's own IP) must be
/// reachable on any port, except the listener itself, or a relay on loopback
/// cannot reach a peer on loopback.
#[test]
fn allowed_loopback_is_not_held_to_relay_ports() {
    let args = "--listen 127.0.0.1:3478 --relay-ip 127.0.0.1 --realm test \
                --user alice:secret --allow-peer 127.0.0.0/8 --min-port 50000 --max-port 50010";
    let s = resolve(cli(args)).unwrap();
    let filter = s.server_config().peer_filter;
    assert!(filter.check_addr(addr("127.0.0.1:40000")).is_ok());
    assert!(filter.check_addr(addr("127.0.0.1:3478")).is_err());
    assert!(filter.check_ip("127.0.0.1".parse().unwrap()).is_ok());

    // Without the explicit allow, loopback is denied by default anyway.
    let s = resolve(cli("--listen 127.0.0.1:3478 --relay-ip 127.0.0.1")).unwrap();
    assert_eq!(s.own_ips(), vec![IpAddr::from([127, 0, 0, 1])]);
    let filter = s.server_config().peer_filter;
    assert!(filter.check_addr(addr("127.0.0.1:40000")).is_err());
    // A non-loopback own IP inside an allowed range stays held to relay ports.
    let s = resolve(cli(
        "--listen 10.0.0.5:3478 --allow-peer 10.0.0.0/8 --min-port 50000 --max-port 50010",
    ))
    .unwrap();
    let filter = s.server_config().peer_filter;
    assert!(filter.check_addr(addr("10.0.0.6:22")).is_ok());
    assert!(filter.check_addr(addr("10.0.0.5:22")).is_err());
    assert!(filter.check_addr(addr("10.0.0.5:50001")).is_ok());
}

#[test]
fn builds_server_and_dataplane_configs() {
    let s = resolve(cli("--listen 127.0.0.1:3478 --relay-ip 127.0.0.1 --realm test --user alice:secret --allow-peer 127.0.0.0/8 --min-port 50000 --max-port 50010 --max-lifetime 300 --threads 2 --no-pin --backend epoll --strict-channels"))
    .unwrap();
    let server = s.server_config();
    assert_eq!(server.realm, "test");
    assert_eq!(server.relay_ipv4, Some(Ipv4Addr::LOCALHOST));
    assert_eq!(server.listeners, vec![addr("127.0.0.1:3478")]);
    assert_eq!((server.min_port, server.max_port), (50000, 50010));
    assert_eq!(server.max_lifetime, Duration::from_secs(300));
    // The default lifetime never exceeds the configured maximum.
    assert_eq!(server.default_lifetime, Duration::from_secs(300));
    assert!(server.strict_channel_range);
    // The operator's lists reach the filter: an allowed and a default-denied peer.
    let filter = &server.peer_filter;
    assert!(filter.check_addr(addr("127.0.0.2:40000")).is_ok());
    assert!(filter.check_ip("10.0.0.1".parse().unwrap()).is_err());
    // Own listener address: never a peer, even inside an allowed range.
    assert!(filter.check_addr(addr("127.0.0.1:3478")).is_err());

    let dp = s.dataplane_config(Arc::new(server.peer_filter.clone()), None);
    assert_eq!(dp.listen, vec![addr("127.0.0.1:3478")]);
    assert_eq!(dp.threads, 2);
    assert!(!dp.pin);
    assert_eq!(dp.backend, BackendChoice::Epoll);
}

#[test]
fn xdp_flags() {
    let s = resolve(cli("")).unwrap();
    assert!(s.xdp.is_empty());
    assert_eq!(s.xdp_mode, uturn_ebpf::Mode::Native);
    assert_eq!(s.server_config().channel_lifetime, Duration::from_secs(600));

    let s = resolve(cli(
        "--xdp veth-a --xdp veth-b --xdp-mode generic --channel-lifetime 3",
    ))
    .unwrap();
    assert_eq!(s.xdp, vec!["veth-a".to_owned(), "veth-b".to_owned()]);
    assert_eq!(s.xdp_mode, uturn_ebpf::Mode::Generic);
    assert_eq!(s.server_config().channel_lifetime, Duration::from_secs(3));
    assert_eq!(
        cli_err("--xdp-mode offload"),
        clap::error::ErrorKind::InvalidValue
    );
    assert!(matches!(
        resolve(cli("--channel-lifetime 0")),
        Err(ConfigError::ZeroSeconds("channel-lifetime"))
    ));

    // The file's keys are the flag names; the command line's list replaces the file's.
    let file = toml("xdp = [\"eth0\"]\nxdp-mode = \"native\"\n").unwrap();
    assert_eq!(resolve(file.clone()).unwrap().xdp, vec!["eth0".to_owned()]);
    let merged = cli("--xdp eth1").over(file);
    assert_eq!(resolve(merged).unwrap().xdp, vec!["eth1".to_owned()]);
}

#[test]
fn batch_wait_defaults_to_1_ms_and_is_bounded() {
    assert_eq!(
        resolve(cli("")).unwrap().batch_wait,
        Duration::from_millis(1)
    );
    assert_eq!(
        resolve(cli("--batch-wait-us 0")).unwrap().batch_wait,
        Duration::ZERO
    );
    assert_eq!(
        resolve(cli("--batch-wait-us 10000")).unwrap().batch_wait,
        Duration::from_millis(10)
    );
    assert!(matches!(
        resolve(cli("--batch-wait-us 10001")),
        Err(ConfigError::BatchWaitTooLong)
    ));
    assert_eq!(
        cli_err("--batch-wait-us 1ms"),
        clap::error::ErrorKind::ValueValidation
    );
    // The file's key is the flag's name; the command line wins over it.
    let file = toml("batch-wait-us = 50").unwrap();
    assert_eq!(
        resolve(file.clone()).unwrap().batch_wait,
        Duration::from_micros(50)
    );
    let merged = cli("--batch-wait-us 7").over(file);
    assert_eq!(
        resolve(merged).unwrap().batch_wait,
        Duration::from_micros(7)
    );
}

#[test]
fn batch_wait_reaches_the_dataplane() {
    let s = resolve(cli("--batch-wait-us 123")).unwrap();
    let filter = Arc::new(uturn_turn::PeerFilter::new(vec![], vec![]));
    let dp = s.dataplane_config(filter, None);
    assert_eq!(dp.batch_wait, Duration::from_micros(123));
}

#[test]
fn media_defaults() {
    let s = resolve(cli("")).unwrap();
    assert_eq!(s.whip_token, None);
    assert_eq!(
        s.srtp_profiles,
        vec![
            uturn_srtp::Profile::AeadAes128Gcm,
            uturn_srtp::Profile::Aes128CmSha1_80
        ]
    );
    assert_eq!(s.max_media_sessions, 1000);
}

#[test]
fn media_flags_and_toml_keys() {
    let s = resolve(cli(
        "--whip-token abc.DEF-_~+/== --srtp-profile aes128-cm-sha1-80 --srtp-profile aead-aes128-gcm --max-media-sessions 7",
    ))
    .unwrap();
    assert_eq!(s.whip_token.as_deref(), Some("abc.DEF-_~+/=="));
    assert_eq!(
        s.srtp_profiles,
        vec![
            uturn_srtp::Profile::Aes128CmSha1_80,
            uturn_srtp::Profile::AeadAes128Gcm
        ]
    );
    assert_eq!(s.max_media_sessions, 7);

    let file = toml(
        r#"
        whip-token = "t"
        srtp-profile = ["aead-aes128-gcm"]
        max-media-sessions = 3
        "#,
    )
    .unwrap();
    let s = resolve(file.clone()).unwrap();
    assert_eq!(s.whip_token.as_deref(), Some("t"));
    assert_eq!(s.srtp_profiles, vec![uturn_srtp::Profile::AeadAes128Gcm]);
    assert_eq!(s.max_media_sessions, 3);

    // The command line's profile list replaces the file's.
    let s = resolve(cli("--srtp-profile aes128-cm-sha1-80").over(file)).unwrap();
    assert_eq!(s.srtp_profiles, vec![uturn_srtp::Profile::Aes128CmSha1_80]);
    assert_eq!(s.max_media_sessions, 3);
}

#[test]
fn bad_media_flags() {
    use clap::error::ErrorKind::InvalidValue;
    assert_eq!(cli_err("--srtp-profile aes256-gcm"), InvalidValue);
    assert!(toml(r#"srtp-profile = ["nope"]"#).is_err());
    assert!(matches!(
        resolve(cli(
            "--srtp-profile aead-aes128-gcm --srtp-profile aead-aes128-gcm"
        )),
        Err(ConfigError::DuplicateSrtpProfile("aead-aes128-gcm"))
    ));
    assert!(matches!(
        resolve(cli("--max-media-sessions 0")),
        Err(ConfigError::ZeroMediaSessions)
    ));
    for token in ["", "=", "has space", "quote\"", "a=b"] {
        let config = Config {
            whip_token: Some(token.to_owned()),
            ..Config::default()
        };
        assert!(
            matches!(resolve(config), Err(ConfigError::BadWhipToken)),
            "{token:?}"
        );
    }
}

#[test]
fn media_candidates_are_listeners_with_external_ip() {
    // The contract command line: one candidate, the listener.
    let s = resolve(cli("--listen 127.0.0.1:3478 --relay-ip 127.0.0.1")).unwrap();
    assert_eq!(s.media_candidates(), vec![addr("127.0.0.1:3478")]);

    // A wildcard listener stands for the relay IP of its family.
    let s = resolve(cli("--listen 0.0.0.0:3478 --listen 192.0.2.1:3479")).unwrap();
    assert_eq!(
        s.media_candidates(),
        vec![
            SocketAddr::new(IpAddr::V4(PRIMARY), 3478),
            addr("192.0.2.1:3479")
        ]
    );
    // Without an IPv6 relay IP a `[::]` listener has nothing to announce.
    let s = resolve(cli("--listen [::]:3478 --relay-ip 10.0.0.5")).unwrap();
    assert!(s.media_candidates().is_empty());

    // Behind a 1:1 NAT the public address is announced for the relay IP.
    let s = resolve(cli(
        "--listen 0.0.0.0:3478 --listen 10.0.0.5:3479 --listen 192.0.2.1:3480 --listen [::]:3478 --relay-ip 10.0.0.5 --relay-ip 2001:db8::5 --external-ip 203.0.113.9",
    ))
    .unwrap();
    assert_eq!(
        s.media_candidates(),
        vec![
            addr("203.0.113.9:3478"),
            addr("203.0.113.9:3479"),
            addr("192.0.2.1:3480"),
            addr("[2001:db8::5]:3478"),
        ]
    );
}
