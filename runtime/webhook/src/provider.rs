//! The forges this crate reads ([`Provider`]) and their names in a webhook URL's path segment.

use std::fmt;
use std::str::FromStr;

/// A forge whose webhooks this crate reads, named as in the webhook URL's path segment
/// (`github`, `gitlab`, `bitbucket`, `gitea`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// GitHub (github.com and GitHub Enterprise Server).
    GitHub,
    /// GitLab (gitlab.com and self-managed).
    GitLab,
    /// Bitbucket Cloud (bitbucket.org); not Bitbucket Data Center, whose payload differs.
    Bitbucket,
    /// Gitea, and Forgejo and Codeberg, which send Gitea's format.
    Gitea,
}

impl Provider {
    /// Every provider, in the order of the names in [`UnknownProvider`]'s message.
    pub const ALL: [Provider; 4] = [Self::GitHub, Self::GitLab, Self::Bitbucket, Self::Gitea];

    /// The path segment naming this provider: `github`, `gitlab`, `bitbucket` or `gitea`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
            Self::Bitbucket => "bitbucket",
            Self::Gitea => "gitea",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A path segment that names no [`Provider`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown webhook provider `{0}`; expected one of: github, gitlab, bitbucket, gitea")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    /// Reads the exact lowercase name ([`Provider::as_str`]); `forgejo` and `codeberg` are read
    /// as [`Provider::Gitea`], whose format they send.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "github" => Ok(Self::GitHub),
            "gitlab" => Ok(Self::GitLab),
            "bitbucket" => Ok(Self::Bitbucket),
            "gitea" | "forgejo" | "codeberg" => Ok(Self::Gitea),
            other => Err(UnknownProvider(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(provider.to_string().parse::<Provider>(), Ok(provider));
        }
        assert_eq!("forgejo".parse::<Provider>(), Ok(Provider::Gitea));
        let err = "GitHub".parse::<Provider>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown webhook provider `GitHub`; expected one of: github, gitlab, bitbucket, gitea"
        );
    }
}
