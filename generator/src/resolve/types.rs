//! The type grammar: `string(1..200)`, `int(0..)`, `enum(a|b)`, `[T]`, `T?`.

use super::TYPE_NAMES;
use crate::diag::did_you_mean;
use crate::ident;
use crate::model::Type;

/// Parses a field type: `string(1..200)`, `[string]?`, `uuid`, ...
pub fn parse_type(text: &str) -> Result<Type, (String, String)> {
    let text = text.trim();
    if let Some(inner) = text.strip_suffix('?') {
        let inner = parse_type(inner)?;
        if matches!(inner, Type::Optional(_)) {
            return Err((
                format!("`{text}`: a type can be optional only once"),
                "remove one `?`".into(),
            ));
        }
        return Ok(Type::Optional(Box::new(inner)));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let inner = parse_type(inner)?;
        if matches!(inner, Type::List(_) | Type::Optional(_)) {
            return Err((
                format!("`{text}`: lists hold plain values"),
                "use e.g. `[string]` or `[string]?`".into(),
            ));
        }
        return Ok(Type::List(Box::new(inner)));
    }
    if let Some(bounds) = text
        .strip_prefix("string(")
        .and_then(|t| t.strip_suffix(')'))
    {
        let hint = "write the length bounds as `string(MIN..MAX)`, e.g. `string(1..200)`, `string(3..)` or `string(..80)`";
        let (min, max) = bounds_of::<u32>(text, bounds, hint, "length")?;
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err((
                format!("`{text}`: the minimum length {lo} is above the maximum {hi}"),
                format!("perhaps `string({hi}..{lo})`"),
            ));
        }
        if max == Some(0) {
            return Err((
                format!("`{text}`: a maximum length of 0 allows only the empty string"),
                hint.into(),
            ));
        }
        return Ok(Type::String { min, max });
    }
    if let Some(bounds) = text.strip_prefix("int(").and_then(|t| t.strip_suffix(')')) {
        let hint =
            "write the range as `int(MIN..MAX)`, e.g. `int(0..)`, `int(1..10)` or `int(..100)`";
        let (min, max) = bounds_of::<i64>(text, bounds, hint, "value")?;
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err((
                format!("`{text}`: the minimum {lo} is above the maximum {hi}"),
                format!("perhaps `int({hi}..{lo})`"),
            ));
        }
        return Ok(Type::Int { min, max });
    }
    if let Some(words) = text.strip_prefix("enum(").and_then(|t| t.strip_suffix(')')) {
        return enum_words(text, words);
    }
    match text {
        "string" => Ok(Type::String {
            min: None,
            max: None,
        }),
        "text" => Ok(Type::Text),
        "int" => Ok(Type::INT),
        "bool" => Ok(Type::Bool),
        "uuid" => Ok(Type::Uuid),
        "email" => Ok(Type::Email),
        "timestamp" => Ok(Type::Timestamp),
        // A message or entity of the service; the validator checks that it exists.
        other
            if ident::is_snake(other)
                && did_you_mean(other, TYPE_NAMES.iter().copied()).is_none() =>
        {
            Ok(Type::Message(other.into()))
        }
        other => {
            let word = other.split(['(', '[', '?']).next().unwrap_or(other);
            let hint = did_you_mean(word, TYPE_NAMES.iter().copied()).unwrap_or_else(|| {
                "types: string, string(MIN..MAX), text, int, int(MIN..MAX), enum(a|b), bool, uuid, email, timestamp, [T] for lists, T? when optional".into()
            });
            Err((format!("unknown type `{other}`"), hint))
        }
    }
}

/// The `MIN..MAX` of a bounded type, either side optional.
fn bounds_of<N: std::str::FromStr>(
    text: &str,
    bounds: &str,
    hint: &str,
    what: &str,
) -> Result<(Option<N>, Option<N>), (String, String)> {
    let malformed = || {
        (
            format!("`{text}` has malformed {what} bounds"),
            hint.to_owned(),
        )
    };
    let (min, max) = bounds.split_once("..").ok_or_else(malformed)?;
    let bound = |b: &str| {
        let b = b.trim();
        if b.is_empty() {
            Ok(None)
        } else {
            b.parse::<N>().map(Some).map_err(|_| malformed())
        }
    };
    Ok((bound(min)?, bound(max)?))
}

/// `enum(draft|published)`: lower snake_case words, each once.
fn enum_words(text: &str, words: &str) -> Result<Type, (String, String)> {
    let hint = "write the allowed words separated by `|`, e.g. `enum(draft|published|archived)`";
    let mut seen: Vec<String> = Vec::new();
    for word in words.split('|').map(str::trim) {
        if !ident::is_snake(word) {
            return Err((
                if word.is_empty() {
                    format!("`{text}` has an empty word")
                } else {
                    format!("`{text}`: `{word}` is not a lower snake_case word")
                },
                hint.into(),
            ));
        }
        if seen.iter().any(|w| w == word) {
            return Err((
                format!("`{text}` lists `{word}` twice"),
                "list each word once".into(),
            ));
        }
        seen.push(word.to_owned());
    }
    Ok(Type::Enum(seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type() {
        assert_eq!(
            parse_type("string(1..200)").unwrap(),
            Type::String {
                min: Some(1),
                max: Some(200)
            }
        );
        assert_eq!(
            parse_type("string(..80)").unwrap(),
            Type::String {
                min: None,
                max: Some(80)
            }
        );
        assert_eq!(
            parse_type("[string]?").unwrap(),
            Type::Optional(Box::new(Type::List(Box::new(Type::String {
                min: None,
                max: None
            }))))
        );
        assert_eq!(
            parse_type("timestamp?").unwrap(),
            Type::Optional(Box::new(Type::Timestamp))
        );
        for (bad, hint) in [
            ("strng", "did you mean `string`?"),
            ("integer", "did you mean `int`?"),
        ] {
            let (message, h) = parse_type(bad).unwrap_err();
            assert!(message.contains(bad));
            assert_eq!(h, hint);
        }
        assert_eq!(
            parse_type("int(-5..10)").unwrap(),
            Type::Int {
                min: Some(-5),
                max: Some(10)
            }
        );
        assert_eq!(
            parse_type("int(0..)").unwrap(),
            Type::Int {
                min: Some(0),
                max: None
            }
        );
        assert_eq!(
            parse_type("enum(draft|published)?").unwrap(),
            Type::Optional(Box::new(Type::Enum(vec![
                "draft".into(),
                "published".into()
            ])))
        );
        assert!(parse_type("int(10..2)").is_err());
        assert!(parse_type("int(a..)").is_err());
        assert!(parse_type("enum(a|a)").is_err());
        assert!(parse_type("enum(a||b)").is_err());
        assert!(parse_type("enum(Draft)").is_err());
        assert!(parse_type("string(10..2)").is_err());
        assert!(parse_type("uuid??").is_err());
        assert!(parse_type("[[int]]").is_err());
    }
}
