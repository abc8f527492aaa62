//! Configuration from the environment: secrets, key rotation, auth settings.

use super::*;
use crate::capability::auth::PasswordHashing;
use crate::identity::AccessTokens;

static SYSTEM: SystemDef = SystemDef {
    name: "envsys",
    default_port: 3000,
    prefix: "/api/v1",
    access_token_ttl_secs: 900,
    refresh_token_ttl_secs: 3600,
    routes: &[],
    gateway: GatewayPolicy::DEFAULT,
    services: &[],
};

const JWT: &str = "Qm9vdHN0cmFwcGVkLWp3dC1rZXktZm9yLXVuaXQtdGVzdHM0Mg";
const PREVIOUS_JWT: &str = "UHJldmlvdXMta2V5LXRoYXQtc2lnbmVkLWJlZm9yZS1yb3RhdGlvbg";
const INTERNAL: &str = "SW50ZXJuYWwtZ2F0ZXdheS10by1zZXJ2aWNlLWtleS0wMTIzNDU2";

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }
}

fn settings_of(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
    settings_from_env(&SYSTEM, &env(pairs))
}

fn error_of(pairs: &[(&str, &str)]) -> String {
    format!("{:#}", settings_of(pairs).unwrap_err())
}

#[test]
fn both_secrets_are_required() {
    assert!(
        error_of(&[("SVCGEN_INTERNAL_SECRET", INTERNAL)]).contains("SVCGEN_JWT_SECRET is not set")
    );
    assert!(error_of(&[("SVCGEN_JWT_SECRET", JWT)]).contains("SVCGEN_INTERNAL_SECRET is not set"));
    let settings = settings_of(&[
        ("SVCGEN_JWT_SECRET", JWT),
        ("SVCGEN_INTERNAL_SECRET", INTERNAL),
    ])
    .unwrap();
    assert_eq!(settings.access_tokens.kid(), "k1");
    assert_eq!(settings.password_hashing, PasswordHashing::OWASP);
    assert_eq!(settings.password_reset_ttl_secs, 1800);
}

#[test]
fn distributed_mode_refuses_development_secrets() {
    for (variable, secret, why) in [
        ("SVCGEN_JWT_SECRET", "short", "shorter than 32 bytes"),
        (
            "SVCGEN_JWT_SECRET",
            "dev-jwt-secret-0123456789abcdefghijklmn",
            "`dev`",
        ),
        (
            "SVCGEN_INTERNAL_SECRET",
            "changemechangemechangemechangeme",
            "distinct characters",
        ),
        (
            "SVCGEN_INTERNAL_SECRET",
            "changeme-0123456789abcdefghijklmnopqrstu",
            "`changeme`",
        ),
        (
            "SVCGEN_INTERNAL_SECRET",
            "internal-Change-Me-0123456789abcdefghijk",
            "change me",
        ),
    ] {
        let mut pairs = vec![
            ("SVCGEN_JWT_SECRET", JWT),
            ("SVCGEN_INTERNAL_SECRET", INTERNAL),
        ];
        pairs.retain(|(key, _)| *key != variable);
        pairs.push((variable, secret));
        let error = error_of(&pairs);
        assert!(
            error.contains(&format!("{variable} is refused in distributed mode"))
                && error.contains(why),
            "{variable}={secret}: {error}"
        );
    }
}

