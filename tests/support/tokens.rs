//! Hand-made JWTs for attacking token verification: signed with any secret and
//! algorithm jsonwebtoken supports, or assembled by hand (`alg: none`, empty signature).

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use api::auth::jwt::{Claims, TokenType};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::gateway::{TEST_AUDIENCE, TEST_ISSUER};

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The claims of a valid access token for `user_id` of `tenant_id` with `role` in session
/// `session_id`, valid from now for five minutes, as a JSON object the caller may alter.
///
/// The gateway accepts such a token only while `session_id` names a live session of
/// that user (refresh_tokens.token_id of a sign-in, neither revoked nor expired) and the
/// user is active and not locked: take the session from a real sign-in with
/// [`claims_of`]. A made-up session id is refused like a revoked one.
pub fn access_claims(tenant_id: Uuid, user_id: Uuid, role: &str, session_id: Uuid) -> Map<String, Value> {
    let now = now();
    let claims = Claims {
        sub: user_id,
        tid: tenant_id,
        role: role.to_string(),
        perms: vec![],
        sid: session_id,
        iat: now,
        nbf: now,
        exp: now + 300,
        iss: TEST_ISSUER.to_string(),
        aud: TEST_AUDIENCE.to_string(),
        typ: TokenType::Access,
    };
    match serde_json::to_value(claims).expect("claims to JSON") {
        Value::Object(map) => map,
        other => panic!("claims are not an object: {other}"),
    }
}

/// The claims of a token the gateway issued, read WITHOUT verifying anything: only to
/// learn what a real sign-in put there (its session id above all), never to trust it.
pub fn claims_of(token: &str) -> Claims {
    jsonwebtoken::dangerous::insecure_decode_claims(token).expect("the claims of a real token")
}

/// A header as the gateway writes it: `alg`, `kid`, `typ` = `typ`.
pub fn header(alg: Algorithm, kid: Option<&str>, typ: Option<&str>) -> Header {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    header.typ = typ.map(str::to_string);
    header
}

/// Signs `claims` under `header` with the HMAC `secret`.
pub fn sign(header: &Header, claims: &Map<String, Value>, secret: &[u8]) -> String {
    encode(header, claims, &EncodingKey::from_secret(secret)).expect("sign a token")
}

/// base64url without padding (RFC 7515 §2), written out because the tests have no
/// base64 crate of their own.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `header.claims.signature` from raw JSON, with whatever signature text is given (an
/// empty one for `alg: none`).
pub fn assemble(header: &Value, claims: &Map<String, Value>, signature: &str) -> String {
    format!("{}.{signature}", signing_input(header, claims))
}

/// `header.claims` from raw JSON, HMAC-signed with `secret` under `alg`: a token built by
/// hand the way [`assemble`] builds unsigned ones, so a control case can prove that hand
/// assembly yields tokens the gateway parses.
pub fn assemble_signed(header: &Value, claims: &Map<String, Value>, alg: Algorithm, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg)
        .expect("HMAC signature");
    format!("{input}.{signature}")
}

fn signing_input(header: &Value, claims: &Map<String, Value>) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(Value::Object(claims.clone()).to_string().as_bytes())
    )
}
