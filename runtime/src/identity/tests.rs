use super::*;

const SECRET: &[u8] = b"access-secret-0123456789abcdef0123456789";
const INTERNAL_SECRET: &[u8] = b"internal-secret-0123456789abcdef01234567";

fn roles() -> Vec<String> {
    vec!["user".to_owned(), "admin".to_owned()]
}

#[test]
fn access_tokens_round_trip() {
    let tokens = AccessTokens::new("notes", SECRET, 900);
    let user = Uuid::now_v7();
    let token = tokens.issue(user, &roles()).unwrap();
    let caller = tokens.verify(&token).unwrap();
    assert_eq!(
        caller,
        Caller {
            user_id: user,
            roles: roles()
        }
    );
    assert!(caller.has_role("admin"));
    assert!(!caller.has_role("root"));
}

#[test]
fn expired_access_tokens_are_rejected() {
    // Expired well beyond the clock-skew leeway.
    let tokens = AccessTokens::new("notes", SECRET, -120);
    let token = tokens.issue(Uuid::now_v7(), &[]).unwrap();
    assert_eq!(tokens.verify(&token), Err(TokenError::Expired));
}

#[test]
fn forged_access_tokens_are_rejected() {
    let genuine = AccessTokens::new("notes", SECRET, 900);
    let forger = AccessTokens::new("notes", b"some-other-secret-0123456789abcdefghij", 900);
    let forged = forger.issue(Uuid::now_v7(), &roles()).unwrap();
    assert!(matches!(
        genuine.verify(&forged),
        Err(TokenError::Invalid(_))
    ));

    // Tampering with the payload breaks the signature.
    let token = genuine.issue(Uuid::now_v7(), &[]).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let tampered_payload = forger.issue(Uuid::now_v7(), &roles()).unwrap();
    parts[1] = tampered_payload.split('.').nth(1).unwrap();
    assert!(matches!(
        genuine.verify(&parts.join(".")),
        Err(TokenError::Invalid(_))
    ));

    assert!(matches!(
        genuine.verify("not.a.jwt"),
        Err(TokenError::Invalid(_))
    ));
    assert!(matches!(genuine.verify(""), Err(TokenError::Invalid(_))));
}

#[test]
fn unsigned_tokens_are_rejected() {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = engine.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let now = Utc::now().timestamp();
    let claims = format!(
        r#"{{"sub":"{}","iss":"notes","aud":"notes","exp":{},"iat":{now},"roles":["admin"]}}"#,
        Uuid::now_v7(),
        now + 900
    );
    let token = format!("{header}.{}.", engine.encode(claims));
    let tokens = AccessTokens::new("notes", SECRET, 900);
    assert!(tokens.verify(&token).is_err());
}

#[test]
fn access_tokens_of_another_system_are_rejected() {
    let notes = AccessTokens::new("notes", SECRET, 900);
    let shop = AccessTokens::new("shop", SECRET, 900);
    let token = shop.issue(Uuid::now_v7(), &[]).unwrap();
    // Same secret, but issuer and audience name the other system.
    assert!(matches!(notes.verify(&token), Err(TokenError::Invalid(_))));
}

#[test]
fn internal_tokens_carry_the_caller_or_nobody() {
    let tokens = InternalTokens::new(INTERNAL_SECRET);
    let caller = Caller {
        user_id: Uuid::now_v7(),
        roles: roles(),
    };
    let token = tokens.sign("notes", Some(&caller)).unwrap();
    assert_eq!(tokens.verify("notes", &token).unwrap(), Some(caller));

    let anonymous = tokens.sign("notes", None).unwrap();
    assert_eq!(tokens.verify("notes", &anonymous).unwrap(), None);
}

#[test]
fn an_internal_token_for_service_a_is_refused_by_service_b() {
    let tokens = InternalTokens::new(INTERNAL_SECRET);
    let token = tokens.sign("notes", None).unwrap();
    assert!(matches!(
        tokens.verify("billing", &token),
        Err(TokenError::Invalid(_))
    ));
}

#[test]
fn access_and_internal_tokens_are_not_interchangeable() {
    // Even with a shared secret (a misconfiguration), issuer and audience keep them apart.
    let access = AccessTokens::new("notes", SECRET, 900);
    let internal = InternalTokens::new(SECRET);
    let access_token = access.issue(Uuid::now_v7(), &[]).unwrap();
    assert!(internal.verify("notes", &access_token).is_err());
    let internal_token = internal.sign("notes", None).unwrap();
    assert!(access.verify(&internal_token).is_err());

    // With distinct secrets, neither verifies under the other key.
    let internal = InternalTokens::new(INTERNAL_SECRET);
    assert!(internal.verify("notes", &access_token).is_err());
}

