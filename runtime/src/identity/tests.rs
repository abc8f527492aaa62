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
