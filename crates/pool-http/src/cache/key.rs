//! The cache key: the provider, the upstream route, the whole request body in canonical form, and
//! the client token when the cache is kept per token, hashed with SHA-256.
//!
//! The body is canonical in one way only: object members are sorted by name, so two clients that
//! order fields differently share an entry. Everything else is kept as the upstream would read it:
//! every field counts (`temperature`, `top_p`, `seed`, `tools`…), an absent field is not a
//! default, and numbers keep their kind, so `0`, `0.0` and `1` are three keys. Integers are kept
//! exactly; other numbers as the IEEE double every JSON parser reads them as. A body with a
//! duplicate member name is not cached: parsers disagree about which value wins.

use std::collections::BTreeMap;
use std::fmt;

use pool_core::ids::TokenId;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// SHA-256 of everything that makes two requests the same request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

/// What a request is cached under, before hashing.
#[derive(Clone, Copy, Debug)]
pub struct KeyParts<'a> {
    pub provider: &'a str,
    /// The upstream URL, which names the route (chat, completions, embeddings, native paths).
    pub route: &'a str,
    pub body: &'a [u8],
    /// The client token, when each token has its own cache.
    pub token: Option<TokenId>,
}

impl CacheKey {
    /// The key of a request, or `None` when it must not be cached: a stream (`"stream": true`),
    /// or a body that is not a JSON object with unique member names.
    pub fn of(parts: KeyParts<'_>) -> Option<CacheKey> {
        let Ok(Canonical::Object(body)) = serde_json::from_slice::<Canonical>(parts.body) else {
            return None;
        };
        if matches!(body.get("stream"), Some(Canonical::Bool(true))) {
            return None;
        }
        let mut hasher = Sha256::new();
        hasher.update(b"ollama-pool response cache v1\0");
        for part in [parts.provider.as_bytes(), parts.route.as_bytes()] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        match parts.token {
            Some(id) => {
                hasher.update([1]);
                hasher.update(id.as_uuid().as_bytes());
            }
            None => hasher.update([0]),
        }
        serde_json::to_writer(HashWriter(&mut hasher), &Canonical::Object(body)).ok()?;
        Some(CacheKey(hasher.finalize().into()))
    }
}

/// Feeds serialised JSON straight into the hash: a large body is never copied into a string.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A JSON value whose objects are sorted by member name and whose numbers keep their kind.
#[derive(Debug, PartialEq)]
pub(crate) enum Canonical {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<Canonical>),
    Object(BTreeMap<String, Canonical>),
}

impl Serialize for Canonical {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Canonical::Null => s.serialize_unit(),
            Canonical::Bool(b) => s.serialize_bool(*b),
            Canonical::Int(n) => s.serialize_i64(*n),
            Canonical::UInt(n) => s.serialize_u64(*n),
            Canonical::Float(n) => s.serialize_f64(*n),
            Canonical::Str(v) => s.serialize_str(v),
            Canonical::Array(items) => s.collect_seq(items),
            Canonical::Object(members) => s.collect_map(members),
        }
    }
}

impl<'de> Deserialize<'de> for Canonical {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CanonicalVisitor)
    }
}

struct CanonicalVisitor;

impl<'de> Visitor<'de> for CanonicalVisitor {
    type Value = Canonical;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Canonical, E> {
        Ok(Canonical::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Canonical, E> {
        Ok(Canonical::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Canonical, E> {
        Ok(Canonical::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Canonical, E> {
        Ok(Canonical::UInt(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Canonical, E> {
        Ok(Canonical::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Canonical, E> {
        Ok(Canonical::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Canonical, E> {
        Ok(Canonical::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Canonical, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Canonical::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Canonical, A::Error> {
        let mut members = BTreeMap::new();
        while let Some((name, value)) = map.next_entry::<String, Canonical>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom("duplicate member name"));
            }
            members.insert(name, value);
        }
        Ok(Canonical::Object(members))
    }
}
