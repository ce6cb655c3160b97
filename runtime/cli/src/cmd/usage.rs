//! `monkeyci usage ORG`: what an org's builds used on a server, as a table (or the server's
//! JSON with `--json`).

use anyhow::Context as _;
use monkeyci_server::usage::{Figures, Usage, day_start_ms};

use crate::outcome::Outcome;
use crate::remote_args::UsageArgs;

pub(super) fn show(args: UsageArgs) -> anyhow::Result<Outcome> {
    for day in [&args.from, &args.to].into_iter().flatten() {
        day_start_ms(day).map_err(anyhow::Error::msg)?;
    }
    let client = super::remote::client(&args.remote)?;
    let usage =
        super::runtime::runtime()?.block_on(client.usage(&args.org, args.from.as_deref(), args.to.as_deref()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&usage).context("cannot write the usage as JSON")?);
    } else {
        print!("{}", table(&usage));
    }
    Ok(Outcome::Success)
}

/// The usage as a table: one line per build, then the totals and the month's credits.
fn table(usage: &Usage) -> String {
    let mut out = format!("usage of org {} from {} to {}\n", usage.org, usage.from, usage.to);
    let header = ["BUILD", "REPO", "CONTAINER s", "× SIZE", "ACTION s", "SCRIPT s", "CREDITS"];
    let mut rows: Vec<[String; 7]> = vec![header.map(str::to_owned)];
    let row = |build: String, repo: String, f: &Figures| {
        [
            build,
            repo,
            format!("{:.1}", f.container_seconds),
            format!("{:.1}", f.container_credit_units),
            format!("{:.1}", f.action_seconds),
            format!("{:.1}", f.script_seconds),
            format!("{:.1}", f.credits),
        ]
    };
    for build in &usage.builds {
        rows.push(row(build.build_id.clone(), format!("{} #{}", build.repo, build.number), &build.figures));
    }
    let count = usage.builds.len();
    rows.push(row("total".to_owned(), format!("{count} build{}", if count == 1 { "" } else { "s" }), &usage.totals));
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            let pad = " ".repeat(width - cell.chars().count());
            // Names on the left, figures on the right.
            if i < 2 { line.push_str(&format!("{cell}{pad}  ")) } else { line.push_str(&format!("{pad}{cell}  ")) }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    match usage.credit_limit {
        Some(limit) => out.push_str(&format!("credits this month: {:.1} of {limit}\n", usage.credits_this_month)),
        None => out.push_str(&format!("credits this month: {:.1} (no limit)\n", usage.credits_this_month)),
    }
    out
}

#[cfg(test)]
mod tests {
    use monkeyci_server::usage::BuildUsage;

    use super::*;

    #[test]
    fn the_table_lines_up_figures_and_ends_with_the_totals_and_the_month() {
        let figures = Figures {
            container_seconds: 3.0,
            container_credit_units: 6.0,
            action_seconds: 1.25,
            script_seconds: 4.0,
            credits: 10.0,
        };
        let usage = Usage {
            org: "acme".into(),
            from: "2026-12-01".into(),
            to: "2026-12-02".into(),
            totals: figures,
            credit_limit: Some(100),
            credits_this_month: 10.0,
            builds: vec![BuildUsage {
                build_id: "b1".into(),
                repo: "app".into(),
                number: 7,
                ended_ms: 0,
                figures,
                jobs: Vec::new(),
            }],
        };
        let table = table(&usage);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "usage of org acme from 2026-12-01 to 2026-12-02");
        assert_eq!(lines[1], "BUILD  REPO     CONTAINER s  × SIZE  ACTION s  SCRIPT s  CREDITS");
        assert_eq!(lines[2], "b1     app #7           3.0     6.0       1.2       4.0     10.0");
        assert_eq!(lines[3], "total  1 build          3.0     6.0       1.2       4.0     10.0");
        assert_eq!(lines[4], "credits this month: 10.0 of 100");
    }
}