#[test]
fn debug_output_never_shows_keys() {
    let text = format!(
        "{:?} {:?}",
        AccessTokens::new("notes", SECRET, 900),
        InternalTokens::new(INTERNAL_SECRET)
    );
    assert!(!text.contains("secret"), "{text}");
}

// --- Key ids, rotation and required claims -----------------------------------------------------

const NEW_SECRET: &[u8] = b"rotated-access-key-abcdefghijklmnopqrstuv";

fn keys(kid: &str, secret: &[u8]) -> JwtKeys {
    JwtKeys::new(JwtKey::new(kid, secret).unwrap())
}

/// Signs arbitrary claims with an arbitrary header, to build tokens the real issuer never
/// makes.
fn forge(header: Header, claims: serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn claims(now: i64) -> serde_json::Value {
    serde_json::json!({
        "sub": Uuid::now_v7().to_string(),
        "iss": "notes",
        "aud": "notes",
        "exp": now + 900,
        "nbf": now,
        "iat": now,
        "roles": ["admin"],
    })
}

fn hs256_with_kid(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    header
}

#[test]
fn issued_tokens_name_their_key() {
    let tokens = AccessTokens::with_keys("notes", &keys("2024-06", SECRET), 900);
    assert_eq!(tokens.kid(), "2024-06");
    let token = tokens.issue(Uuid::now_v7(), &[]).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("2024-06"));
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(AccessTokens::new("notes", SECRET, 900).kid(), DEFAULT_KID);
}

#[test]
fn during_a_rotation_both_keys_verify_and_only_the_new_one_signs() {
    let before = AccessTokens::with_keys("notes", &keys("k1", SECRET), 900);
    let old_token = before.issue(Uuid::now_v7(), &[]).unwrap();

    let rotating = keys("k2", NEW_SECRET)
        .with_previous(JwtKey::new("k1", SECRET).unwrap())
        .unwrap();
    let during = AccessTokens::with_keys("notes", &rotating, 900);
    assert!(during.verify(&old_token).is_ok());
    let new_token = during.issue(Uuid::now_v7(), &[]).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .as_deref(),
        Some("k2")
    );
    assert!(during.verify(&new_token).is_ok());
    // A gateway not yet rotated does not know k2.
    assert!(matches!(
        before.verify(&new_token),
        Err(TokenError::Invalid(_))
    ));

    // After the rotation the old key is gone.
    let after = AccessTokens::with_keys("notes", &keys("k2", NEW_SECRET), 900);
    assert!(after.verify(&new_token).is_ok());
    assert!(matches!(
        after.verify(&old_token),
        Err(TokenError::Invalid(_))
    ));

    // A token that names k1 but is signed with k2's secret is a forgery.
    let mixed = forge(
        hs256_with_kid("k1"),
        claims(Utc::now().timestamp()),
        NEW_SECRET,
    );
    assert!(during.verify(&mixed).is_err());
}

#[test]
fn key_ids_are_checked() {
    assert!(matches!(
        JwtKey::new("", SECRET),
        Err(KeyError::InvalidKid(_))
    ));
    assert!(matches!(
        JwtKey::new("has space", SECRET),
        Err(KeyError::InvalidKid(_))
    ));
    assert!(matches!(
        JwtKey::new(&"k".repeat(65), SECRET),
        Err(KeyError::InvalidKid(_))
    ));
    assert!(matches!(
        JwtKey::new("k1", b""),
        Err(KeyError::EmptySecret(_))
    ));
    assert_eq!(
        keys("k1", SECRET)
            .with_previous(JwtKey::new("k1", NEW_SECRET).unwrap())
            .unwrap_err(),
        KeyError::DuplicateKid("k1".to_owned())
    );
    assert!(!format!("{:?}", keys("k1", SECRET)).contains("access-secret"));
}

#[test]
fn tokens_without_a_known_kid_are_rejected() {
    let tokens = AccessTokens::new("notes", SECRET, 900);
    let now = Utc::now().timestamp();
    let without_kid = forge(Header::new(Algorithm::HS256), claims(now), SECRET);
    assert!(matches!(
        tokens.verify(&without_kid),
        Err(TokenError::Invalid(message)) if message.contains("kid")
    ));
    let unknown = forge(hs256_with_kid("k9"), claims(now), SECRET);
    assert!(matches!(
        tokens.verify(&unknown),
        Err(TokenError::Invalid(message)) if message.contains("unknown key")
    ));
    // The same claims under the right kid are fine: the refusals above are about the kid.
    assert!(
        tokens
            .verify(&forge(hs256_with_kid(DEFAULT_KID), claims(now), SECRET))
            .is_ok()
    );
}

