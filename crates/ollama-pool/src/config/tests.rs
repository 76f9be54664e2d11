//! Configuration layering and validation.

use std::io::Write;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn file(contents: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    f.write_all(contents.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    f
}

#[test]
fn no_configuration_at_all_gives_the_documented_defaults() {
    let config = Config::load_from(None, env(&[])).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(config.listen, "127.0.0.1:8080");
    assert_eq!(config.database.url, "sqlite://data/pool.db");
    assert_eq!(config.admin_token, None);
    let names: Vec<String> = config.provider_specs().unwrap_or_default().iter().map(|p| p.name.to_string()).collect();
    assert_eq!(names, ["ollama", "openrouter"]);
}

#[test]
fn the_example_file_is_valid_and_matches_the_defaults() {
    let example = file(EXAMPLE);
    let config = Config::load_from(Some(example.path()), env(&[])).unwrap_or_else(|e| panic!("{e:#}"));
    let defaults = Config::load_from(None, env(&[])).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        format!("{:?}", config.provider_specs().unwrap_or_default()),
        format!("{:?}", defaults.provider_specs().unwrap_or_default())
    );
    let (mut config, mut defaults) = (config, defaults);
    config.providers.clear();
    defaults.providers.clear();
    assert_eq!(format!("{config:?}"), format!("{defaults:?}"));
}

