//! Reading one header of a delivery: absent, present once as visible text, or an error saying
//! which header is wrong. Shared by [`crate::verify()`] and [`crate::parse()`]; no other rules here.

use http::HeaderMap;

/// Why a header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// Sent more than once: which one the forge meant is unknown.
    Repeated,
    /// Not visible ASCII (or empty).
    NotText,
}

impl HeaderProblem {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Repeated => "it is sent more than once",
            Self::NotText => "it is empty or not visible ASCII text",
        }
    }
}

/// The value of `name`, if the delivery has it exactly once as non-empty visible text.
pub(crate) fn get<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, HeaderProblem> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeaderProblem::Repeated);
    }
    match value.to_str() {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim())),
        _ => Err(HeaderProblem::NotText),
    }
}

/// The first of `names` the delivery has (e.g. `X-Forgejo-Delivery`, then `X-Gitea-Delivery`),
/// with the name it was found under.
pub(crate) fn first_of<'h>(
    headers: &'h HeaderMap,
    names: &[&'static str],
) -> Result<Option<(&'static str, &'h str)>, (&'static str, HeaderProblem)> {
    for &name in names {
        if let Some(value) = get(headers, name).map_err(|problem| (name, problem))? {
            return Ok(Some((name, value)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_read_once_as_text() {
        let mut headers = HeaderMap::new();
        assert_eq!(get(&headers, "x-a"), Ok(None));
        headers.insert("x-a", " push ".parse().unwrap());
        assert_eq!(get(&headers, "X-A"), Ok(Some("push")));
        headers.append("x-a", "ping".parse().unwrap());
        assert_eq!(get(&headers, "x-a"), Err(HeaderProblem::Repeated));
        headers.insert("x-b", http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert_eq!(get(&headers, "x-b"), Err(HeaderProblem::NotText));
        headers.insert("x-c", "".parse().unwrap());
        assert_eq!(get(&headers, "x-c"), Err(HeaderProblem::NotText));
    }

    #[test]
    fn the_first_present_name_wins() {
        let mut headers = HeaderMap::new();
        headers.insert("x-gitea-delivery", "g".parse().unwrap());
        assert_eq!(
            first_of(&headers, &["X-Forgejo-Delivery", "X-Gitea-Delivery"]),
            Ok(Some(("X-Gitea-Delivery", "g")))
        );
        headers.insert("x-forgejo-delivery", "f".parse().unwrap());
        assert_eq!(
            first_of(&headers, &["X-Forgejo-Delivery", "X-Gitea-Delivery"]),
            Ok(Some(("X-Forgejo-Delivery", "f")))
        );
    }
}
