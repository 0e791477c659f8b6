//! Small helpers over lopdf's object model: following references (with a bound, against
//! cycles), reading numbers, dictionaries and decompressed streams.

use lopdf::{Dictionary, Document, Object};

/// Most references followed in a row before giving up (a cycle or a broken chain).
const MAX_REFERENCE_CHAIN: usize = 32;

pub fn resolve<'a>(doc: &'a Document, mut object: &'a Object) -> &'a Object {
    for _ in 0..MAX_REFERENCE_CHAIN {
        match object {
            Object::Reference(id) => match doc.get_object(*id) {
                Ok(next) => object = next,
                Err(_) => return &Object::Null,
            },
            _ => return object,
        }
    }
    &Object::Null
}

pub fn dict<'a>(doc: &'a Document, object: &'a Object) -> Option<&'a Dictionary> {
    match resolve(doc, object) {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

/// A finite number written directly (as content-stream operands are).
pub fn direct_number(object: &Object) -> Option<f32> {
    match object {
        Object::Integer(i) => Some(*i as f32),
        Object::Real(r) => Some(*r),
        _ => None,
    }
    .filter(|n| n.is_finite())
}

pub fn number(doc: &Document, object: &Object) -> Option<f32> {
    direct_number(resolve(doc, object))
}

/// A stream's decoded bytes, at most `limit` of them; `None` when it is not a stream or does
/// not decode.
pub fn stream_data(doc: &Document, object: &Object, limit: usize) -> Option<Vec<u8>> {
    match resolve(doc, object) {
        Object::Stream(s) => s
            .decompressed_content_with_limit(limit)
            .ok()
            .or_else(|| s.dict.get(b"Filter").is_err().then(|| s.content.clone())),
        _ => None,
    }
}
