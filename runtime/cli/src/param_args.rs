//! The command line of `monkeyci param`: an org's param sets and a repository's own params on
//! a server. Like [`crate::args`], only clap structs.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::remote_args::RemoteArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum ParamCommand {
    /// Set a param: in an org's param set (ORG) or a repository's own (ORG/REPO). The value
    /// is the argument, the file's content (--from-file) or, without either, standard input.
    /// It is stored encrypted and never shown again.
    Set(ParamSetArgs),
    /// List params: an org's sets with their label filters, or a repository's own params.
    /// Names only: values are never shown.
    List(ParamListArgs),
    /// Delete a param, or (ORG --set NAME without a param name) a whole param set.
    Delete(ParamDeleteArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ParamSetArgs {
    /// ORG (a param set's param) or ORG/REPO (a repository's own).
    pub(crate) target: String,
    /// The param's name.
    pub(crate) name: String,
    /// The value (it shows in your shell's history and the process list: prefer --from-file
    /// or standard input).
    #[arg(conflicts_with = "from_file")]
    pub(crate) value: Option<String>,
    /// Read the value from this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) from_file: Option<PathBuf>,
    /// The param set (with ORG) [default: default].
    #[arg(long = "set", value_name = "NAME")]
    pub(crate) set: Option<String>,
    /// Give the set to repositories with this label only, NAME=VALUE (repeatable: all of
    /// them); replaces the set's filter. Without it, the filter stays (a new set: every
    /// repository).
    #[arg(long = "label", value_name = "NAME=VALUE")]
    pub(crate) labels: Vec<String>,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ParamListArgs {
    /// ORG (its param sets) or ORG/REPO (the repository's own params).
    pub(crate) target: String,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ParamDeleteArgs {
    /// ORG (a param set's param, or the set) or ORG/REPO (a repository's own param).
    pub(crate) target: String,
    /// The param's name (with ORG, none: the whole set given by --set).
    pub(crate) name: Option<String>,
    /// The param set (with ORG) [default: default].
    #[arg(long = "set", value_name = "NAME")]
    pub(crate) set: Option<String>,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}