#[test]
fn environment_overrides_the_file_and_short_forms_win() {
    let f = file("listen = \"0.0.0.0:1\"\n[proxy]\nmax_attempts = 2\n");
    let config = Config::load_from(
        Some(f.path()),
        env(&[
            ("POOL__PROXY__MAX_ATTEMPTS", "5"),
            ("POOL_LISTEN", "127.0.0.1:9"),
            ("POOL_DATABASE_URL", "postgres://x/y"),
            ("POOL__PROVIDERS__OPENROUTER__ENABLED", "false"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(config.proxy.max_attempts, 5);
    assert_eq!(config.listen, "127.0.0.1:9");
    assert_eq!(config.database.url, "postgres://x/y");
    let openrouter = config.provider_specs().unwrap_or_default().into_iter().find(|p| p.name.as_ref() == "openrouter");
    assert_eq!(openrouter.map(|p| p.enabled), Some(false));
}

#[test]
fn unknown_options_are_errors_in_files_and_environment() {
    let f = file("[proxy]\nmax_atempts = 2\n");
    assert!(Config::load_from(Some(f.path()), env(&[])).is_err());
    assert!(Config::load_from(None, env(&[("POOL__PROXY__NOPE", "1")])).is_err());
}

#[test]
fn a_short_or_placeholder_admin_token_is_refused() {
    assert!(Config::load_from(None, env(&[("POOL_ADMIN_TOKEN", "short")])).is_err());
    assert!(Config::load_from(None, env(&[("POOL_ADMIN_TOKEN", "your-admin-token-here-please")])).is_err());
    assert!(Config::load_from(None, env(&[("POOL_ADMIN_TOKEN", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa")])).is_err());
    assert!(Config::load_from(None, env(&[("POOL_ADMIN_TOKEN", "k7Qw9-long-random-admin-token-01")])).is_ok());
}

#[test]
fn custom_providers_are_added_and_validated() {
    let f = file("[providers.vllm]\nkind = \"openai\"\nurl = \"http://10.0.0.5:8000/v1/\"\n");
    let config = Config::load_from(Some(f.path()), env(&[])).unwrap_or_else(|e| panic!("{e:#}"));
    let vllm = config.provider_specs().unwrap_or_default().into_iter().find(|p| p.name.as_ref() == "vllm");
    assert_eq!(vllm.map(|p| p.url), Some("http://10.0.0.5:8000/v1".to_owned()));
    for bad in [
        "[providers.Bad]\nkind=\"openai\"\nurl=\"http://x\"\n",
        "[providers.x]\nurl=\"http://x\"\n",
        "[providers.x]\nkind=\"openai\"\nurl=\"ftp://x\"\n",
    ] {
        let f = file(bad);
        assert!(Config::load_from(Some(f.path()), env(&[])).is_err(), "{bad}");
    }
}

#[test]
fn cache_options_are_read_and_zero_bounds_refused() {
    let config = Config::load_from(
        None,
        env(&[("POOL__CACHE__ENABLED", "true"), ("POOL__CACHE__PER_TOKEN", "true"), ("POOL__CACHE__TTL_SECS", "7")]),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let settings = config.cache.settings();
    assert!(settings.enabled && settings.per_token);
    assert_eq!((settings.ttl_ms, settings.max_entries, settings.max_bytes), (7_000, 10_000, 64 << 20));
    assert!(!Config::load_from(None, env(&[])).unwrap_or_else(|e| panic!("{e:#}")).cache.enabled, "off by default");
    for (var, value) in [
        ("POOL__CACHE__TTL_SECS", "0"),
        ("POOL__CACHE__MAX_ENTRIES", "0"),
        ("POOL__CACHE__MAX_BYTES", "0"),
        ("POOL__CACHE__NOPE", "1"),
    ] {
        assert!(Config::load_from(None, env(&[(var, value)])).is_err(), "{var}={value}");
    }
}

#[test]
fn client_limits_come_from_the_file_or_from_comma_separated_environment_lists() {
    let f = file("[limits]\nip_rpm = 60\ntrusted_proxies = [\"10.0.0.0/8\"]\nblocked_user_agents = [\"curl\"]\n");
    let config = Config::load_from(Some(f.path()), env(&[])).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((config.limits.ip_rpm, config.limits.trusted_proxies.clone()), (60, vec!["10.0.0.0/8".to_owned()]));
    let config = Config::load_from(
        None,
        env(&[
            ("POOL__LIMITS__IP_RPM", "5"),
            ("POOL__LIMITS__TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8"),
            ("POOL__LIMITS__BLOCKED_USER_AGENTS", "curl"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(config.limits.ip_rpm, 5);
    assert_eq!(config.limits.trusted_proxies.len(), 2);
    assert_eq!(config.limits.blocked_user_agents, ["curl"]);
    let rules = config.limits.client_rules().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(rules.blocks_agent(Some("curl/8")));
}

#[test]
fn a_trusted_proxy_that_is_not_an_address_block_is_an_error() {
    let error = Config::load_from(None, env(&[("POOL__LIMITS__TRUSTED_PROXIES", "10.0.0.0/33")]));
    assert!(error.is_err_and(|e| format!("{e:#}").contains("10.0.0.0/33")));
}

#[test]
fn provider_headers_are_parsed_once_and_authorization_is_refused() {
    let specs = |toml: &str| {
        let f = file(toml);
        Config::load_from(Some(f.path()), env(&[])).and_then(|config| config.provider_specs())
    };
    let good =
        specs("[providers.vllm]\nkind=\"openai\"\nurl=\"http://x\"\nheaders = { HTTP-Referer = \"https://me\" }\n");
    let vllm = good.unwrap().into_iter().find(|p| p.name.as_ref() == "vllm").unwrap();
    assert_eq!(vllm.headers.get("http-referer").unwrap(), "https://me");
    for bad in
        ["Authorization = \"Bearer x\"", "AUTHORIZATION = \"x\"", "\"bad name\" = \"x\"", "X-Ok = \"line\\nbreak\""]
    {
        let toml = format!("[providers.vllm]\nkind=\"openai\"\nurl=\"http://x\"\nheaders = {{ {bad} }}\n");
        assert!(specs(&toml).is_err(), "{bad}");
    }
}

#[test]
fn quota_rests_are_read_in_seconds_and_refuse_unknown_fields() {
    let f = file("[proxy.quota_rest]\nweekly_secs = 7200\nmax_secs = 10\n");
    let config = Config::load_from(Some(f.path()), env(&[("POOL__PROXY__QUOTA_REST__CREDITS_SECS", "5")]))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let rest = config.proxy.quota_rest();
    assert_eq!((rest.weekly_ms, rest.max_ms, rest.credits_ms), (7_200_000, 10_000, 5_000));
    assert_eq!(rest.hourly_ms, pool_core::quota::QuotaRest::default().hourly_ms);
    let typo = file("[proxy.quota_rest]\nweekly = 1\n");
    assert!(Config::load_from(Some(typo.path()), env(&[])).is_err());
}

#[test]
fn the_default_quota_rests_are_the_domain_defaults() {
    let config = Config::load_from(None, env(&[])).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(config.proxy.quota_rest(), pool_core::quota::QuotaRest::default());
}

#[test]
fn connection_limits_must_be_positive_and_zero_connections_means_sized_from_the_descriptor_limit() {
    let defaults = Config::load_from(None, env(&[])).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(defaults.server.max_connections, 0);
    for (key, value) in [
        ("POOL__SERVER__HEADER_READ_TIMEOUT_SECS", "0"),
        ("POOL__SERVER__KEEP_ALIVE_TIMEOUT_SECS", "-1"),
        ("POOL__SERVER__BODY_READ_TIMEOUT_SECS", "0"),
        ("POOL__SERVER__MIN_BODY_RATE_GRACE_SECS", "-1"),
        ("POOL__SERVER__MAX_CONCURRENT_REQUESTS", "0"),
    ] {
        assert!(Config::load_from(None, env(&[(key, value)])).is_err(), "{key} = {value}");
    }
    let tuned = env(&[("POOL__SERVER__MIN_BODY_RATE_BYTES_PER_SEC", "0"), ("POOL__SERVER__MAX_CONNECTIONS", "10")]);
    assert!(Config::load_from(None, tuned).is_ok(), "no minimum rate, a fixed connection cap");
}