#[test]
fn the_algorithm_is_pinned_to_hs256() {
    let tokens = AccessTokens::new("notes", SECRET, 900);
    let now = Utc::now().timestamp();
    for algorithm in [Algorithm::HS384, Algorithm::HS512] {
        let mut header = Header::new(algorithm);
        header.kid = Some(DEFAULT_KID.to_owned());
        // Signed with the right secret, but not with HS256.
        let token = forge(header, claims(now), SECRET);
        assert!(
            matches!(tokens.verify(&token), Err(TokenError::Invalid(_))),
            "{algorithm:?}"
        );
    }
}

#[test]
fn not_before_and_every_registered_claim_are_required() {
    let tokens = AccessTokens::new("notes", SECRET, 900);
    let now = Utc::now().timestamp();
    let header = || hs256_with_kid(DEFAULT_KID);

    let mut early = claims(now);
    early["nbf"] = serde_json::json!(now + 600);
    assert!(matches!(
        tokens.verify(&forge(header(), early, SECRET)),
        Err(TokenError::Invalid(_))
    ));

    for claim in ["exp", "nbf", "iss", "aud", "sub"] {
        let mut partial = claims(now);
        partial.as_object_mut().unwrap().remove(claim);
        assert!(
            matches!(
                tokens.verify(&forge(header(), partial, SECRET)),
                Err(TokenError::Invalid(_))
            ),
            "without {claim}"
        );
    }

    let mut wrong_audience = claims(now);
    wrong_audience["aud"] = serde_json::json!("shop");
    assert!(
        tokens
            .verify(&forge(header(), wrong_audience, SECRET))
            .is_err()
    );
    let mut wrong_issuer = claims(now);
    wrong_issuer["iss"] = serde_json::json!("shop");
    assert!(
        tokens
            .verify(&forge(header(), wrong_issuer, SECRET))
            .is_err()
    );
}

#[test]
fn internal_tokens_need_nbf_too() {
    let tokens = InternalTokens::new(INTERNAL_SECRET);
    let now = Utc::now().timestamp();
    let claims =
        serde_json::json!({ "iss": "gateway", "aud": "notes", "exp": now + 60, "iat": now });
    let token = forge(Header::new(Algorithm::HS256), claims, INTERNAL_SECRET);
    assert!(tokens.verify("notes", &token).is_err());
}

#[test]
fn development_secrets_are_recognised() {
    // Random secrets pass.
    for good in [
        "q9Xv3L0pZt7mK2rB8wN5cY1hJ6dF4sG0aE3uT9iO7lP2=",
        "4f1c9a2b7e3d8f60a5c4b3e2d1f0a9b8c7d6e5f4a3b2c1d0",
        "e2e-access-secret-0123456789abcdef0123456789",
    ] {
        assert_eq!(development_secret_problem(good), None, "{good}");
    }
    let refused = |secret: &str, needle: &str| {
        let problem = development_secret_problem(secret).unwrap_or_default();
        assert!(problem.contains(needle), "{secret}: {problem:?}");
    };
    refused("too-short", "shorter than 32 bytes");
    refused(
        "secretsecretsecretsecretsecretsecret",
        "distinct characters",
    );
    refused(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "distinct characters",
    );
    refused("dev-jwt-key-0123456789abcdefghijklmnop", "`dev`");
    refused("my_DEVELOPMENT_key_0123456789abcdefghij", "`development`");
    refused("please-change-me-0123456789abcdefghijk", "change me");
    refused("ChangeMe0123456789abcdefghijklmnopqrstu", "change me");
    refused("test.key.0123456789abcdefghijklmnopqrst", "`test`");
    // A word is a whole word: "devious" or "contest" is not "dev" or "test".
    assert_eq!(
        development_secret_problem("devious-contest-0123456789abcdefghijklm"),
        None
    );
}

#[test]
fn callers_roles_can_be_required() {
    let caller = Caller {
        user_id: Uuid::now_v7(),
        roles: vec!["user".to_owned()],
    };
    assert!(caller.has_any_role(&[]));
    assert!(caller.has_any_role(&["admin", "user"]));
    assert!(!caller.has_any_role(&["admin"]));
    assert!(caller.require_role("user").is_ok());
    let error = caller.require_role("admin").unwrap_err();
    assert_eq!(error.status(), axum::http::StatusCode::FORBIDDEN);
}
