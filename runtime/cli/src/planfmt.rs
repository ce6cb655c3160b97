//! Shows a [`Plan`] as text, JSON, Mermaid or Graphviz dot, for `monkeyci build plan` and
//! `verify`. Pure formatting: it neither prints nor checks the plan.

use std::fmt::Write;

use monkeyci_protocol::{JobKind, Plan};

/// Output formats of `monkeyci build plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PlanFormat {
    /// Readable list in dependency order.
    Text,
    /// The plan as JSON (`monkeyci_protocol::Plan`).
    Json,
    /// A Mermaid flowchart.
    Mermaid,
    /// A Graphviz digraph.
    Dot,
}

pub(crate) fn format(plan: &Plan, format: PlanFormat) -> String {
    match format {
        PlanFormat::Text => text(plan),
        PlanFormat::Json => {
            let mut json = serde_json::to_string_pretty(plan).expect("a plan serializes");
            json.push('\n');
            json
        }
        PlanFormat::Mermaid => mermaid(plan),
        PlanFormat::Dot => dot(plan),
    }
}

fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let width = plan.jobs.iter().map(|j| j.id.len()).max().unwrap_or(0);
    let what = |job: &monkeyci_protocol::PlannedJob| match (job.kind, &job.container) {
        (JobKind::Container, Some(spec)) => format!("container {}", spec.image),
        // Its spec reads its dependencies' outputs: there is no image to show yet.
        (JobKind::Container, None) => "container (spec resolved when its dependencies ended)".to_owned(),
        (JobKind::Action, _) => "action".to_owned(),
    };
    let what_width = plan.jobs.iter().map(|j| what(j).len()).max().unwrap_or(0);
    let _ = writeln!(out, "{} jobs, in dependency order:", plan.jobs.len());
    for (n, job) in plan.jobs.iter().enumerate() {
        let mut line = format!("{:>3}. {:<width$}  {:<what_width$}", n + 1, job.id, what(job));
        if !job.depends_on.is_empty() {
            line.push_str(&format!("  after {}", job.depends_on.join(", ")));
        }
        if job.blocked {
            line.push_str("  [needs approval]");
        }
        if let Some(ms) = job.timeout_ms {
            line.push_str(&format!(
                "  [timeout {}]",
                monkeyci_protocol::duration::short(std::time::Duration::from_millis(ms))
            ));
        }
        if job.retries > 0 {
            line.push_str(&format!("  [retries {}]", job.retries));
        }
        if !job.idempotent {
            line.push_str("  [not idempotent]");
        }
        if job.allow_failure {
            line.push_str("  [may fail]");
        }
        if job.runs != monkeyci_protocol::Runs::OnSuccess {
            line.push_str(&format!("  [runs {}]", job.runs.as_str()));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if !plan.skipped.is_empty() {
        let _ = writeln!(out, "left out of this build:");
        for skipped in &plan.skipped {
            let _ = writeln!(out, "  - {}: {}", skipped.id, skipped.reason);
        }
    }
    out
}

fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart TD\n");
    let node = |i: usize| format!("j{i}");
    let index = |id: &str| plan.jobs.iter().position(|j| j.id == id);
    for (i, job) in plan.jobs.iter().enumerate() {
        let label = job.id.replace('"', "#quot;");
        let _ = match job.kind {
            JobKind::Action => writeln!(out, "    {}[\"{label}\"]", node(i)),
            JobKind::Container => writeln!(out, "    {}[(\"{label}\")]", node(i)),
        };
    }
    for (i, job) in plan.jobs.iter().enumerate() {
        for dep in job.depends_on.iter().filter_map(|d| index(d)) {
            let _ = writeln!(out, "    {} --> {}", node(dep), node(i));
        }
    }
    out
}

fn dot(plan: &Plan) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("digraph pipeline {\n    rankdir=LR;\n");
    for job in &plan.jobs {
        let shape = match job.kind {
            JobKind::Action => "box",
            JobKind::Container => "box3d",
        };
        let _ = writeln!(out, "    {} [shape={shape}];", quote(&job.id));
    }
    for job in &plan.jobs {
        for dep in &job.depends_on {
            let _ = writeln!(out, "    {} -> {};", quote(dep), quote(&job.id));
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_protocol::PlannedJob;

    fn plan() -> Plan {
        let job = |id: &str, deps: &[&str]| PlannedJob {
            id: id.into(),
            kind: JobKind::Action,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            blocked: false,
            timeout_ms: None,
            retries: 0,
            allow_failure: false,
            runs: Default::default(),
            idempotent: true,
            container: None,
            resolved_at_run_time: false,
            declared_at: None,
        };
        Plan { jobs: vec![job("build", &[]), job("test", &["build"])], skipped: vec![] }
    }

    #[test]
    fn graphs_name_every_edge() {
        assert_eq!(
            format(&plan(), PlanFormat::Mermaid),
            "flowchart TD\n    j0[\"build\"]\n    j1[\"test\"]\n    j0 --> j1\n"
        );
        assert!(format(&plan(), PlanFormat::Dot).contains("    \"build\" -> \"test\";\n"));
        assert!(format(&plan(), PlanFormat::Text).contains("2. test   action  after build"));
    }
}