#[test]
fn a_key_rotation_accepts_the_previous_key_and_signs_with_the_new_one() {
    let base = [
        ("SVCGEN_JWT_SECRET", JWT),
        ("SVCGEN_JWT_KID", "k2"),
        ("SVCGEN_INTERNAL_SECRET", INTERNAL),
    ];
    let rotating = settings_of(
        &[
            &base[..],
            &[
                ("SVCGEN_JWT_PREVIOUS_SECRET", PREVIOUS_JWT),
                ("SVCGEN_JWT_PREVIOUS_KID", "k1"),
            ],
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(rotating.access_tokens.kid(), "k2");
    let before = AccessTokens::new("envsys", PREVIOUS_JWT.as_bytes(), 900);
    let old_token = before.issue(uuid::Uuid::now_v7(), &[]).unwrap();
    assert!(rotating.access_tokens.verify(&old_token).is_ok());
    let new_token = rotating
        .access_tokens
        .issue(uuid::Uuid::now_v7(), &[])
        .unwrap();
    assert!(rotating.access_tokens.verify(&new_token).is_ok());

    // Without the previous key, tokens of the old one are refused.
    let after = settings_of(&base).unwrap();
    assert!(after.access_tokens.verify(&old_token).is_err());
    assert!(after.access_tokens.verify(&new_token).is_ok());

    // The previous secret needs its key id, a different one, and must be strong too.
    let error = error_of(&[&base[..], &[("SVCGEN_JWT_PREVIOUS_SECRET", PREVIOUS_JWT)]].concat());
    assert!(error.contains("SVCGEN_JWT_PREVIOUS_KID is not"), "{error}");
    let error = error_of(
        &[
            &base[..],
            &[
                ("SVCGEN_JWT_PREVIOUS_SECRET", PREVIOUS_JWT),
                ("SVCGEN_JWT_PREVIOUS_KID", "k2"),
            ],
        ]
        .concat(),
    );
    assert!(error.contains("both have the id `k2`"), "{error}");
    let error = error_of(
        &[
            &base[..],
            &[
                ("SVCGEN_JWT_PREVIOUS_SECRET", "dev"),
                ("SVCGEN_JWT_PREVIOUS_KID", "k1"),
            ],
        ]
        .concat(),
    );
    assert!(
        error.contains("SVCGEN_JWT_PREVIOUS_SECRET is refused"),
        "{error}"
    );
    let error = error_of(&[
        ("SVCGEN_JWT_SECRET", JWT),
        ("SVCGEN_JWT_KID", "no spaces please"),
        ("SVCGEN_INTERNAL_SECRET", INTERNAL),
    ]);
    assert!(
        error.contains("SVCGEN_JWT_KID") && error.contains("invalid key id"),
        "{error}"
    );
}

#[test]
fn auth_settings_come_from_the_environment() {
    let settings = settings_of(&[
        ("SVCGEN_JWT_SECRET", JWT),
        ("SVCGEN_INTERNAL_SECRET", INTERNAL),
        ("SVCGEN_ARGON2_MEMORY_KIB", "32768"),
        ("SVCGEN_ARGON2_ITERATIONS", "3"),
        ("SVCGEN_ARGON2_PARALLELISM", "2"),
        ("SVCGEN_PASSWORD_RESET_TTL_SECS", "600"),
    ])
    .unwrap();
    assert_eq!(
        settings.password_hashing,
        PasswordHashing {
            memory_kib: 32_768,
            iterations: 3,
            parallelism: 2
        }
    );
    assert_eq!(settings.password_reset_ttl_secs, 600);
    let error = error_of(&[
        ("SVCGEN_JWT_SECRET", JWT),
        ("SVCGEN_INTERNAL_SECRET", INTERNAL),
        ("SVCGEN_PASSWORD_RESET_TTL_SECS", "-5"),
    ]);
    assert!(error.contains("SVCGEN_PASSWORD_RESET_TTL_SECS"), "{error}");
    let error = error_of(&[
        ("SVCGEN_JWT_SECRET", JWT),
        ("SVCGEN_INTERNAL_SECRET", INTERNAL),
        ("SVCGEN_ARGON2_PARALLELISM", "0"),
    ]);
    assert!(error.contains("invalid argon2 parameters"), "{error}");
}

#[test]
fn the_broker_comes_from_svcgen_broker_url_or_the_older_amqp_variables() {
    let broker = |pairs: &[(&str, &str)]| broker_from_env(&SYSTEM, &env(pairs));
    let error = format!("{:#}", broker(&[]).unwrap_err());
    assert!(error.contains("SVCGEN_BROKER_URL is not set"), "{error}");
    assert_eq!(
        broker(&[("SVCGEN_AMQP_URL", "amqp://127.0.0.1:5672/%2f")]).unwrap(),
        BrokerConfig {
            url: "amqp://127.0.0.1:5672/%2f".to_owned(),
            url_variable: "SVCGEN_AMQP_URL",
            namespace: "envsys.events".to_owned(),
        },
        "the older variables keep working"
    );
    assert_eq!(
        broker(&[
            ("SVCGEN_AMQP_URL", "amqp://127.0.0.1:5672/%2f"),
            ("SVCGEN_AMQP_EXCHANGE", "legacy.events"),
            ("SVCGEN_BROKER_URL", "nats://127.0.0.1:4222"),
        ])
        .unwrap(),
        BrokerConfig {
            url: "nats://127.0.0.1:4222".to_owned(),
            url_variable: "SVCGEN_BROKER_URL",
            namespace: "legacy.events".to_owned(),
        }
    );
    let chosen = broker(&[
        ("SVCGEN_BROKER_URL", "nats://127.0.0.1:4222"),
        ("SVCGEN_BROKER_NAMESPACE", "shop.events"),
        ("SVCGEN_AMQP_EXCHANGE", "legacy.events"),
        ("SVCGEN_AMQP_URL", "  "),
    ])
    .unwrap();
    assert_eq!(chosen.namespace, "shop.events");
}
